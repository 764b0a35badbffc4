"""The ingress of private endpoint forwarders (``halyard endpoint run``): mutual TLS with a certificate of the
endpoint CA that is on record and not revoked (``revocation.py``: deleting the endpoint revokes it), then a PROXY
v2 header whose endpoint TLV must name the certificate's endpoint; the rest of the connection (the agent's own TLS
to the control plane) is served by the same HTTP stack as every listener, marked as arriving through that endpoint.

The agent's TLS is terminated on the forwarder's connection itself (``loop.start_tls`` over the mutual-TLS
transport: TLS in TLS, in process), and its bytes go straight to the HTTP protocol. Until 2026-12-06 they crossed a
socket pair to a second TLS termination: two more system calls and an event-loop turn each way on every request
(docs/benchmarks.md, "Private link: the endpoint forwarder"). To leave the agent's bytes where ``start_tls`` finds
them, the header is read with a buffer sized to exactly what it still lacks (``proxyv2.wanted``).

Deleting an endpoint revokes its certificates; an open connection of a revoked certificate is cut too: every change
of ``resources`` heard (this replica's commits, other replicas' ``NOTIFY``) has the open connections' certificates
checked again, at most once every ``RECHECK_SECONDS``.

The marking: the inner connection's local address is a name no socket can have (``pe:<endpoint id>``, port 0),
registered in ``Listeners`` as that endpoint's arrival, so ``ArrivalMiddleware`` and the relay see the endpoint as
they see any listener. PROXY headers are parsed here only: the public listener never trusts one (decision 011).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable

from halyard.controlplane.agentfacing.arrival import Arrival, ArrivalKind, Listeners, MarkedTransport
from halyard.controlplane.privatelink.endpointpki import endpoint_of
from halyard.controlplane.privatelink.revocation import Revocations
from halyard.core import proxyv2

log = logging.getLogger(__name__)
HEADER_TIMEOUT_SECONDS = 10.0
BULK = 16 * 1024  # a write this large (a TLS record's worth) goes out at once, unless smaller ones wait before it
PRUNE_FROM = 64  # open connections of one certificate before the closed ones are first dropped from the set
RECHECK_SECONDS = 1.0  # a revoked endpoint's open connections are cut within about this long of the change


def marked_address(endpoint_id: str) -> tuple[str, int]:
    return f"pe:{endpoint_id.lower()}", 0


class _IngressConnection(asyncio.BufferedProtocol):
    """A forwarder's connection until its PROXY header is read and checked; then the HTTP stack's (``Ingress``).
    Reads take exactly the header's bytes, never one more: what follows stays in the TLS layer for ``start_tls``."""

    def __init__(self, ingress: Ingress) -> None:
        self._ingress = ingress
        self.transport: asyncio.Transport | None = None
        self._header = bytearray(16 + proxyv2.MAX_LENGTH)  # never resized: a read may hold a view of it
        self._filled = 0
        self._wanted = 16
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's transports are not asyncio's subclasses
        self._timer = asyncio.get_running_loop().call_later(HEADER_TIMEOUT_SECONDS, self.refuse, "no PROXY header")

    def get_buffer(self, sizehint: int) -> memoryview:
        return memoryview(self._header)[self._filled : self._wanted]

    def buffer_updated(self, nbytes: int) -> None:
        self._filled += nbytes
        got = bytes(self._header[: self._filled])
        try:
            self._wanted = proxyv2.wanted(got)
            parsed = proxyv2.parse(got) if self._filled >= self._wanted else None
        except ValueError as exc:
            self.refuse(str(exc))
            return
        if parsed is None:
            return
        header = parsed[0]
        assert self.transport is not None
        self.transport.pause_reading()  # the agent's bytes wait in the TLS layer until the HTTP stack takes them
        if self._timer is not None:
            self._timer.cancel()
        ssl_object = self.transport.get_extra_info("ssl_object")
        certificate = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        named = endpoint_of(certificate)
        claimed = header.tlvs.get(proxyv2.TLV_ENDPOINT, b"").decode("utf-8", "replace")
        if named is None or certificate is None or claimed.lower() != named.lower():
            self.refuse(f"the PROXY header names endpoint {claimed[:200]!r}, the certificate {named!r}")
            return
        self._ingress.attach(self.transport, named, header.source, certificate)

    def refuse(self, why: str) -> None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        log.warning("endpoint ingress refused a connection", extra={"client": str(peer), "reason": why})
        if self.transport is not None:
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()


