"""SPDY/3.1 framing, free of I/O: the multiplexing protocol Kubernetes' exec, attach and port-forward still speak.

kubectl (through moby/spdystream) upgrades an HTTP/1.1 connection with ``Upgrade: SPDY/3.1`` and then opens one
SPDY stream per channel (stdin, stdout, error, or a port's data and error). This module turns received bytes into
events and actions into bytes; whoever owns the socket feeds it (:meth:`SpdyConnection.receive`) and drains it
(:meth:`SpdyConnection.data_to_send`).

Wire format (draft-mbelshe-httpbis-spdy-00 / SPDY/3.1): a control frame is ``1 | version(15) | type(16) |
flags(8) | length(24) | payload``, a data frame ``0 | stream id(31) | flags(8) | length(24) | data``. Header blocks
(SYN_STREAM, SYN_REPLY, HEADERS) are ``count(32)`` then ``len(32) name len(32) value`` pairs, names lower-case,
several values of one name joined by NUL, and compressed with zlib, one context per direction for the whole
connection, primed with SPDY/3's dictionary, each block ending with a sync flush.

Flow control: SPDY/3.1 gives each stream a send window (64 KiB unless SETTINGS say otherwise) that WINDOW_UPDATE
frames widen. The windows are accounted here (:attr:`Stream.send_window`, :meth:`SpdyConnection.acknowledge`), but
moby/spdystream, the only peer Kubernetes has, neither sends WINDOW_UPDATE nor honours it: it relies on TCP
back-pressure (its reader blocks until the stream's data is consumed). So sending is never refused for want of
window, and window updates are sent only if asked for (``send_window_updates``); a driver that must interoperate
with spdystream bounds memory by pausing the socket instead.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

VERSION = 3
SYN_STREAM, SYN_REPLY, RST_STREAM, SETTINGS, PING, GOAWAY, HEADERS, WINDOW_UPDATE = 1, 2, 3, 4, 6, 7, 8, 9
FLAG_FIN = 0x01
FLAG_UNIDIRECTIONAL = 0x02
SETTINGS_INITIAL_WINDOW_SIZE = 7
DEFAULT_WINDOW = 64 * 1024
MAX_DATA_LENGTH = (1 << 24) - 1
# RST_STREAM status codes.
PROTOCOL_ERROR, INVALID_STREAM, REFUSED_STREAM, UNSUPPORTED_VERSION, CANCEL = 1, 2, 3, 4, 5
INTERNAL_ERROR, FLOW_CONTROL_ERROR, STREAM_IN_USE, STREAM_ALREADY_CLOSED = 6, 7, 8, 9

Headers = dict[str, list[str]]

# The zlib dictionary of SPDY/3 (section 2.6.10.1), 1,423 bytes.
DICTIONARY = bytes.fromhex(
    "000000076f7074696f6e73000000046865616400000004706f7374000000037075740000000664656c657465000000057472616365000000"
    "066163636570740000000e6163636570742d636861727365740000000f6163636570742d656e636f64696e670000000f6163636570742d6c"
    "616e67756167650000000d6163636570742d72616e6765730000000361676500000005616c6c6f770000000d617574686f72697a6174696f"
    "6e0000000d63616368652d636f6e74726f6c0000000a636f6e6e656374696f6e0000000c636f6e74656e742d6261736500000010636f6e74"
    "656e742d656e636f64696e6700000010636f6e74656e742d6c616e67756167650000000e636f6e74656e742d6c656e67746800000010636f"
    "6e74656e742d6c6f636174696f6e0000000b636f6e74656e742d6d64350000000d636f6e74656e742d72616e67650000000c636f6e74656e"
    "742d74797065000000046461746500000004657461670000000665787065637400000007657870697265730000000466726f6d0000000468"
    "6f73740000000869662d6d617463680000001169662d6d6f6469666965642d73696e63650000000d69662d6e6f6e652d6d61746368000000"
    "0869662d72616e67650000001369662d756e6d6f6469666965642d73696e63650000000d6c6173742d6d6f646966696564000000086c6f63"
    "6174696f6e0000000c6d61782d666f72776172647300000006707261676d610000001270726f78792d61757468656e746963617465000000"
    "1370726f78792d617574686f72697a6174696f6e0000000572616e676500000007726566657265720000000b72657472792d616674657200"
    "00000673657276657200000002746500000007747261696c6572000000117472616e736665722d656e636f64696e67000000077570677261"
    "64650000000a757365722d6167656e74000000047661727900000003766961000000077761726e696e67000000107777772d61757468656e"
    "746963617465000000066d6574686f64000000036765740000000673746174757300000006323030204f4b0000000776657273696f6e0000"
    "0008485454502f312e310000000375726c000000067075626c69630000000a7365742d636f6f6b69650000000a6b6565702d616c69766500"
    "0000066f726967696e3130303130313230313230323230353230363330303330323330333330343330353330363330373430323430353430"
    "36343037343038343039343130343131343132343133343134343135343136343137353032353034353035323033204e6f6e2d417574686f"
    "726974617469766520496e666f726d6174696f6e323034204e6f20436f6e74656e74333031204d6f766564205065726d616e656e746c7934"
    "303020426164205265717565737434303120556e617574686f72697a656434303320466f7262696464656e343034204e6f7420466f756e64"
    "35303020496e7465726e616c20536572766572204572726f72353031204e6f7420496d706c656d656e746564353033205365727669636520"
    "556e617661696c61626c654a616e20466562204d617220417072204d6179204a756e204a756c204175672053657074204f6374204e6f7620"
    "4465632030303a30303a3030204d6f6e2c205475652c205765642c205468752c204672692c205361742c2053756e2c20474d546368756e6b"
    "65642c746578742f68746d6c2c696d6167652f706e672c696d6167652f6a70672c696d6167652f6769662c6170706c69636174696f6e2f78"
    "6d6c2c6170706c69636174696f6e2f7868746d6c2b786d6c2c746578742f706c61696e2c746578742f6a6176617363726970742c7075626c"
    "6963707269766174656d61782d6167653d677a69702c6465666c6174652c73646368636861727365743d7574662d38636861727365743d69"
    "736f2d383835392d312c7574662d2c2a2c656e713d302e"
)


class SpdyError(Exception):
    """The peer broke the protocol: the connection cannot continue."""


# ---- frames
@dataclass
class DataFrame:
    stream_id: int
    data: bytes
    flags: int = 0


@dataclass
class SynStream:
    stream_id: int
    headers: Headers
    associated_to: int = 0
    priority: int = 0
    flags: int = 0


@dataclass
class SynReply:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass
class HeadersFrame:
    stream_id: int
    headers: Headers
    flags: int = 0


@dataclass
class RstStream:
    stream_id: int
    status: int


@dataclass
class Settings:
    values: list[tuple[int, int, int]]  # (flags, id, value)
    flags: int = 0


@dataclass
class Ping:
    id: int


@dataclass
class GoAway:
    last_good_stream_id: int
    status: int = 0


@dataclass
class WindowUpdate:
    stream_id: int
    delta: int


Frame = DataFrame | SynStream | SynReply | HeadersFrame | RstStream | Settings | Ping | GoAway | WindowUpdate


def encode_header_block(headers: Headers) -> bytes:
    """The uncompressed name/value block: names lower-cased, several values joined by NUL."""
    out = [struct.pack(">I", len(headers))]
    for name, values in headers.items():
        n, v = name.lower().encode(), "\x00".join(values).encode()
        out += [struct.pack(">I", len(n)), n, struct.pack(">I", len(v)), v]
    return b"".join(out)


def decode_header_block(block: bytes) -> Headers:
    out: Headers = {}
    try:
        (count,) = struct.unpack_from(">I", block, 0)
        pos = 4
        for _ in range(count):
            (n,) = struct.unpack_from(">I", block, pos)
            name = block[pos + 4 : pos + 4 + n].decode()
            pos += 4 + n
            (n,) = struct.unpack_from(">I", block, pos)
            value = block[pos + 4 : pos + 4 + n].decode()
            if len(value) != n:
                raise SpdyError("truncated header block")
            pos += 4 + n
            out.setdefault(name.lower(), []).extend(value.split("\x00"))
    except (struct.error, UnicodeDecodeError) as e:
        raise SpdyError(f"malformed header block: {e}") from e
    if pos != len(block):
        raise SpdyError("header block longer than its pairs")
    return out


class HeaderCompressor:
    """One direction's zlib context: every block is sync-flushed so the peer can decode it on its own."""

    def __init__(self) -> None:
        self._z = zlib.compressobj(9, zlib.DEFLATED, 15, 8, zlib.Z_DEFAULT_STRATEGY, DICTIONARY)

    def compress(self, headers: Headers) -> bytes:
        return self._z.compress(encode_header_block(headers)) + self._z.flush(zlib.Z_SYNC_FLUSH)


