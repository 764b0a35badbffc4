"""The ingress of private endpoint forwarders (``halyard endpoint run``): mutual TLS with a certificate of the
endpoint CA that is on record and not revoked (``revocation.py``: deleting the endpoint revokes it), then a PROXY
v2 header whose endpoint TLV must name the certificate's endpoint; the rest of the
connection (the agent's own TLS to the control plane) is served by the same HTTP stack as every listener, marked
as arriving through that endpoint.

The marking: the inner connection's local address is a name no socket can have (``pe:<endpoint id>``, port 0),
registered in ``Listeners`` as that endpoint's arrival, so ``ArrivalMiddleware`` and the relay see the endpoint as
they see any listener. PROXY headers are parsed here only: the public listener never trusts one (decision 011).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Callable

from halyard.controlplane.agentfacing.arrival import Arrival, ArrivalKind, Listeners, MarkedProtocol
from halyard.controlplane.privatelink.endpointpki import endpoint_of
from halyard.controlplane.privatelink.revocation import Revocations
from halyard.core import proxyv2

log = logging.getLogger(__name__)
HEADER_TIMEOUT_SECONDS = 10.0


def marked_address(endpoint_id: str) -> tuple[str, int]:
    return f"pe:{endpoint_id.lower()}", 0


class _Pipe(asyncio.Protocol):
    """The in-process end of a socket pair: what the HTTP stack writes goes back to the forwarder."""

    def __init__(self, outer: _IngressConnection) -> None:
        self._outer = outer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]  # uvloop's are not subclasses

    def data_received(self, data: bytes) -> None:
        if self._outer.transport is not None:
            self._outer.transport.write(data)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._outer.transport is not None:
            self._outer.transport.close()

    def pause_writing(self) -> None:
        if self._outer.transport is not None:
            self._outer.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._outer.transport is not None:
            self._outer.transport.resume_reading()


class _IngressConnection(asyncio.Protocol):
    def __init__(self, ingress: Ingress) -> None:
        self._ingress = ingress
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._pipe: _Pipe | None = None
        self._pending: bytearray | None = None  # after the header, until the pipe is up
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's subclasses
        self._timer = asyncio.get_running_loop().call_later(HEADER_TIMEOUT_SECONDS, self.refuse, "no PROXY header")

    def data_received(self, data: bytes) -> None:
        if self._pipe is not None:
            self._pipe.transport.write(data)
            return
        if self._pending is not None:
            self._pending += data
            return
        self._buffer += data
        try:
            parsed = proxyv2.parse(bytes(self._buffer))
        except ValueError as exc:
            self.refuse(str(exc))
            return
        if parsed is None:
            return
        header, used = parsed
        assert self.transport is not None
        ssl_object = self.transport.get_extra_info("ssl_object")
        named = endpoint_of(ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None)
        claimed = header.tlvs.get(proxyv2.TLV_ENDPOINT, b"").decode("utf-8", "replace")
        if named is None or claimed.lower() != named.lower():
            self.refuse(f"the PROXY header names endpoint {claimed[:200]!r}, the certificate {named!r}")
            return
        if self._timer is not None:
            self._timer.cancel()
        self._pending = bytearray(self._buffer[used:])
        self._buffer.clear()
        assert ssl_object is not None  # named is None without a certificate
        self._ingress.attach(self, named, header.source, ssl_object.getpeercert(binary_form=True))

    def piped(self, pipe: _Pipe) -> None:
        self._pipe = pipe
        if self._pending:
            pipe.transport.write(bytes(self._pending))
        self._pending = None

    def refuse(self, why: str) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        log.warning("endpoint ingress refused a connection", extra={"client": str(peer), "reason": why})
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._pipe is not None:
            self._pipe.transport.close()

    def pause_writing(self) -> None:
        if self._pipe is not None:
            self._pipe.transport.pause_reading()

    def resume_writing(self) -> None:
        if self._pipe is not None:
            self._pipe.transport.resume_reading()


class Ingress:
    def __init__(
        self,
        listeners: Listeners,
        create_protocol: Callable[[], asyncio.Protocol],
        server_ssl: ssl.SSLContext | None,
        ingress_ssl: ssl.SSLContext,
        revocations: Revocations,
    ) -> None:
        self._revocations = revocations
        self._listeners = listeners
        self._create_protocol = create_protocol
        self._server_ssl = server_ssl
        self._ingress_ssl = ingress_ssl
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _IngressConnection(self), host, port, ssl=self._ingress_ssl)
        log.info("endpoint ingress listening", extra={"address": f"{host}:{port}"})
        return server

    def attach(
        self, outer: _IngressConnection, endpoint: str, source: tuple[str, int] | None, certificate: bytes
    ) -> None:
        task = asyncio.ensure_future(self._attach(outer, endpoint, source, certificate))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(
        self, outer: _IngressConnection, endpoint: str, source: tuple[str, int] | None, certificate: bytes
    ) -> None:
        try:
            why = await self._revocations.refusal(certificate, endpoint)
        except Exception as exc:  # the store unreachable: refuse (fail closed), say why
            why = f"the certificate's record could not be read ({type(exc).__name__})"
        if why is not None:
            outer.refuse(why)
            return
        local = marked_address(endpoint)
        self._listeners.register(*local, Arrival(ArrivalKind.PRIVATE_ENDPOINT, endpoint))
        loop = asyncio.get_running_loop()
        inner, ours = socket.socketpair()
        try:
            _, pipe = await loop.connect_accepted_socket(lambda: _Pipe(outer), ours)
            outer.piped(pipe)
            # The agent's own TLS ends here, as on any listener (the handshake reads through the pipe).
            await loop.connect_accepted_socket(
                lambda: MarkedProtocol(self._create_protocol(), local, source), inner, ssl=self._server_ssl
            )
        except (OSError, ssl.SSLError) as exc:
            log.info("endpoint connection ended before it was served", extra={"error": str(exc)})
            inner.close()
            if outer.transport is not None:
                outer.transport.close()


def ingress_context(cert: str, key: str, endpoint_ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=endpoint_ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
