"""A connection handed to the relay: its first request head read (bounded in size and time), then dispatched.

The control plane's listener gives the relay every connection whose first request targets ``/relay/``
(:mod:`halyard.controlplane.connections`), before uvicorn parses anything: the relay carries bytes, which an ASGI
app cannot (a SPDY upgrade never reaches one).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable

from halyard.core.errors import HalyardError
from halyard.tunnel.http1 import Head, HeadError, parse_head, response_head, split_head

log = logging.getLogger("halyard.relay")
Handler = Callable[["Connection", Head, bytes], Awaitable[None]]
_REASONS = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
            409: "Conflict", 421: "Misdirected Request", 426: "Upgrade Required", 429: "Too Many Requests",
            431: "Request Header Fields Too Large", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}  # fmt: skip


class RelayError(HalyardError):
    """An error the relay answers with before any byte reaches a cluster (status given per case)."""

    def __init__(self, status: int, code: str, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message, code=code, headers=headers)
        self.status = status


class Once:
    """A callback run at most once (a connection's release from the per-address count)."""

    def __init__(self, callback: Callable[[], None]) -> None:
        self._callback: Callable[[], None] | None = callback

    def __call__(self) -> None:
        callback, self._callback = self._callback, None
        if callback is not None:
            callback()


class Connection:
    """An accepted connection as the relay's handlers see it: the transport, who it came from, its release."""

    def __init__(self, transport: asyncio.Transport, release: Callable[[], None]) -> None:
        self.transport = transport
        self.release = Once(release)
        peer = transport.get_extra_info("peername")
        self.client = str(peer[0]) if peer else "?"
        self.local = transport.get_extra_info("sockname")

    def refuse(self, error: HalyardError) -> None:
        """Answer with the ARM error envelope and close."""
        body = json.dumps(error.body()).encode()
        fields = [
            ("Content-Type", "application/json; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Connection", "close"),
            *error.headers.items(),
        ]
        if not self.transport.is_closing():
            self.transport.write(response_head(error.status, _REASONS.get(error.status, "Error"), fields) + body)
            self.transport.close()
        self.release()


class HeadReader(asyncio.Protocol):
    """Reads the first request head of a handed-over connection, then pauses it and runs the handler."""

    def __init__(self, connection: Connection, handler: Handler, *, limit: int, timeout: float) -> None:
        self._conn = connection
        self._handler = handler
        self._limit = limit
        self._buffer = bytearray()
        self._done = False
        self._timer = asyncio.get_running_loop().call_later(timeout, self._too_slow)
        self.task: asyncio.Task[None] | None = None

    def start(self, first: bytes) -> None:
        self._conn.transport.set_protocol(self)
        self.data_received(first)
        if not self._done and not self._conn.transport.is_closing():
            self._conn.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self._done:
            return
        self._buffer += data
        try:
            split = split_head(self._buffer, self._limit)
            if split is None:
                return
            head = parse_head(split[0])
        except HeadError as exc:
            self._finish()
            self._conn.refuse(RelayError(exc.status, "BadRequest", str(exc)))
            return
        self._finish()
        self._conn.transport.pause_reading()
        self.task = asyncio.ensure_future(self._run(head, split[1]))

    async def _run(self, head: Head, rest: bytes) -> None:
        try:
            await self._handler(self._conn, head, rest)
        except HalyardError as exc:
            log.info(
                "relay refused",
                extra={"status": exc.status, "code": exc.code, "path": head.target.split("?", 1)[0][:300],
                       "client": self._conn.client},
            )  # fmt: skip
            self._conn.refuse(exc)
        except Exception:
            log.exception("relay request failed", extra={"target": head.target[:200]})
            self._conn.refuse(RelayError(500, "InternalError", "The relay failed to handle the request."))

    def connection_lost(self, exc: Exception | None) -> None:
        self._finish()
        if self.task is None:
            self._conn.release()

    def _finish(self) -> None:
        self._done = True
        self._timer.cancel()

    def _too_slow(self) -> None:
        if not self._done:
            self._finish()
            self._conn.refuse(RelayError(408, "RequestTimeout", "The request headers did not arrive in time."))