class HeaderDecompressor:
    def __init__(self) -> None:
        self._z = zlib.decompressobj(15, DICTIONARY)

    def decompress(self, block: bytes) -> Headers:
        try:
            raw = self._z.decompress(block)
        except zlib.error as e:
            raise SpdyError(f"header block does not decompress: {e}") from e
        return decode_header_block(raw)


def _control(kind: int, flags: int, payload: bytes) -> bytes:
    return struct.pack(">HHI", 0x8000 | VERSION, kind, (flags << 24) | len(payload)) + payload


def encode_frame(frame: Frame, compressor: HeaderCompressor) -> bytes:
    """Serialize one frame; header blocks go through ``compressor`` (the connection's sending context)."""
    match frame:
        case DataFrame(stream_id, data, flags):
            if len(data) > MAX_DATA_LENGTH:
                raise ValueError("a data frame carries at most 16 MiB - 1")
            return struct.pack(">II", stream_id & 0x7FFFFFFF, (flags << 24) | len(data)) + data
        case SynStream(stream_id, headers, associated_to, priority, flags):
            head = struct.pack(">IIBB", stream_id, associated_to, (priority & 7) << 5, 0)
            return _control(SYN_STREAM, flags, head + compressor.compress(headers))
        case SynReply(stream_id, headers, flags):
            return _control(SYN_REPLY, flags, struct.pack(">I", stream_id) + compressor.compress(headers))
        case HeadersFrame(stream_id, headers, flags):
            return _control(HEADERS, flags, struct.pack(">I", stream_id) + compressor.compress(headers))
        case RstStream(stream_id, status):
            return _control(RST_STREAM, 0, struct.pack(">II", stream_id, status))
        case Settings(values, flags):
            body = struct.pack(">I", len(values)) + b"".join(struct.pack(">II", (f << 24) | i, v) for f, i, v in values)
            return _control(SETTINGS, flags, body)
        case Ping(id):
            return _control(PING, 0, struct.pack(">I", id))
        case GoAway(last, status):
            return _control(GOAWAY, 0, struct.pack(">II", last, status))
        case WindowUpdate(stream_id, delta):
            return _control(WINDOW_UPDATE, 0, struct.pack(">II", stream_id, delta))
    raise TypeError(f"not a SPDY frame: {frame!r}")


