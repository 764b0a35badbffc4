"""Opening one stream through the relay, sans-I/O: the upgrade request ``proxy`` sends for each kubectl connection
and a parser of the relay's answer (bytes in, a verdict out), tested byte for byte without sockets.

A ``101 Switching Protocols`` answer means every byte after its head belongs to the client's HTTP/1.1 conversation
with the cluster's API server; any other status carries an ARM error body (``{"error": {"code", "message"}}``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from urllib.parse import urlsplit

UPGRADE = "halyard-stream/1"
MAX_HEAD = 64 * 1024  # a relay answer's head is a few hundred bytes; more is not a relay
MAX_ERROR_BODY = 64 * 1024


@dataclass(frozen=True)
class Target:
    """Where streams of one cluster open: the relay's host, port and path (from the relay URL)."""

    host: str
    port: int
    path: str
    authority: str  # the Host header

    @classmethod
    def of(cls, relay_url: str) -> Target:
        parts = urlsplit(relay_url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError(f"the relay URL {relay_url!r} is not an https URL")
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(parts.hostname, parts.port or 443, path, parts.netloc)


def open_request(target: Target, token: str, method: str) -> bytes:
    """The request that asks the relay for one stream to the cluster (``method``: ``AAD`` or ``Token``)."""
    lines = (
        f"GET {target.path} HTTP/1.1",
        f"Host: {target.authority}",
        f"Authorization: Bearer {token}",
        "Connection: Upgrade",
        f"Upgrade: {UPGRADE}",
        f"Halyard-Authentication-Method: {method}",
    )
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


@dataclass(frozen=True)
class Opened:
    """The stream is open; ``early`` is what arrived after the head (already the API server's bytes)."""

    early: bytes


@dataclass(frozen=True)
class Refused:
    status: int
    code: str
    message: str

    def line(self) -> str:
        return f"({self.code}) {self.message} (HTTP {self.status})"


class StreamHandshake:
    """Feed the relay's bytes in; :meth:`receive` returns None until the answer is decided."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._status: int | None = None
        self._reason = ""
        self._body_length: int | None = None
        self._body_start = 0

    def receive(self, data: bytes) -> Opened | Refused | None:
        self._buffer += data
        if self._status is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self._buffer) > MAX_HEAD:
                    return Refused(502, "BadRelayResponse", "The relay's answer has no end of headers.")
                return None
            head = bytes(self._buffer[:end]).decode("latin-1")
            self._body_start = end + 4
            verdict = self._read_head(head)
            if verdict is not None:
                return verdict
        assert self._status is not None
        body = bytes(self._buffer[self._body_start :])
        if self._body_length is not None and len(body) >= self._body_length:
            return self._refusal(body[: self._body_length])
        if len(body) > MAX_ERROR_BODY:
            return self._refusal(body[:MAX_ERROR_BODY])
        return None

    def receive_eof(self) -> Refused:
        """The relay closed before deciding: what it said so far."""
        if self._status is None:
            return Refused(502, "BadRelayResponse", "The relay closed the connection without answering.")
        return self._refusal(bytes(self._buffer[self._body_start :]))

    def _read_head(self, head: str) -> Opened | Refused | None:
        status_line, *header_lines = head.split("\r\n")
        parts = status_line.split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            return Refused(502, "BadRelayResponse", f"The relay answered {status_line[:80]!r}, not HTTP/1.1.")
        self._status = int(parts[1])
        self._reason = parts[2] if len(parts) > 2 else ""
        headers = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        if self._status == 101:
            if headers.get("upgrade", "").lower() != UPGRADE:
                return Refused(502, "BadRelayResponse", f"The relay switched to {headers.get('upgrade')!r}.")
            return Opened(bytes(self._buffer[self._body_start :]))
        length = headers.get("content-length")
        self._body_length = int(length) if length and length.isdigit() else None
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
