"""Dialling an upgraded connection: TLS, one HTTP/1.1 ``Upgrade`` request, the ``101`` read, the transport handed
back paused with whatever bytes followed the head. The agents' tunnel and the CLI's local proxy both use it."""

from __future__ import annotations

import asyncio
import json
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from halyard.tunnel.http1 import Head, HeadError, parse_head, request_head, split_head

MAX_ERROR_BODY = 64 * 1024


class UpgradeRefused(Exception):
    """The server answered something other than 101: its status and, for an ARM error body, code and message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Upgraded:
    transport: asyncio.Transport  # paused; adopt it with a Pipe or set_protocol, then resume_reading
    rest: bytes  # what the server sent after the 101 head
    head: Head


class _Handshake(asyncio.Protocol):
    def __init__(self) -> None:
        self.buffer = bytearray()
        self.head: Head | None = None
        self.rest = b""
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if self.done.done() and self.head is not None and self.head.status == 101:
            self.rest += data  # arrived before the caller adopted the transport
            return
        self.buffer += data
        try:
            if self.head is None:
                split = split_head(self.buffer)
                if split is None:
                    return
                head, rest = split
                self.head = parse_head(head, response=True)
                self.buffer = bytearray(rest)
            if self.head.status == 101:
                self.rest = bytes(self.buffer)
                assert self.transport is not None
                self.transport.pause_reading()
                self._finish()
            elif len(self.buffer) >= min(int(self.head.get("content-length", "0") or 0), MAX_ERROR_BODY):
                self._finish()
        except (HeadError, ValueError) as exc:
            self._finish(exc)

    def eof_received(self) -> bool | None:
        self._finish(ConnectionError("the server closed the connection during the upgrade"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish(exc or ConnectionError("the connection closed during the upgrade"))

    def _finish(self, exc: BaseException | None = None) -> None:
        if self.done.done():
            return
        if exc is not None and self.head is None:
            self.done.set_exception(exc)
        else:
            self.done.set_result(None)


def refusal(status: int, body: bytes) -> UpgradeRefused:
    try:
        error = json.loads(body)["error"]
        return UpgradeRefused(status, str(error["code"]), str(error["message"]))
    except (ValueError, KeyError, TypeError):
        return UpgradeRefused(status, "UpgradeRefused", body[:300].decode("utf-8", "replace") or "(no body)")


async def dial(
    url: str,
    *,
    upgrade: str,
    fields: list[tuple[str, str]],
    ssl_context: ssl.SSLContext | None,
    timeout: float = 10.0,
    method: str = "GET",
) -> Upgraded:
    """Connect to ``url`` (https, or http on loopback in tests), ask to upgrade to ``upgrade``; UpgradeRefused for
    any answer but 101, OSError/TimeoutError when the server cannot be reached."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    host = parts.hostname or ""
    port = parts.port or (443 if secure else 80)
    target = parts.path or "/"
    if parts.query:
        target += "?" + parts.query
    loop = asyncio.get_running_loop()
    async with asyncio.timeout(timeout):
        transport, protocol = await loop.create_connection(
            _Handshake, host, port, ssl=ssl_context if secure else None, server_hostname=host if secure else None
        )
        try:
            host_field = parts.netloc.rpartition("@")[2]
            head = request_head(
                method,
                target,
                [("Host", host_field), ("Connection", "Upgrade"), ("Upgrade", upgrade), *fields],
            )
            transport.write(head)
            await protocol.done
        except BaseException:
            transport.abort()
            raise
    assert protocol.head is not None
    if protocol.head.status != 101:
        transport.close()
        raise refusal(protocol.head.status, bytes(protocol.buffer))
    return Upgraded(transport, protocol.rest, protocol.head)
