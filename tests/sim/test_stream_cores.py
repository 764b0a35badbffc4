"""The pure cores behind exec, attach and port-forward: SPDY/3.1 framing and sessions, WebSocket framing and the
Kubernetes channel codec, and the simulated containers' commands. No sockets."""

from __future__ import annotations

import asyncio
import struct
import zlib

import pytest

from halyard.core import spdy, websocket
from halyard.sim import containers
from halyard.sim.streaming import exit_status

# What kubectl 1.28 sent first on a SPDY exec connection (recorded against the simulator): SYN_STREAMs for the
# error, stdout and stderr streams, their header blocks compressed by Go's zlib with SPDY/3's dictionary.
KUBECTL_128_EXEC = bytes.fromhex(
    "80030001000000290000000100000000000078f9e3c6a7c26260606004a7b392a2d4c45c6851c29a0a0a6800000000ffff"
    "800300010000001900000003000000000000c22ac5565c92925f5a02000000ffff"
    "800300010000001500000005000000000000c229975a5404000000ffff"
)


def test_decodes_what_kubectl_sends() -> None:
    frames = spdy.FrameDecoder().feed(KUBECTL_128_EXEC)
    assert frames == [
        spdy.SynStream(1, {"streamtype": ["error"]}),
        spdy.SynStream(3, {"streamtype": ["stdout"]}),
        spdy.SynStream(5, {"streamtype": ["stderr"]}),
    ]


def test_header_blocks_use_the_dictionary_and_one_context_per_direction() -> None:
    compressor = spdy.HeaderCompressor()
    first = compressor.compress({"streamtype": ["error"], "port": ["80"]})
    cmf, flg, dictid = first[0], first[1], struct.unpack(">I", first[2:6])[0]
    assert cmf == 0x78 and flg & 0x20  # FDICT set: the block names a preset dictionary ...
    assert dictid == zlib.adler32(spdy.DICTIONARY) == 0xE3C6A7C2  # ... SPDY/3's
    assert first.endswith(b"\x00\x00\xff\xff")  # sync-flushed: decodable on its own
    with pytest.raises(zlib.error):
        zlib.decompressobj().decompress(first)  # without the dictionary it cannot be read
    second = compressor.compress({"streamtype": ["data"], "port": ["80"]})
    decompressor = spdy.HeaderDecompressor()
    assert decompressor.decompress(first) == {"streamtype": ["error"], "port": ["80"]}
    assert decompressor.decompress(second) == {"streamtype": ["data"], "port": ["80"]}
    with pytest.raises(spdy.SpdyError):
        spdy.HeaderDecompressor().decompress(second)  # the second block refers back into the first's context


def test_header_block_layout() -> None:
    block = spdy.encode_header_block({"X-Stream": ["a", "b"]})
    assert block == struct.pack(">I", 1) + struct.pack(">I", 8) + b"x-stream" + struct.pack(">I", 3) + b"a\x00b"
    assert spdy.decode_header_block(block) == {"x-stream": ["a", "b"]}
    with pytest.raises(spdy.SpdyError):
        spdy.decode_header_block(block[:-1])


@pytest.mark.parametrize(
    "frame",
    [
        spdy.DataFrame(7, b"payload", spdy.FLAG_FIN),
        spdy.DataFrame(2, b""),
        spdy.SynStream(9, {"streamtype": ["data"], "port": ["8080"], "requestid": ["0"]}, 0, 3, spdy.FLAG_FIN),
        spdy.SynReply(9, {}),
        spdy.HeadersFrame(9, {"a": ["b"]}, spdy.FLAG_FIN),
        spdy.RstStream(9, spdy.CANCEL),
        spdy.Settings([(0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20), (1, 4, 100)]),
        spdy.Ping(5),
        spdy.GoAway(11, 0),
        spdy.WindowUpdate(9, 65536),
    ],
)
def test_frames_round_trip(frame: spdy.Frame) -> None:
    wire = spdy.encode_frame(frame, spdy.HeaderCompressor())
    decoder = spdy.FrameDecoder()
    # Byte by byte: a frame split anywhere waits for its rest.
    out = [f for i in range(len(wire)) for f in decoder.feed(wire[i : i + 1])]
    assert out == [frame]


def test_control_frame_header_bits() -> None:
    wire = spdy.encode_frame(spdy.Ping(1), spdy.HeaderCompressor())
    assert wire == bytes.fromhex("80030006") + bytes.fromhex("00000004") + bytes.fromhex("00000001")
    with pytest.raises(spdy.SpdyError):
        spdy.FrameDecoder().feed(bytes.fromhex("80020006000000040000000001"))  # SPDY/2


