"""The tunnel's control-channel frames, sans I/O: bytes in, frames out; frames in, bytes out.

One control connection per cluster carries only small frames: the relay asks the agent to open a stream (``OPEN``)
and both sides ping. A stream's bytes never travel here: each stream gets its own data connection, dialled by the
agent (decision 008), so TCP's flow control is each stream's own and a slow reader stalls nobody else.

Wire form: ``type`` (1 byte), payload length (2 bytes, big-endian), payload. A data connection starts with one
``HEADER`` frame from the relay (what auth-proxy needs to know about the stream), then raw bytes.
"""

from __future__ import annotations

import enum
import json
import struct
from dataclasses import dataclass
from typing import Any

MAX_PAYLOAD = 8 * 1024  # the largest frame either side accepts: an OPEN is 16 bytes, a HEADER about 1.5 KB
_HEAD = struct.Struct("!BH")


class FrameType(enum.IntEnum):
    OPEN = 1  # relay → agent: dial a data connection for this stream id (16 bytes)
    PING = 2  # either way: 8 opaque bytes to echo
    PONG = 3
    REFUSE = 4  # agent → relay: this stream cannot be opened (stream id + UTF-8 reason)
    HEADER = 5  # relay → agent, first on a data connection: JSON describing the stream


class FrameError(ValueError):
    """The peer sent something that is not a frame of this protocol; the connection must be closed."""


@dataclass(frozen=True)
class Frame:
    type: FrameType
    payload: bytes = b""

    def encode(self) -> bytes:
        if len(self.payload) > MAX_PAYLOAD:
            raise FrameError(f"frame payload of {len(self.payload)} bytes exceeds {MAX_PAYLOAD}")
        return _HEAD.pack(self.type, len(self.payload)) + self.payload


def open_frame(stream_id: bytes) -> Frame:
    return Frame(FrameType.OPEN, stream_id)


def refuse_frame(stream_id: bytes, reason: str) -> Frame:
    return Frame(FrameType.REFUSE, stream_id + reason.encode()[:512])


def header_frame(header: dict[str, Any]) -> Frame:
    return Frame(FrameType.HEADER, json.dumps(header, separators=(",", ":")).encode())


def parse_header(frame: Frame) -> dict[str, Any]:
    if frame.type is not FrameType.HEADER:
        raise FrameError(f"expected a HEADER frame, got {frame.type.name}")
    try:
        value = json.loads(frame.payload)
    except ValueError as exc:
        raise FrameError(f"HEADER frame is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise FrameError("HEADER frame is not a JSON object")
    return value


class FrameDecoder:
    """Accumulates bytes and yields whole frames; ``rest()`` hands over what follows the last frame taken."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data

    def next(self) -> Frame | None:
        """The next whole frame, or None until more bytes arrive. FrameError for anything malformed."""
        if len(self._buffer) < _HEAD.size:
            return None
        kind, length = _HEAD.unpack_from(self._buffer)
        if length > MAX_PAYLOAD:
            raise FrameError(f"frame payload of {length} bytes exceeds {MAX_PAYLOAD}")
        try:
            frame_type = FrameType(kind)
        except ValueError:
            raise FrameError(f"unknown frame type {kind}") from None
        end = _HEAD.size + length
        if len(self._buffer) < end:
            return None
        payload = bytes(self._buffer[_HEAD.size : end])
        del self._buffer[:end]
        return Frame(frame_type, payload)

    def frames(self, data: bytes = b"") -> list[Frame]:
        self.feed(data)
        out = []
        while (frame := self.next()) is not None:
            out.append(frame)
        return out

    def rest(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer.clear()
        return rest