class FrameDecoder:
    """Bytes in, whole frames out; keeps a partial frame until the rest arrives."""

    def __init__(self) -> None:
        self._buf = bytearray()
        self._headers = HeaderDecompressor()

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        frames: list[Frame] = []
        while len(self._buf) >= 8:
            word, flags_length = struct.unpack_from(">II", self._buf, 0)
            length = flags_length & 0xFFFFFF
            if len(self._buf) < 8 + length:
                break
            payload = bytes(self._buf[8 : 8 + length])
            del self._buf[: 8 + length]
            flags = flags_length >> 24
            if not word & 0x80000000:
                frames.append(DataFrame(word & 0x7FFFFFFF, payload, flags))
                continue
            version, kind = (word >> 16) & 0x7FFF, word & 0xFFFF
            if version != VERSION:
                raise SpdyError(f"unsupported SPDY version {version}")
            frame = self._control(kind, flags, payload)
            if frame is not None:
                frames.append(frame)
        return frames

    def _control(self, kind: int, flags: int, p: bytes) -> Frame | None:
        try:
            if kind == SYN_STREAM:
                sid, assoc, prio, _ = struct.unpack_from(">IIBB", p, 0)
                return SynStream(sid & 0x7FFFFFFF, self._headers.decompress(p[10:]), assoc & 0x7FFFFFFF, prio >> 5,
                                 flags)  # fmt: skip
            if kind == SYN_REPLY:
                (sid,) = struct.unpack_from(">I", p, 0)
                return SynReply(sid & 0x7FFFFFFF, self._headers.decompress(p[4:]), flags)
            if kind == HEADERS:
                (sid,) = struct.unpack_from(">I", p, 0)
                return HeadersFrame(sid & 0x7FFFFFFF, self._headers.decompress(p[4:]), flags)
            if kind == RST_STREAM:
                sid, status = struct.unpack_from(">II", p, 0)
                return RstStream(sid & 0x7FFFFFFF, status)
            if kind == SETTINGS:
                (count,) = struct.unpack_from(">I", p, 0)
                values = []
                for i in range(count):
                    fid, value = struct.unpack_from(">II", p, 4 + 8 * i)
                    values.append((fid >> 24, fid & 0xFFFFFF, value))
                return Settings(values, flags)
            if kind == PING:
                return Ping(struct.unpack_from(">I", p, 0)[0])
            if kind == GOAWAY:
                last, status = struct.unpack_from(">II", p, 0) if len(p) >= 8 else (*struct.unpack_from(">I", p, 0), 0)
                return GoAway(last & 0x7FFFFFFF, status)
            if kind == WINDOW_UPDATE:
                sid, delta = struct.unpack_from(">II", p, 0)
                return WindowUpdate(sid & 0x7FFFFFFF, delta & 0x7FFFFFFF)
        except struct.error as e:
            raise SpdyError(f"short control frame of type {kind}") from e
        return None  # unknown control frame types are ignored, as the specification asks