def _pair() -> tuple[spdy.SpdyConnection, spdy.SpdyConnection]:
    return spdy.SpdyConnection(server=False), spdy.SpdyConnection(server=True)


def test_streams_replies_data_and_half_close() -> None:
    client, server = _pair()
    sid = client.open_stream({"streamtype": ["stdin"]})
    assert sid == 1
    [opened] = server.receive(client.data_to_send())
    assert opened == spdy.StreamOpened(1, {"streamtype": ["stdin"]}, False)
    server.reply(1)
    assert client.receive(server.data_to_send()) == [spdy.StreamReplied(1, {}, False)]
    client.send_data(1, b"abc", fin=True)
    assert server.receive(client.data_to_send()) == [spdy.DataReceived(1, b"abc", True)]
    assert server.streams[1].remote_closed
    server.send_data(1, b"", fin=True)
    assert 1 not in server.streams  # closed both ways: forgotten
    server.send_data(1, b"late")  # writing to a forgotten stream drops the data, as after a reset
    assert client.receive(server.data_to_send()) == [spdy.DataReceived(1, b"", True)]


def test_resets_and_protocol_errors() -> None:
    client, server = _pair()
    client.open_stream({})
    server.receive(client.data_to_send())
    client.reset(1)
    assert server.receive(client.data_to_send()) == [spdy.StreamReset(1, spdy.CANCEL)]
    assert server.receive(spdy.encode_frame(spdy.DataFrame(1, b"x"), spdy.HeaderCompressor())) == []  # dropped
    # A client may not open even-numbered streams: refused with a reset.
    bad = spdy.encode_frame(spdy.SynStream(2, {}), spdy.HeaderCompressor())
    assert spdy.SpdyConnection(server=True).receive(bad) == []
    fresh = spdy.SpdyConnection(server=True)
    fresh.receive(bad)
    assert spdy.FrameDecoder().feed(fresh.data_to_send()) == [spdy.RstStream(2, spdy.PROTOCOL_ERROR)]


def test_pings_are_echoed_and_ours_acknowledged() -> None:
    client, server = _pair()
    pid = client.ping()
    assert pid % 2 == 1
    assert server.receive(client.data_to_send()) == []
    assert client.receive(server.data_to_send()) == [spdy.PingAcknowledged(pid)]  # echoed with its id


def test_flow_control_windows() -> None:
    client, server = _pair()
    server.send_window_updates = True
    client.open_stream({})
    server.receive(client.data_to_send())
    server.reply(1)
    client.receive(server.data_to_send())
    assert client.streams[1].send_window == spdy.DEFAULT_WINDOW
    client.send_data(1, b"x" * 40_000)
    assert client.streams[1].send_window == spdy.DEFAULT_WINDOW - 40_000
    server.receive(client.data_to_send())
    assert server.streams[1].receive_window == spdy.DEFAULT_WINDOW - 40_000
    server.acknowledge(1, 20_000)
    assert server.data_to_send() == b""  # batched: less than half a window consumed
    server.acknowledge(1, 20_000)
    client.receive(server.data_to_send())
    assert server.streams[1].receive_window == spdy.DEFAULT_WINDOW
    assert client.streams[1].send_window == spdy.DEFAULT_WINDOW
    # SETTINGS_INITIAL_WINDOW_SIZE moves every open stream's window by the difference.
    settings = spdy.Settings([(0, spdy.SETTINGS_INITIAL_WINDOW_SIZE, 2 * spdy.DEFAULT_WINDOW)])
    client.receive(spdy.encode_frame(settings, spdy.HeaderCompressor()))
    assert client.streams[1].send_window == 2 * spdy.DEFAULT_WINDOW
    # Sending past the window is not refused: spdystream never widens windows (see the module's docstring).
    client.send_data(1, b"y" * (3 * spdy.DEFAULT_WINDOW))
    assert client.streams[1].send_window == -spdy.DEFAULT_WINDOW


def test_goaway() -> None:
    client, server = _pair()
    client.open_stream({})
    server.receive(client.data_to_send())
    server.goaway()
    assert client.receive(server.data_to_send()) == [spdy.GoAwayReceived(1, 0)]


# ---- WebSocket
def test_accept_key_rfc6455_example() -> None:
    assert websocket.accept_key("dGhlIHNhbXBsZSBub25jZQ==") == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 1, 125, 126, 65535, 65536, 200_000])
