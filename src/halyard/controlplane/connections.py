"""What a connection may cost before its request reaches the app: new connections and descriptors per address, the
TLS handshake's time, header size and time.

uvicorn's httptools protocol reads headers for as long as a client cares to send them, of any size and number, and
accepts any number of connections from one address. A few hundred clients stopping mid-headers held every descriptor
the process had (``/healthz`` unreachable). :class:`GuardedHttpProtocol` is that protocol with the limits applied;
the body's own limits are :mod:`halyard.controlplane.requestbody`'s. :class:`AcceptGate` comes before it on the
listener: it refuses an address over its new-connection rate (:mod:`halyard.controlplane.admission`) before the TLS
handshake, which is the costliest thing a refused client made the server do.
"""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import functools
import ssl
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from halyard.controlplane.admission import AcceptLimiter
from halyard.controlplane.identity.throttle import address_key


@dataclass
class ConnectionGuard:
    """The limits and the open connections per address, shared by every connection of one server."""

    header_timeout_seconds: float = 10.0
    header_limit_bytes: int = 64 * 1024
    header_count_limit: int = 100
    per_address: int = 4096  # 0: no limit
    open: Counter[str] = field(default_factory=Counter)
    # New connections per address, checked before the TLS handshake; and the handshake's time limit.
    limiter: AcceptLimiter = field(default_factory=lambda: AcceptLimiter(0, 1, 0, lambda: 0.0))
    handshake_timeout_seconds: float = 10.0
    # The open connections by client (host, port), so that a refusal by the app's body layer finds its connection.
    by_client: dict[tuple[str, int], GuardedHttpProtocol] = field(default_factory=dict)
    # Connections whose first request targets ``divert_prefix`` are handed, unparsed, to ``divert`` (the relay
    # carries bytes, which uvicorn cannot hand an app): (transport, bytes read so far, release of its count).
    divert_prefix: bytes = b"/relay/"
    divert: Callable[[asyncio.Transport, bytes, Callable[[], None]], None] | None = None
    # Called once when the server starts to shut down, before it waits for requests in flight (long polls end).
    on_drain: Callable[[], None] | None = None
    draining: bool = False

    def drain(self) -> None:
        if not self.draining:
            self.draining = True
            if self.on_drain is not None:
                self.on_drain()

    def admit(self, address: str) -> bool:
        """Count a new connection from ``address``; False (not counted) when the address has its fill."""
        if self.per_address and self.open[address] >= self.per_address and not self.limiter.is_exempt(address):
            return False
        self.open[address] += 1
        return True

    def release(self, address: str) -> None:
        self.open[address] -= 1
        if self.open[address] <= 0:
            del self.open[address]

    def request_refused(self, client: tuple[str, int] | None) -> None:
        """The app's body layer refused a request of ``client``'s connection as malformed, oversized or too slow."""
        connection = self.by_client.get(client) if client is not None else None
        if connection is not None:
            connection.refused()

    def protocol(self) -> Any:
        """The protocol factory for ``uvicorn.Config(http=...)``."""
        return functools.partial(GuardedHttpProtocol, guard=self)

    def gated(
        self, http: Callable[..., asyncio.Protocol], tls: ssl.SSLContext | None
    ) -> Callable[..., asyncio.Protocol]:
        """A protocol factory for the listener: each accepted connection passes :class:`AcceptGate` (and ``tls``'s
        handshake) before ``http``, called with the arguments the listener's factory is given, serves it."""

        def create(*args: Any, **kwargs: Any) -> asyncio.Protocol:
            return AcceptGate(self, functools.partial(http, *args, **kwargs), tls)

        return create


