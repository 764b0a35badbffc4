"""The private endpoint forwarder: listens on the endpoint's address and carries each connection to the control
plane's endpoint ingress over mutual TLS (the endpoint's certificate), announced by a PROXY v2 header naming the
endpoint and the original client. The agents' own TLS runs inside, end to end to the control plane."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import ssl
from dataclasses import dataclass, field

from halyard.core import proxyv2
from halyard.tunnel.splice import Pipe

log = logging.getLogger(__name__)
WARM = 2  # mutual-TLS connections to the ingress kept handshaken: a new agent connection skips that handshake
WARM_SECONDS = 6.0  # a ready connection is used within this, well before the ingress's 10 s wait for a header ends
WARM_CHECK = 1.0  # seconds between looks at the ready connections' age
REFILL_AFTER = 0.02  # seconds from taking a ready connection to opening its replacement: not during the agent's
# handshake, which the replacement's (a certificate to verify on each side) slowed by about 0.7 ms


class _Held(asyncio.Protocol):
    """One side of a forwarded connection until the other is up, keeping what arrived (the Pipe adopts it). The
    agent's side is paused. The ingress's is not: a TLS transport whose reading is paused does not send what its
    handshake left to send, and a client's last flight (its certificate, its signature, Finished) would wait for
    the first write, so the ingress's verification of the certificate ran on an agent's connection after all
    (docs/benchmarks.md, 2026-12-06)."""

    def __init__(self, paused: bool = True) -> None:
        self.transport: asyncio.Transport | None = None
        self.early = bytearray()
        self._paused = paused

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self._paused:
            transport.pause_reading()  # type: ignore[attr-defined]
        self.transport = transport  # type: ignore[assignment]  # uvloop's are not asyncio's subclasses

    def data_received(self, data: bytes) -> None:
        self.early += data

    def eof_received(self) -> bool | None:
        return True  # kept open: the answer still has to come back


@dataclass(frozen=True)
class Forwarder:
    """Each accepted connection joined to a mutual-TLS connection to the ingress by the relay's
    ``tunnel.splice.Pipe`` (asyncio protocols with pause/resume, no streams), the PROXY header written first. A few
    connections to the ingress are kept handshaken ahead, so an agent's new connection does not wait for that
    handshake (docs/benchmarks.md: about 1 ms less added per new connection)."""

    listen: tuple[str, int]
    ingress: tuple[str, int]
    endpoint_id: str
    context: ssl.SSLContext
    pipes: set[Pipe] = field(default_factory=set, compare=False)
    tasks: set[asyncio.Task[None]] = field(default_factory=set, compare=False)
    warm: collections.deque[tuple[float, asyncio.Transport, _Held]] = field(
        default_factory=collections.deque, compare=False
    )
    wanted: asyncio.Event = field(default_factory=asyncio.Event, compare=False)

    async def serve(self, ready: asyncio.Event | None = None) -> None:
        loop = asyncio.get_running_loop()
        keeping = asyncio.ensure_future(self._keep_warm())
        self.tasks.add(keeping)
        server = await loop.create_server(self._accepted, *self.listen, backlog=1024)
        log.info("endpoint forwarder listening", extra={"address": f"{self.listen[0]}:{self.listen[1]}"})
        if ready is not None:
            ready.set()
        async with server:
            await server.serve_forever()

    def _accepted(self) -> asyncio.Protocol:
        held = _Held()
        made = held.connection_made

        def connection_made(transport: asyncio.BaseTransport) -> None:
            made(transport)
            task = asyncio.ensure_future(self._forward(held))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)

        held.connection_made = connection_made  # type: ignore[method-assign]
        return held

    async def _open(self) -> tuple[asyncio.Transport, _Held]:
        transport, held = await asyncio.get_running_loop().create_connection(
            lambda: _Held(paused=False), *self.ingress, ssl=self.context, server_hostname=self.ingress[0]
        )
        return transport, held

    async def _keep_warm(self) -> None:
        """Keep :data:`WARM` handshaken connections to the ingress, each used once or closed once too old."""
        loop = asyncio.get_running_loop()
        while True:
            self._retire(loop.time())
            if len(self.warm) >= WARM:
                self.wanted.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.wanted.wait(), WARM_CHECK)
                continue
            try:
                self.warm.append((loop.time(), *await self._open()))
            except (OSError, ssl.SSLError):
                await asyncio.sleep(1.0)

    def _retire(self, now: float) -> None:
        while self.warm and (now - self.warm[0][0] > WARM_SECONDS or self.warm[0][1].is_closing()):
            self.warm.popleft()[1].close()

    async def _forward(self, client: _Held) -> None:
        assert client.transport is not None
        peer = client.transport.get_extra_info("peername")
        local = client.transport.get_extra_info("sockname")
        loop = asyncio.get_running_loop()
        self._retire(loop.time())
        loop.call_later(REFILL_AFTER, self.wanted.set)
        try:
            upstream, up = self.warm.popleft()[1:] if self.warm else await self._open()
        except (OSError, ssl.SSLError) as exc:
            log.warning("control plane ingress unreachable", extra={"error": str(exc)})
            client.transport.close()
            return
        upstream.write(proxyv2.encode(peer[:2], local[:2], {proxyv2.TLV_ENDPOINT: self.endpoint_id.encode()}))
        pipe = Pipe(client.transport, upstream, a_first=bytes(client.early), b_first=bytes(up.early),
                    on_close=self.pipes.discard)  # fmt: skip
        self.pipes.add(pipe)


def client_context(cert: str, key: str, ca: str) -> ssl.SSLContext:
    """Mutual TLS to the ingress: the control plane's CA trusted, the endpoint's certificate presented."""
    context = ssl.create_default_context(cafile=ca)
    context.load_cert_chain(cert, key)
    return context


def address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)