def test_masked_frames_round_trip(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    wire = websocket.encode_frame(websocket.OP_BINARY, payload, mask=b"\x01\x02\x03\x04")
    body = wire[-size:] if size else b""
    assert body[:4] == bytes(a ^ b for a, b in zip(payload[:4], b"\x01\x02\x03\x04", strict=False))  # masked
    parser = websocket.FrameParser(expect_masked=True)
    out = parser.feed(wire[:3]) + parser.feed(wire[3:])
    assert out == [websocket.Frame(websocket.OP_BINARY, payload, True)]


def test_framing_errors() -> None:
    with pytest.raises(websocket.WebSocketError):
        websocket.FrameParser(expect_masked=True).feed(websocket.encode_frame(websocket.OP_BINARY, b"x"))
    with pytest.raises(websocket.WebSocketError):
        big_ping = websocket.encode_frame(websocket.OP_PING, b"x" * 126, mask=b"abcd")
        websocket.FrameParser().feed(big_ping)


def test_channel_codec() -> None:
    assert websocket.channel_message(websocket.STDOUT, b"hi") == b"\x82\x03\x01hi"
    decoder = websocket.ChannelDecoder()
    first = websocket.Frame(websocket.OP_BINARY, b"\x00ab", False)
    rest = websocket.Frame(websocket.OP_CONTINUATION, b"cd", True)
    assert decoder.feed(first) + decoder.feed(rest) == [
        websocket.ChannelData(websocket.STDIN, b"ab"),
        websocket.ChannelData(websocket.STDIN, b"cd"),  # a continuation keeps its message's channel
    ]
    close = websocket.Frame(websocket.OP_BINARY, bytes([websocket.CLOSE, websocket.STDIN]), True)
    assert decoder.feed(close) == [websocket.ChannelData(websocket.CLOSE, b"\x00")]  # v5: stdin half-closed
    with pytest.raises(websocket.WebSocketError):
        decoder.feed(websocket.Frame(websocket.OP_TEXT, b"x", True))


def test_exit_status_as_the_kubelet_writes_it() -> None:
    assert exit_status(0, ("true",)) == {"metadata": {}, "status": "Success"}
    failed = exit_status(3, ("sh", "-c", "exit 3"))
    assert failed["reason"] == "NonZeroExitCode"
    assert failed["details"]["causes"] == [{"reason": "ExitCode", "message": "3"}]


# ---- the simulated container's commands
class _IO:
    def __init__(self, stdin: bytes = b"") -> None:
        self.stdin = [stdin[i : i + 3] for i in range(0, len(stdin), 3)]
        self.out: dict[int, bytearray] = {1: bytearray(), 2: bytearray()}

    async def read(self) -> bytes:
        return self.stdin.pop(0) if self.stdin else b""

    async def write(self, channel: int, data: bytes) -> None:
        self.out[channel] += data


def _run(argv: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    io = _IO(stdin)
    box = containers.Container("box", "default", "main", {"GREETING": "hi"})
    code = asyncio.run(containers.run_command(argv, io, box))
    return code, io.out[1].decode(), io.out[2].decode()


def test_commands() -> None:
    assert _run(["echo", "hi", "there"]) == (0, "hi there\n", "")
    assert _run(["echo", "-n", "x"]) == (0, "x", "")
    assert _run(["cat"], b"line one\nline two\n") == (0, "line one\nline two\n", "")
    assert _run(["hostname"]) == (0, "box\n", "")
    assert "GREETING=hi\n" in _run(["env"])[1]
    assert _run(["false"])[0] == 1
    code, _, err = _run(["nosuch", "arg"])
    assert code == 127 and '"nosuch": executable file not found in $PATH' in err


def test_shell_scripts() -> None:
    assert _run(["sh", "-c", "exit 3"]) == (3, "", "")
    assert _run(["sh", "-c", "echo a; echo b >&2; false || echo c && echo d"]) == (0, "a\nc\nd\n", "b\n")
    assert _run(["sh", "-c", "true && exit 4; echo never"]) == (4, "", "")
    assert _run(["sh", "-c", "cat | cat"], b"piped") == (0, "piped", "")
    assert _run(["sh", "-c", "echo hidden > /dev/null; nope"]) == (127, "", "sh: nope: not found\n")
    assert _run(["sh"], b"echo from stdin; exit 5") == (5, "from stdin\n", "")


def test_interactive_shell_on_a_terminal() -> None:
    # kubectl exec -it POD -- sh: raw mode, so the shell echoes, edits the line, prompts and writes CR LF.
    io = _IO(b"echo a\rhostnamx\x7fe\rexit 3\rnever\r")
    box = containers.Container("box", "default", "main")
    code = asyncio.run(containers.run_command(["sh"], io, box, tty=True))
    assert code == 3
    assert io.out[1].decode() == "/ # echo a\r\na\r\n/ # hostnamx\b \be\r\nbox\r\n/ # exit 3\r\n"
