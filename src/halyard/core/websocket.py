"""WebSocket framing (RFC 6455) and Kubernetes' channel protocols over it, free of I/O.

kubectl ≥ 1.30 runs exec and attach over a WebSocket whose subprotocol is ``v5.channel.k8s.io`` (or
``v4.channel.k8s.io``): every binary message starts with one byte naming its channel (0 stdin, 1 stdout, 2 stderr,
3 the error/status channel, 4 terminal resize); v5 adds 255, a close signal whose one-byte payload names the channel
the client has finished writing (stdin's half-close). kubectl ≥ 1.31 runs port-forward as SPDY *tunnelled* through
a WebSocket (subprotocol ``SPDY/3.1+portforward.k8s.io``): the binary messages' payloads, concatenated, are a SPDY
connection's bytes, message boundaries meaning nothing.
"""

from __future__ import annotations

import base64
import hashlib
import struct
from dataclasses import dataclass

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
CLOSE_NORMAL = 1000
MAX_FRAME = 16 * 1024 * 1024  # gorilla/websocket fragments at its write buffer (~33 KiB); anything near this is abuse

# Kubernetes channel protocols.
V4_CHANNEL = "v4.channel.k8s.io"
V5_CHANNEL = "v5.channel.k8s.io"
SPDY_TUNNEL_PREFIX = "SPDY/3.1+"
STDIN, STDOUT, STDERR, ERROR, RESIZE, CLOSE = 0, 1, 2, 3, 4, 255


class WebSocketError(Exception):
    """The peer broke the framing: fail the connection (close code 1002)."""


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key``."""
    return base64.b64encode(hashlib.sha1((key.strip() + GUID).encode(), usedforsecurity=False).digest()).decode()


def _mask(payload: bytes, key: bytes) -> bytes:
    # XOR with the repeated key as one big integer: linear, and ~100x faster than a Python loop per byte.
    n = len(payload)
    if n == 0:
        return b""
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bytes | None = None) -> bytes:
    """One frame: servers send unmasked (``mask=None``), clients with a 4-byte ``mask``."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask is not None else 0
    if n < 126:
        head.append(bit | n)
    elif n < 1 << 16:
        head.append(bit | 126)
        head += struct.pack(">H", n)
    else:
        head.append(bit | 127)
        head += struct.pack(">Q", n)
    if mask is not None:
        return bytes(head) + mask + _mask(payload, mask)
    return bytes(head) + payload


def close_payload(code: int = CLOSE_NORMAL, reason: str = "") -> bytes:
    return struct.pack(">H", code) + reason.encode()


@dataclass
class Frame:
    opcode: int
    payload: bytes
    fin: bool


class FrameParser:
    """Bytes in, whole frames out (unmasked). ``expect_masked``: the peer is a client (clients mask, servers not)."""

    def __init__(self, *, expect_masked: bool = True) -> None:
        self._buf = bytearray()
        self._expect_masked = expect_masked

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        while len(self._buf) >= 2:
            b0, b1 = self._buf[0], self._buf[1]
            if b0 & 0x70:
                raise WebSocketError("reserved bits set without a negotiated extension")
            masked, n, pos = bool(b1 & 0x80), b1 & 0x7F, 2
            if masked != self._expect_masked:
                raise WebSocketError("client frames must be masked, server frames not")
            if n == 126:
                if len(self._buf) < 4:
                    break
                (n,) = struct.unpack_from(">H", self._buf, 2)
                pos = 4
            elif n == 127:
                if len(self._buf) < 10:
                    break
                (n,) = struct.unpack_from(">Q", self._buf, 2)
                pos = 10
            if n > MAX_FRAME:
                raise WebSocketError(f"frame of {n} bytes")
            end = pos + (4 if masked else 0) + n
            if len(self._buf) < end:
                break
            opcode = b0 & 0x0F
            if opcode >= 0x8 and (n > 125 or not b0 & 0x80):
                raise WebSocketError("control frames are short and never fragmented")
            if masked:
                key = bytes(self._buf[pos : pos + 4])
                payload = _mask(bytes(self._buf[pos + 4 : end]), key)
            else:
                payload = bytes(self._buf[pos:end])
            del self._buf[:end]
            out.append(Frame(opcode, payload, bool(b0 & 0x80)))
        return out


@dataclass
class ChannelData:
    channel: int
    data: bytes


class ChannelDecoder:
    """Data frames of a ``v4``/``v5.channel.k8s.io`` connection into (channel, bytes) pieces.

    The channel byte leads a *message*; a message fragmented into several frames carries it in the first only, so
    the current message's channel is remembered across continuation frames.
    """

    def __init__(self) -> None:
        self._channel: int | None = None

    def feed(self, frame: Frame) -> list[ChannelData]:
        if frame.opcode == OP_BINARY:
            if not frame.payload:
                self._channel = None if frame.fin else -1
                return []
            self._channel = frame.payload[0]
            data = frame.payload[1:]
        elif frame.opcode == OP_CONTINUATION and self._channel is not None:
            if self._channel == -1 and frame.payload:  # the channel byte came in a later fragment
                self._channel, data = frame.payload[0], frame.payload[1:]
            else:
                data = frame.payload
        else:
            raise WebSocketError(f"unexpected frame opcode {frame.opcode} on a channel connection")
        channel = self._channel
        if frame.fin:
            self._channel = None
        return [ChannelData(channel, data)] if channel is not None and channel >= 0 else []


def channel_message(channel: int, data: bytes) -> bytes:
    """One binary frame carrying ``data`` on ``channel`` (server to client: unmasked)."""
    return encode_frame(OP_BINARY, bytes([channel]) + data)
