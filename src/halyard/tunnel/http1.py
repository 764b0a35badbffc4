"""HTTP/1.1 message heads, sans I/O: enough to open upgraded connections and to route and rewrite requests.

Bodies are not parsed here; whoever reads a head passes what follows it on as bytes.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_HEAD = 64 * 1024  # as the control plane's own listener limits headers
MAX_FIELDS = 100


class HeadError(ValueError):
    """A head that is malformed or larger than allowed; ``status`` is what a server should answer."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Head:
    start: tuple[str, str, str]  # request: method, target, version; response: version, status, reason
    fields: tuple[tuple[str, str], ...]  # (lower-cased name, value) in order
    raw: bytes = b""  # the head as it arrived, to pass on unchanged

    def get(self, name: str, default: str = "") -> str:
        name = name.lower()
        for key, value in self.fields:
            if key == name:
                return value
        return default

    def tokens(self, name: str) -> set[str]:
        """A comma-separated field's tokens, lower-cased (``Connection: keep-alive, Upgrade``)."""
        return {t.strip().lower() for key, v in self.fields if key == name.lower() for t in v.split(",") if t.strip()}

    @property
    def method(self) -> str:
        return self.start[0]

    @property
    def target(self) -> str:
        return self.start[1]

    @property
    def status(self) -> int:
        return int(self.start[1])


def split_head(buffer: bytes | bytearray, limit: int = MAX_HEAD) -> tuple[bytes, bytes] | None:
    """(head, rest) once the buffer holds a whole head; None while it may still arrive; HeadError past ``limit``."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        if len(buffer) > limit:
            raise HeadError("The request headers are too large.", 431)
        return None
    if end + 4 > limit:
        raise HeadError("The request headers are too large.", 431)
    return bytes(buffer[: end + 4]), bytes(buffer[end + 4 :])


def parse_head(head: bytes, *, response: bool = False) -> Head:
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise HeadError("undecodable head") from None
    lines = text.split("\r\n")
    while lines and lines[-1] == "":
        lines.pop()
    if not lines:
        raise HeadError("empty head")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2:
        raise HeadError(f"malformed start line {lines[0][:80]!r}")
    if len(parts) == 2:
        parts.append("")
    if response:
        if not parts[0].startswith("HTTP/1.") or not parts[1].isdigit() or len(parts[1]) != 3:
            raise HeadError(f"malformed status line {lines[0][:80]!r}")
    elif not parts[2].startswith("HTTP/1.") or not parts[0].isalpha() or not parts[1]:
        raise HeadError(f"malformed request line {lines[0][:80]!r}")
    if len(lines) - 1 > MAX_FIELDS:
        raise HeadError("The request has too many header fields.", 431)
    fields = []
    for line in lines[1:]:
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or any(c in name for c in " \t"):
            raise HeadError(f"malformed header field {line[:80]!r}")
        fields.append((name.lower(), value.strip()))
    return Head((parts[0], parts[1], parts[2]), tuple(fields), bytes(head))


def request_head(method: str, target: str, fields: list[tuple[str, str]]) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", *(f"{k}: {v}" for k, v in fields), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def response_head(status: int, reason: str, fields: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status} {reason}", *(f"{k}: {v}" for k, v in fields), "", ""]
    return "\r\n".join(lines).encode("latin-1")


def has_header_injection(value: str) -> bool:
    return any(c in value for c in "\r\n\0")
