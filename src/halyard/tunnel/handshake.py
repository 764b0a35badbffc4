"""Opening an upgraded connection, sans I/O: the request to send and a parser of the answer (bytes in, a verdict
out), tested byte for byte without sockets.

A ``101 Switching Protocols`` naming the requested protocol means every byte after its head belongs to the new
protocol; any other status carries an ARM error body (``{"error": {"code", "message"}}``), read to its length, or to
the end of the connection when it has none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from halyard.tunnel.http1 import HeadError, parse_head, request_head, split_head

MAX_HEAD = 64 * 1024  # an answer's head is a few hundred bytes; more is not the relay
MAX_ERROR_BODY = 64 * 1024


def upgrade_request(target: str, authority: str, upgrade: str, fields: list[tuple[str, str]]) -> bytes:
    """``GET target`` asking to switch to ``upgrade``, with ``fields`` (credentials and the like)."""
    return request_head("GET", target, [("Host", authority), *fields, ("Connection", "Upgrade"), ("Upgrade", upgrade)])


@dataclass(frozen=True)
class Opened:
    """The connection switched; ``early`` is what arrived after the head (already the new protocol's bytes)."""

    early: bytes


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str

    def line(self) -> str:
        return f"({self.code}) {self.message} (HTTP {self.status})"


class UpgradeAnswer:
    """Feed the server's bytes in; :meth:`receive` returns None until the answer is decided."""

    def __init__(self, upgrade: str) -> None:
        self._upgrade = upgrade.lower()
        self._buffer = bytearray()
        self._status: int | None = None
        self._reason = ""
        self._body_length: int | None = None
        self._body_start = 0

    def receive(self, data: bytes) -> Opened | Refused | None:
        self._buffer += data
        if self._status is None:
            try:
                split = split_head(self._buffer, MAX_HEAD)
            except HeadError:
                return Refused(502, "BadRelayResponse", "The relay's answer has no end of headers.")
            if split is None:
                return None
            head, _ = split
            self._body_start = len(head)
            verdict = self._read_head(head)
            if verdict is not None:
                return verdict
        body = bytes(self._buffer[self._body_start :])
        if self._body_length is not None and len(body) >= self._body_length:
            return self._refusal(body[: self._body_length])
        if len(body) > MAX_ERROR_BODY:
            return self._refusal(body[:MAX_ERROR_BODY])
        return None

    def receive_eof(self) -> Refused:
        """The server closed before deciding: what it said so far."""
        if self._status is None:
            return Refused(502, "BadRelayResponse", "The relay closed the connection without answering.")
        return self._refusal(bytes(self._buffer[self._body_start :]))

    def _read_head(self, raw: bytes) -> Opened | Refused | None:
        try:
            head = parse_head(raw, response=True)
        except HeadError:
            line = raw.split(b"\r\n", 1)[0].decode("latin-1")
            return Refused(502, "BadRelayResponse", f"The relay answered {line[:80]!r}, not HTTP/1.1.")
        self._status = head.status
        self._reason = head.start[2]
        if self._status == 101:
            if head.get("upgrade").lower() != self._upgrade:
                return Refused(502, "BadRelayResponse", f"The relay switched to {head.get('upgrade')!r}.")
            return Opened(bytes(self._buffer[self._body_start :]))
        length = head.get("content-length")
        self._body_length = int(length) if length.isdigit() else None
        return None

    def _refusal(self, body: bytes) -> Refused:
        assert self._status is not None
        code, message = "", ""
        try:
            error = json.loads(body).get("error")
            if isinstance(error, dict):
                code, message = str(error.get("code") or ""), str(error.get("message") or "")
        except (ValueError, AttributeError):
            pass
        return Refused(
            self._status,
            code or (self._reason.title().replace(" ", "") or "RelayError"),
            message or f"The relay refused the stream: {self._status} {self._reason}".rstrip() + ".",
        )
