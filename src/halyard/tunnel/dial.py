"""Dialling an upgraded connection: TLS, one HTTP/1.1 ``Upgrade`` request, the answer read
(:mod:`halyard.tunnel.handshake`), the transport handed back paused with whatever bytes followed the head. The
agents' tunnel and the CLI's local proxy both use it.

With ``proxy`` the connection first goes through an HTTP forward proxy (``CONNECT``, basic auth from the proxy's
URL: arc-proxy or an enterprise proxy), and TLS then runs end to end inside that tunnel. :func:`connect_over` and
:func:`open_tunnel` are the CONNECT exchange itself (parsing in :mod:`halyard.tunnel.proxyconnect`), which arc-proxy
and the gateway chain.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

from halyard.tunnel.handshake import Opened, Refused, UpgradeAnswer, upgrade_request
from halyard.tunnel.proxyconnect import ConnectAnswer, Established, ProxyRefused, ProxyUrl, connect_request


class UpgradeRefused(Exception):
    """The server answered something other than the switch asked for: its status, code and message."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.line())
        self.status = refused.status
        self.code = refused.code
        self.message = refused.message


class ProxyTunnelRefused(OSError):
    """A forward proxy would not open the tunnel (its status and reason; 0 when it did not answer HTTP)."""

    def __init__(self, refused: ProxyRefused, proxy: str) -> None:
        super().__init__(f"{proxy}: {refused.line()}")
        self.status = refused.status
        self.reason = refused.reason


class _Answer(Protocol):
    def receive(self, data: bytes) -> Any: ...

    def receive_eof(self) -> Any: ...


class _Exchange(asyncio.Protocol):
    """Sends one request on a transport and reads the answer (an upgrade's, or a proxy's to CONNECT); pauses the
    transport once the answer is ``switched`` (the connection now carries the new protocol)."""

    def __init__(self, request: bytes, answer: _Answer, switched: type) -> None:
        self._request = request
        self._answer = answer
        self._switched = switched
        self.verdict: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self.late = b""  # bytes that arrived after the switch, before the caller adopted the transport
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.verdict.done():
            self.late += data
            return
        verdict = self._answer.receive(data)
        if verdict is not None:
            if isinstance(verdict, self._switched) and self.transport is not None:
                self.transport.pause_reading()
            self.verdict.set_result(verdict)

    def eof_received(self) -> bool | None:
        if not self.verdict.done():
            self.verdict.set_result(self._answer.receive_eof())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.verdict.done():
            self.verdict.set_result(self._answer.receive_eof())


async def connect_over(
    transport: asyncio.Transport, host: str, port: int, *, authorization: str | None, name: str
) -> bytes:
    """Ask the proxy at the other end of ``transport`` for a tunnel to ``host:port``; the transport comes back
    paused, carrying the tunnel, with any early bytes. ProxyTunnelRefused otherwise (the transport closed)."""
    exchange = _Exchange(connect_request(host, port, authorization=authorization), ConnectAnswer(), Established)
    transport.set_protocol(exchange)
    exchange.connection_made(transport)
    if not transport.is_reading():
        transport.resume_reading()
    verdict = await exchange.verdict
    if isinstance(verdict, ProxyRefused):
        transport.close()
        raise ProxyTunnelRefused(verdict, name)
    return verdict.early


class Idle(asyncio.Protocol):
    """A transport's protocol until the CONNECT exchange adopts it."""

    def data_received(self, data: bytes) -> None:  # pragma: no cover - nothing is sent before the request
        pass


async def open_tunnel(proxy: ProxyUrl, host: str, port: int, *, timeout: float = 10.0) -> asyncio.Transport:
    """A TCP connection to ``proxy`` carrying a CONNECT tunnel to ``host:port`` (paused). OSError, TimeoutError or
    ProxyTunnelRefused when it cannot be had."""
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            made, _ = await loop.create_connection(Idle, proxy.host, proxy.port)
            transport = cast(asyncio.Transport, made)
            transport.pause_reading()
            await connect_over(
                transport, host, port, authorization=proxy.authorization(), name=f"{proxy.host}:{proxy.port}"
            )
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    return transport


async def upgrade_over(transport: asyncio.Transport, request: bytes, upgrade: str) -> bytes:
    """Send an upgrade request on an open transport and read the answer: the bytes after the 101 (the transport
    paused), or UpgradeRefused (the transport closed)."""
    handshake = _Exchange(request, UpgradeAnswer(upgrade), Opened)
    transport.set_protocol(handshake)
    handshake.connection_made(transport)
    if not transport.is_reading():
        transport.resume_reading()
    verdict = await handshake.verdict
    if isinstance(verdict, Refused):
        transport.close()
        raise UpgradeRefused(verdict)
    return verdict.early + handshake.late


@dataclass
class Upgraded:
    transport: asyncio.Transport  # paused; adopt it with a Pipe or set_protocol, then resume_reading
    rest: bytes  # what the server sent after the 101 head


async def dial(
    url: str,
    *,
    upgrade: str,
    fields: list[tuple[str, str]],
    ssl_context: ssl.SSLContext | None,
    timeout: float = 10.0,
    proxy: str | None = None,
) -> Upgraded:
    """Connect to ``url`` (https; http only for loopback tests), ask to switch to ``upgrade``. UpgradeRefused for
    any other answer; OSError (ssl.SSLError included, ProxyTunnelRefused) or TimeoutError when the server cannot be
    reached. ``proxy`` (``http://[user:password@]host:port``): through that forward proxy, TLS end to end inside."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = upgrade_request(target, parts.netloc.rpartition("@")[2], upgrade, fields)
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            port = parts.port or (443 if secure else 80)
            if proxy is None:
                made, protocol = await loop.create_connection(
                    lambda: _Exchange(request, UpgradeAnswer(upgrade), Opened),
                    host,
                    port,
                    ssl=ssl_context if secure else None,
                    server_hostname=host if secure else None,
                )
                transport = cast(asyncio.Transport, made)
            else:
                transport = await open_tunnel(ProxyUrl.parse(proxy), host, port, timeout=timeout)
                protocol = _Exchange(request, UpgradeAnswer(upgrade), Opened)
                if secure:
                    tls = await loop.start_tls(transport, protocol, ssl_context or ssl.create_default_context(),
                                               server_hostname=host)  # fmt: skip
                    assert tls is not None
                    transport = cast(asyncio.Transport, tls)
                else:
                    transport.set_protocol(protocol)
                    transport.resume_reading()
                protocol.connection_made(transport)
            verdict = await protocol.verdict
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    if isinstance(verdict, Refused):
        transport.close()
        raise UpgradeRefused(verdict)
    return Upgraded(transport, verdict.early + protocol.late)
