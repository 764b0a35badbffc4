"""Dialling an upgraded connection: TLS, one HTTP/1.1 ``Upgrade`` request, the answer read
(:mod:`halyard.tunnel.handshake`), the transport handed back paused with whatever bytes followed the head. The
agents' tunnel and the CLI's local proxy both use it."""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

from halyard.tunnel.handshake import Opened, Refused, UpgradeAnswer, upgrade_request


class UpgradeRefused(Exception):
    """The server answered something other than the switch asked for: its status, code and message."""

    def __init__(self, refused: Refused) -> None:
        super().__init__(refused.line())
        self.status = refused.status
        self.code = refused.code
        self.message = refused.message


@dataclass
class Upgraded:
    transport: asyncio.Transport  # paused; adopt it with a Pipe or set_protocol, then resume_reading
    rest: bytes  # what the server sent after the 101 head


class _Handshake(asyncio.Protocol):
    def __init__(self, request: bytes, answer: UpgradeAnswer) -> None:
        self._request = request
        self._answer = answer
        self.verdict: asyncio.Future[Opened | Refused] = asyncio.get_running_loop().create_future()
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
            if isinstance(verdict, Opened) and self.transport is not None:
                self.transport.pause_reading()
            self.verdict.set_result(verdict)

    def eof_received(self) -> bool | None:
        if not self.verdict.done():
            self.verdict.set_result(self._answer.receive_eof())
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.verdict.done():
            self.verdict.set_result(self._answer.receive_eof())


async def dial(
    url: str,
    *,
    upgrade: str,
    fields: list[tuple[str, str]],
    ssl_context: ssl.SSLContext | None,
    timeout: float = 10.0,
) -> Upgraded:
    """Connect to ``url`` (https; http only for loopback tests), ask to switch to ``upgrade``. UpgradeRefused for
    any other answer; OSError (ssl.SSLError included) or TimeoutError when the server cannot be reached."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    request = upgrade_request(target, parts.netloc.rpartition("@")[2], upgrade, fields)
    loop = asyncio.get_running_loop()
    transport: asyncio.Transport | None = None
    try:
        async with asyncio.timeout(timeout):
            made, protocol = await loop.create_connection(
                lambda: _Handshake(request, UpgradeAnswer(upgrade)),
                host,
                parts.port or (443 if secure else 80),
                ssl=ssl_context if secure else None,
                server_hostname=host if secure else None,
            )
            transport = cast(asyncio.Transport, made)
            verdict = await protocol.verdict
    except BaseException:
        if transport is not None:
            transport.abort()
        raise
    if isinstance(verdict, Refused):
        transport.close()
        raise UpgradeRefused(verdict)
    return Upgraded(transport, verdict.early + protocol.late)