class _Coalescing(MarkedTransport):
    """The agent's TLS transport as the HTTP stack sees it (marked), writing what one turn of the event loop wrote
    (a response's head and body are two writes) as one TLS record: one segment through the forwarder instead of
    two. The socket pair this replaced merged them, by accident."""

    def __init__(self, transport: asyncio.Transport, local: tuple[str, int], peer: tuple[str, int] | None) -> None:
        super().__init__(transport, local, peer)
        self._inner = transport
        self._pending: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            if len(data) >= BULK:  # a stream's chunk (cluster connect): no copy, no wait
                self._inner.write(data)
                return
            asyncio.get_running_loop().call_soon(self._flush)
        self._pending.append(bytes(data))

    def writelines(self, lines: list[bytes]) -> None:
        for data in lines:
            self.write(data)

    def _flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._inner.is_closing():
                self._inner.write(data)

    def write_eof(self) -> None:
        self._flush()
        self._inner.write_eof()

    def close(self) -> None:
        self._flush()
        self._inner.close()

    def abort(self) -> None:
        self._pending.clear()
        self._inner.abort()

    def get_write_buffer_size(self) -> int:
        return self._inner.get_write_buffer_size() + sum(len(data) for data in self._pending)


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
        # The forwarders' connections being served, by (certificate, endpoint): one store read per certificate
        # when they are checked again, however many connections it carries.
        self._open: dict[tuple[bytes, str], set[asyncio.Transport]] = {}
        self._prune_at: dict[tuple[bytes, str], int] = {}
        self._recheck: asyncio.TimerHandle | None = None
        revocations.on_change(self._changed)

    def _serving(self, key: tuple[bytes, str], transport: asyncio.Transport) -> None:
        group = self._open.setdefault(key, set())
        if len(group) >= self._prune_at.get(key, PRUNE_FROM):  # closed ones go now and then, not one by one
            group.difference_update([t for t in group if t.is_closing()])
            self._prune_at[key] = max(PRUNE_FROM, 2 * len(group))
        group.add(transport)

    def _changed(self) -> None:
        if self._recheck is None and self._open:
            self._recheck = asyncio.get_running_loop().call_later(RECHECK_SECONDS, self._start_recheck)

    def _start_recheck(self) -> None:
        self._recheck = None
        task = asyncio.ensure_future(self._cut_revoked())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _cut_revoked(self) -> None:
        """Abort the open connections whose certificate is now refused (its endpoint deleted)."""
        for key, transports in list(self._open.items()):
            live = {t for t in transports if not t.is_closing()}
            if not live:
                self._open.pop(key, None)
                self._prune_at.pop(key, None)
                continue
            self._open[key] = live
            certificate, endpoint = key
            try:
                why = await self._revocations.refusal(certificate, endpoint)
            except Exception as exc:  # the store unreachable: new connections are refused; these are checked again
                log.warning("endpoint ingress could not check open connections", extra={"error": type(exc).__name__})
                self._changed()
                continue
            if why is None:
                continue
            log.warning(
                "endpoint ingress cut open connections",
                extra={"endpoint": endpoint, "connections": len(live), "reason": why},
            )
            self._prune_at.pop(key, None)
            for transport in self._open.pop(key, live):
                transport.abort()

    async def start(self, host: str, port: int) -> asyncio.Server:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: _IngressConnection(self), host, port, ssl=self._ingress_ssl)
        log.info("endpoint ingress listening", extra={"address": f"{host}:{port}"})
        return server

    def attach(
        self, transport: asyncio.Transport, endpoint: str, source: tuple[str, int] | None, certificate: bytes
    ) -> None:
        """Serve ``transport`` (its PROXY header read, reading paused) as arriving through ``endpoint``, once its
        certificate is known to be on record and not revoked."""
        task = asyncio.ensure_future(self._attach(transport, endpoint, source, certificate))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _attach(
        self, transport: asyncio.Transport, endpoint: str, source: tuple[str, int] | None, certificate: bytes
    ) -> None:
        try:
            why = await self._revocations.refusal(certificate, endpoint)
        except Exception as exc:  # the store unreachable: refuse (fail closed), say why
            why = f"the certificate's record could not be read ({type(exc).__name__})"
        if why is not None:
            peer = transport.get_extra_info("peername")
            log.warning("endpoint ingress refused a connection", extra={"client": str(peer), "reason": why})
            transport.abort()
            return
        if transport.is_closing():
            return
        self._serving((certificate, endpoint), transport)
        local = marked_address(endpoint)
        self._listeners.register(*local, Arrival(ArrivalKind.PRIVATE_ENDPOINT, endpoint))
        protocol = self._create_protocol()
        if self._server_ssl is None:
            transport.set_protocol(protocol)
            protocol.connection_made(MarkedTransport(transport, local, source))  # type: ignore[arg-type]
            transport.resume_reading()
            return
        try:
            # The agent's own TLS ends here, as on any listener, over the forwarder's connection (TLS in TLS).
            inner = await asyncio.get_running_loop().start_tls(transport, protocol, self._server_ssl, server_side=True)
        except (OSError, ssl.SSLError, EOFError) as exc:
            log.info("endpoint connection ended before it was served", extra={"error": str(exc)})
            transport.abort()
            return
        if inner is None:  # asyncio's signature allows it; uvloop raises instead
            transport.abort()
            return
        # start_tls hands the protocol no transport (it expects one already connected): given here, before the
        # first data, which both uvloop and asyncio deliver only after the task awaiting the handshake has run.
        protocol.connection_made(_Coalescing(inner, local, source))  # type: ignore[arg-type]


def ingress_context(cert: str, key: str, endpoint_ca: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=endpoint_ca)
    context.load_cert_chain(cert, key)
    context.verify_mode = ssl.CERT_REQUIRED
    return context