# ---- the connection state machine
@dataclass
class StreamOpened:
    stream_id: int
    headers: Headers
    fin: bool  # the peer sends nothing on it


@dataclass
class StreamReplied:
    stream_id: int
    headers: Headers
    fin: bool


@dataclass
class DataReceived:
    stream_id: int
    data: bytes
    fin: bool


@dataclass
class StreamReset:
    stream_id: int
    status: int


@dataclass
class PingAcknowledged:
    id: int


@dataclass
class GoAwayReceived:
    last_good_stream_id: int
    status: int


Event = StreamOpened | StreamReplied | DataReceived | StreamReset | PingAcknowledged | GoAwayReceived


@dataclass
class Stream:
    id: int
    headers: Headers
    local_closed: bool = False  # we sent FIN
    remote_closed: bool = False  # the peer sent FIN
    send_window: int = DEFAULT_WINDOW  # what we may still send before the peer widens it
    receive_window: int = DEFAULT_WINDOW  # what the peer may still send before we widen it
    consumed: int = 0  # bytes the application consumed that no WINDOW_UPDATE has returned yet


@dataclass
class SpdyConnection:
    """One side of a SPDY/3.1 connection. ``server`` streams are even-numbered, a client's odd."""

    server: bool = True
    send_window_updates: bool = False
    streams: dict[int, Stream] = field(default_factory=dict)
    initial_window: int = DEFAULT_WINDOW
    last_peer_stream: int = 0
    gone_away: bool = False

    def __post_init__(self) -> None:
        self._decoder = FrameDecoder()
        self._compressor = HeaderCompressor()
        self._out: list[bytes] = []
        self._next_stream = 2 if self.server else 1
        self._next_ping = 2 if self.server else 1

    # -- input
    def receive(self, data: bytes) -> list[Event]:
        events: list[Event] = []
        for frame in self._decoder.feed(data):
            self._handle(frame, events)
        return events

    def _handle(self, frame: Frame, events: list[Event]) -> None:
        match frame:
            case DataFrame(sid, data, flags):
                stream = self.streams.get(sid)
                if stream is None or stream.remote_closed:
                    # Data for a stream we reset or never saw: spdystream drops it too.
                    return
                stream.receive_window -= len(data)
                fin = bool(flags & FLAG_FIN)
                if fin:
                    stream.remote_closed = True
                events.append(DataReceived(sid, data, fin))
                self._forget_if_done(stream)
            case SynStream(sid, headers, _, _, flags):
                if sid == 0 or sid in self.streams or (sid % 2 == 0) == self.server:
                    self._send(RstStream(sid, PROTOCOL_ERROR))
                    return
                self.last_peer_stream = max(self.last_peer_stream, sid)
                fin = bool(flags & (FLAG_FIN | FLAG_UNIDIRECTIONAL))
                self.streams[sid] = Stream(sid, headers, remote_closed=fin, send_window=self.initial_window)
                events.append(StreamOpened(sid, headers, fin))
            case SynReply(sid, headers, flags) | HeadersFrame(sid, headers, flags):
                stream = self.streams.get(sid)
                if stream is None:
                    return
                fin = bool(flags & FLAG_FIN)
                stream.remote_closed = stream.remote_closed or fin
                events.append(StreamReplied(sid, headers, fin))
                self._forget_if_done(stream)
            case RstStream(sid, status):
                if self.streams.pop(sid, None) is not None:
                    events.append(StreamReset(sid, status))
            case Settings(values, _):
                for _, sid_, value in values:
                    if sid_ == SETTINGS_INITIAL_WINDOW_SIZE:
                        delta = value - self.initial_window
                        self.initial_window = value
                        for s in self.streams.values():
                            s.send_window += delta
            case Ping(id):
                if (id % 2 == 0) == self.server:
                    events.append(PingAcknowledged(id))  # the answer to one of ours
                else:
                    self._send(Ping(id))  # the peer's: echo it, as spdystream does
            case GoAway(last, status):
                self.gone_away = True
                events.append(GoAwayReceived(last, status))
            case WindowUpdate(sid, delta):
                stream = self.streams.get(sid)
                if stream is not None:
                    stream.send_window += delta

    def _forget_if_done(self, stream: Stream) -> None:
        if stream.local_closed and stream.remote_closed:
            self.streams.pop(stream.id, None)

    # -- actions
    def _send(self, frame: Frame) -> None:
        self._out.append(encode_frame(frame, self._compressor))

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    def reply(self, stream_id: int, headers: Headers | None = None, *, fin: bool = False) -> None:
        """Accept a stream the peer opened (its CreateStream waits for this)."""
        self._send(SynReply(stream_id, headers or {}, FLAG_FIN if fin else 0))
        if fin:
            self._close_local(stream_id)

    def open_stream(self, headers: Headers, *, fin: bool = False) -> int:
        sid = self._next_stream
        self._next_stream += 2
        self.streams[sid] = Stream(sid, headers, send_window=self.initial_window, local_closed=fin)
        self._send(SynStream(sid, headers, flags=FLAG_FIN if fin else 0))
        return sid

    def send_data(self, stream_id: int, data: bytes, *, fin: bool = False, chunk: int = 64 * 1024) -> None:
        """Queue ``data`` on a stream (in frames of at most ``chunk`` bytes), half-closing it if ``fin``."""
        stream = self.streams.get(stream_id)
        if stream is None or stream.local_closed:
            return  # reset by the peer meanwhile: what was in flight is dropped, as on a real server
        for i in range(0, len(data), chunk):
            part = data[i : i + chunk]
            last = fin and i + chunk >= len(data)
            self._send(DataFrame(stream_id, part, FLAG_FIN if last else 0))
        if not data and fin:
            self._send(DataFrame(stream_id, b"", FLAG_FIN))
        stream.send_window -= len(data)
        if fin:
            self._close_local(stream_id)

    def _close_local(self, stream_id: int) -> None:
        stream = self.streams.get(stream_id)
        if stream is not None:
            stream.local_closed = True
            self._forget_if_done(stream)

    def acknowledge(self, stream_id: int, consumed: int) -> None:
        """The application consumed ``consumed`` bytes of a stream: widen the peer's window (if enabled)."""
        stream = self.streams.get(stream_id)
        if stream is None or not self.send_window_updates:
            return
        stream.consumed += consumed
        if stream.consumed >= DEFAULT_WINDOW // 2:  # batched: one update per half window, as browsers did
            self._send(WindowUpdate(stream_id, stream.consumed))
            stream.receive_window += stream.consumed
            stream.consumed = 0

    def reset(self, stream_id: int, status: int = CANCEL) -> None:
        self.streams.pop(stream_id, None)
        self._send(RstStream(stream_id, status))

    def ping(self) -> int:
        pid = self._next_ping
        self._next_ping += 2
        self._send(Ping(pid))
        return pid

    def goaway(self, status: int = 0) -> None:
        self.gone_away = True
        self._send(GoAway(self.last_peer_stream, status))