class AcceptGate(asyncio.Protocol):
    """The first protocol of a connection the listener accepted. An address over its new-connection rate is closed
    before anything is read from it (no TLS handshake, no parse); any other has its TLS handshake run, bounded by
    ``handshake_timeout_seconds`` (asyncio's default is 60 s), and is then handed to the HTTP protocol."""

    def __init__(
        self, guard: ConnectionGuard, http: Callable[[], asyncio.Protocol], tls: ssl.SSLContext | None
    ) -> None:
        self.guard = guard
        self.http = http
        self.tls = tls

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is one without being a subclass
        peer = transport.get_extra_info("peername")
        address = address_key(str(peer[0]) if peer else None)
        if not self.guard.limiter.admit(address):
            transport.abort()  # what the client sent stays unread; the kernel answers it with a reset
            return
        if self.tls is None:
            protocol = self.http()
            transport.set_protocol(protocol)
            protocol.connection_made(transport)
            return
        # The handshake starts here, in the callback that accepted the connection (before the loop reads a byte of
        # it, so the ClientHello is the TLS protocol's): what a listener with ``ssl=`` does, with its own classes.
        loop = asyncio.get_running_loop()
        waiter: asyncio.Future[None] = loop.create_future()
        secure = _tls_protocol_class(loop)(
            loop,
            self.http(),
            self.tls,
            waiter,
            server_side=True,
            server_hostname=None,
            ssl_handshake_timeout=self.guard.handshake_timeout_seconds,
        )
        transport.set_protocol(secure)
        secure.connection_made(transport)
        waiter.add_done_callback(functools.partial(_close_unless_secured, transport))


def _tls_protocol_class(loop: asyncio.AbstractEventLoop) -> Any:
    """The TLS protocol a listener with ``ssl=`` would use on ``loop``: uvloop's own (compiled) on uvloop, asyncio's
    otherwise."""
    try:
        import uvloop.loop
    except ImportError:  # pragma: no cover - uvloop is a dependency; asyncio's loop still works without it
        return asyncio.sslproto.SSLProtocol
    return uvloop.loop.SSLProtocol if isinstance(loop, uvloop.Loop) else asyncio.sslproto.SSLProtocol  # type: ignore[attr-defined]


def _close_unless_secured(transport: asyncio.Transport, handshake: asyncio.Future[None]) -> None:
    """A failed, timed-out or abandoned handshake: nothing was served, so the connection just closes."""
    if handshake.cancelled() or handshake.exception() is not None:
        transport.abort()


class GuardedHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with per-address, header-size and header-time limits.

    Also drops idle keep-alive connections at once when the server shuts down: a TLS close waits for the peer's
    close_notify, which an idle pooled client (an SDK session) never sends, so a plain close held the graceful shutdown
    for the 30 s SSL shutdown timeout. An idle connection has nothing in flight.
    """

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
        *,
        guard: ConnectionGuard,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self.guard = guard
        self._address: str | None = None  # set once admitted, so only admitted connections are released
        self._in_headers = True  # reading a request line and headers (from the start, and after each response)
        self._header_bytes = 0  # bytes received while reading this request's headers
        self._parsed_bytes = 0  # bytes of its request line and header fields, as parsed
        self._header_count = 0
        self._header_timer: asyncio.TimerHandle | None = None
        self._answered = 0  # responses completed on this connection
        self._wasted = False  # its first request was refused (the address has paid for it)
        self._sniff: bytearray | None = bytearray() if guard.divert is not None else None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.guard.draining:
            # Its handshake finished after the server began to shut down, which closed the connections it knew of:
            # this one would hold the graceful shutdown until its timeout.
            self.transport.abort()
            return
        address = address_key(self.client[0] if self.client else None)
        if not self.guard.admit(address):
            self._refuse(503, b"Too many connections from this address.", retry_after=True)
            return
        self._address = address
        if self.client is not None:
            self.guard.by_client[self.client] = self
        self._expect_headers()
        self._start_header_timer()  # a connection that never sends a whole request is closed too

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._address is not None:
            self.guard.release(self._address)
            self._address = None
        if self.client is not None and self.guard.by_client.get(self.client) is self:
            del self.guard.by_client[self.client]
        super().connection_lost(exc)

    def refused(self) -> None:
        """A request of this connection was refused as malformed, oversized or too slow. If it was the first, the
        connection served nothing: its address pays the limiter's penalty (once per connection)."""
        if self._answered == 0 and not self._wasted and self.client is not None:
            self._wasted = True
            self.guard.limiter.penalise(address_key(self.client[0]))

    def data_received(self, data: bytes) -> None:
        if self._address is None or self.transport.is_closing():
            return
        if self._sniff is not None:
            self._sniff += data
            verdict = _targets(self._sniff, self.guard.divert_prefix)
            if verdict is None:
                return  # too few bytes to tell yet
            data, self._sniff = bytes(self._sniff), None
            if verdict:
                self._hand_over(data)
                return
        if self._in_headers:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._in_headers and not self.transport.is_closing():
            if self._header_bytes > self.guard.header_limit_bytes:
                self._refuse(431, b"The request headers are too large.")
            elif self._header_count > self.guard.header_count_limit:
                self._refuse(431, b"The request has too many header fields.")

    def _hand_over(self, data: bytes) -> None:
        """Give the connection to ``guard.divert``: uvicorn forgets it, and the per-address count is released when
        the new owner says so."""
        self._cancel_header_timer()
        self.connections.discard(self)
        address, self._address = self._address, None
        assert self.guard.divert is not None and address is not None
        if self.client is not None and self.guard.by_client.get(self.client) is self:
            del self.guard.by_client[self.client]
        self.guard.divert(self.transport, data, functools.partial(self.guard.release, address))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None:  # the first byte of a request after a response: its headers are now timed
            self._start_header_timer()

    def on_url(self, url: bytes) -> None:
        self._parsed_bytes += len(url)
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_count += 1
        self._parsed_bytes += len(name) + len(value)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._cancel_header_timer()
        # A request read in one piece never shows as a stall in data_received: its headers are measured here.
        if self._header_count > self.guard.header_count_limit:
            self._refuse(431, b"The request has too many header fields.")
            return
        if self._parsed_bytes > self.guard.header_limit_bytes:
            self._refuse(431, b"The request headers are too large.")
            return
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        self._answered += 1
        super().on_response_complete()
        if not self.transport.is_closing():
            # Idle until the next request is the keep-alive timeout's to close (a 408 written to an idle pooled
            # connection could be read as the answer to the client's next request).
            self._expect_headers()

    def shutdown(self) -> None:
        self.guard.drain()
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_write_buffer_size() == 0:
            self.transport.abort()
        else:
            super().shutdown()

    def _expect_headers(self) -> None:
        self._in_headers = True
        self._header_bytes = 0
        self._parsed_bytes = 0
        self._header_count = 0
        self._cancel_header_timer()

    def _start_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.guard.header_timeout_seconds, self._headers_too_slow)

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        # A request that started and stalled, or a connection that never sent a whole one.
        if self._in_headers and not self.transport.is_closing():
            self._refuse(408, b"The request headers did not arrive in time.")

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _refuse(self, status: int, message: bytes, *, retry_after: bool = False) -> None:
        """Answer ``status`` with an ARM error body and close the connection (no request reaches the app)."""
        if status != 503:  # 503: the address's open connections, not anything this client sent
            self.refused()
        self._in_headers = False
        self._cancel_header_timer()
        code = {408: b"RequestTimeout", 431: b"RequestHeaderFieldsTooLarge", 503: b"TooManyConnections"}[status]
        body = b'{"error":{"code":"' + code + b'","message":"' + message + b'"}}'
        reason = {408: b"Request Timeout", 431: b"Request Header Fields Too Large", 503: b"Service Unavailable"}[status]
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, reason),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if retry_after:
            head.append(b"retry-after: 5\r\n")
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()


def _targets(start: bytes | bytearray, prefix: bytes) -> bool | None:
    """Whether a request line beginning with ``start`` targets ``prefix``; None while too short to tell."""
    space = start.find(b" ", 0, 16)
    if space < 0:
        return None if len(start) < 16 else False
    target = start[space + 1 : space + 1 + len(prefix)]
    if not prefix.startswith(target):
        return False
    return True if len(target) == len(prefix) else None
