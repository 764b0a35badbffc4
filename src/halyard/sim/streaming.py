"""Upgraded connections: exec, attach and port-forward sessions over SPDY/3.1 or WebSocket on an asyncio transport.

After the ``101 Switching Protocols`` (``app.py`` writes it), the HTTP protocol hands every received byte to one of
these sessions and tells it when the transport's write buffer fills or drains. The sessions drive the pure protocol
cores (:mod:`halyard.core.spdy`, :mod:`halyard.core.websocket`) and the simulated container
(:mod:`halyard.sim.containers`).

Memory stays bounded both ways without relying on SPDY windows (kubectl's spdystream ignores them): a writer waits
while the transport's buffer is above its high-water mark (``pause_writing``/``resume_writing``), and reading from
the socket pauses while more than :data:`INBOUND_LIMIT` received bytes wait for their reader. TCP then pushes back on
the client, as it does against a real kubelet.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from halyard.core import spdy, websocket
from halyard.sim import containers

log = logging.getLogger(__name__)
INBOUND_LIMIT = 256 * 1024
CHUNK = 32 * 1024
CLOSE_GRACE = 2.0  # seconds the client gets to close first once a session has said everything
STREAM_CREATION_TIMEOUT = 30.0  # the kubelet's DefaultStreamCreationTimeout


# ---- what api.py decides (pure data)
@dataclass(frozen=True)
class ExecSpec:
    container: containers.Container
    command: tuple[str, ...]  # empty for attach
    stdin: bool
    stdout: bool
    stderr: bool
    tty: bool
    attach: bool = False
    first_line: int = 1  # attach: the number of the next heartbeat line the container writes


@dataclass(frozen=True)
class PortForwardSpec:
    pod: str
    namespace: str
    uid: str
    ports: frozenset[int] | None  # the ports something listens on; None: every port


@dataclass(frozen=True)
class UpgradePlan:
    framing: Literal["spdy", "websocket"]
    protocol: str  # the negotiated subprotocol
    spec: ExecSpec | PortForwardSpec


def exit_status(code: int, command: tuple[str, ...]) -> dict[str, Any]:
    """The v1 Status the kubelet writes on the error channel when a command ends (v4/v5 protocols)."""
    if code == 0:
        return {"metadata": {}, "status": "Success"}
    return {
        "metadata": {},
        "status": "Failure",
        "message": f"command terminated with non-zero exit code: error executing command [{' '.join(command)}], "
        f"exit code {code}",
        "reason": "NonZeroExitCode",
        "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
    }


# ---- the transport
class Link:
    """The upgraded transport: writes wait while its buffer is full; reading pauses while readers lag behind."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._writable = asyncio.Event()
        self._writable.set()
        self.closed = asyncio.Event()
        self._buffered = 0
        self._reading_paused = False

    def write(self, data: bytes) -> None:
        if data and not self.transport.is_closing():
            self.transport.write(data)

    async def drain(self) -> None:
        await self._writable.wait()
        if self.closed.is_set():
            raise ConnectionResetError("the client went away")

    def pause_writing(self) -> None:
        self._writable.clear()

    def resume_writing(self) -> None:
        self._writable.set()

    def lost(self) -> None:
        self.closed.set()
        self._writable.set()

    def received(self, n: int) -> None:
        self._buffered += n
        if self._buffered > INBOUND_LIMIT and not self._reading_paused:
            self._reading_paused = True
            self.transport.pause_reading()

    def consumed(self, n: int) -> None:
        self._buffered -= n
        if self._reading_paused and self._buffered <= INBOUND_LIMIT // 4:
            self._reading_paused = False
            if not self.transport.is_closing():
                self.transport.resume_reading()

    def close(self) -> None:
        self.transport.close()


class Pipe:
    """Bytes received for one reader (a stdin, a port's stream), counted against the link's inbound limit."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self._buf = bytearray()
        self._eof = False
        self._event = asyncio.Event()

    def feed(self, data: bytes) -> None:
        if data and not self._eof:
            self._buf += data
            self.link.received(len(data))
            self._event.set()

    def feed_eof(self) -> None:
        self._eof = True
        self._event.set()

    async def read(self) -> bytes:
        while not self._buf and not self._eof:
            self._event.clear()
            await self._event.wait()
        data = bytes(self._buf[:CHUNK])
        del self._buf[:CHUNK]
        self.link.consumed(len(data))
        return data


class Session:
    """One upgraded connection. ``app.py`` feeds it and awaits :meth:`run`."""

    def __init__(self, link: Link) -> None:
        self.link = link
        self.tasks: set[asyncio.Task[Any]] = set()
        self.finished = asyncio.Event()  # said everything; the connection may close

    def data_received(self, data: bytes) -> None:
        raise NotImplementedError

    def connection_lost(self) -> None:
        self.link.lost()
        self.finished.set()

    def spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self.tasks.discard(task)
        if not task.cancelled() and (e := task.exception()) is not None and not isinstance(e, ConnectionError):
            log.error("sim stream task failed error=%s", type(e).__name__, exc_info=e)
            self.finished.set()

    async def run(self) -> None:
        try:
            await self.finished.wait()
            if not self.link.closed.is_set():
                self.goodbye()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.link.closed.wait(), CLOSE_GRACE)
        finally:
            for t in list(self.tasks):
                t.cancel()
            self.link.close()

    def goodbye(self) -> None:
        """Last words before closing (a GOAWAY, a close frame)."""

    def stop(self) -> None:
        """The server is shutting down: say goodbye and close without waiting for the client."""
        if not self.link.closed.is_set():
            self.goodbye()
        self.link.lost()
        self.finished.set()


# ---- SPDY
class SpdySession(Session):
    """A SPDY/3.1 server connection; ``send_raw`` carries its bytes (the socket, or a WebSocket tunnel)."""

    def __init__(self, link: Link, send_raw: Callable[[bytes], None] | None = None) -> None:
        super().__init__(link)
        self.spdy = spdy.SpdyConnection(server=True)
        self.send_raw = send_raw or link.write
        self.inputs: dict[int, Pipe] = {}

    def flush(self) -> None:
        self.send_raw(self.spdy.data_to_send())

    def data_received(self, data: bytes) -> None:
        try:
            events = self.spdy.receive(data)
        except spdy.SpdyError as e:
            log.info("sim spdy protocol error: %s", e)
            self.finished.set()
            return
        for ev in events:
            self.handle(ev)
        self.flush()

    def handle(self, ev: spdy.Event) -> None:
        if isinstance(ev, spdy.StreamOpened):
            self.spdy.reply(ev.stream_id)  # the client's CreateStream waits for this reply
            self.opened(ev.stream_id, {k: v[0] for k, v in ev.headers.items() if v})
            if ev.fin and ev.stream_id in self.inputs:
                self.inputs[ev.stream_id].feed_eof()
        elif isinstance(ev, spdy.DataReceived):
            pipe = self.inputs.get(ev.stream_id)
            if pipe is not None:
                pipe.feed(ev.data)
                if ev.fin:
                    pipe.feed_eof()
        elif isinstance(ev, spdy.StreamReset):
            pipe = self.inputs.get(ev.stream_id)
            if pipe is not None:
                pipe.feed_eof()
            self.reset(ev.stream_id)
        elif isinstance(ev, spdy.GoAwayReceived):
            for pipe in self.inputs.values():
                pipe.feed_eof()

    def opened(self, stream_id: int, headers: dict[str, str]) -> None:
        raise NotImplementedError

    def reset(self, stream_id: int) -> None:
        """The client reset a stream."""

    async def write(self, stream_id: int, data: bytes, *, fin: bool = False) -> None:
        for i in range(0, max(len(data), 1), CHUNK):
            await self.link.drain()
            part = data[i : i + CHUNK]
            self.spdy.send_data(stream_id, part, fin=fin and i + CHUNK >= len(data))
            self.flush()

    def close_stream(self, stream_id: int | None) -> None:
        if stream_id is not None and stream_id in self.spdy.streams:
            self.spdy.send_data(stream_id, b"", fin=True)
            self.flush()

    def goodbye(self) -> None:
        self.spdy.goaway()
        self.flush()


class _ExecIO:
    def __init__(self, stdin: Pipe | None, write: Callable[[int, bytes], Any]) -> None:
        self.stdin, self._write = stdin, write

    async def read(self) -> bytes:
        return await self.stdin.read() if self.stdin is not None else b""

    async def write(self, channel: int, data: bytes) -> None:
        await self._write(channel, data)


async def _run_exec(spec: ExecSpec, io: _ExecIO) -> int:
    if spec.attach:
        return await containers.attached_process(io, spec.container.name, spec.stdin, first=spec.first_line)
    return await containers.run_command(list(spec.command), io, spec.container, tty=spec.tty)


class SpdyExec(SpdySession):
    """exec/attach, v4.channel.k8s.io over SPDY: the client opens an error, stdin, stdout, stderr (and with a tty a
    resize) stream; the command starts once all it asked for exist, and its status goes on the error stream."""

    def __init__(self, link: Link, spec: ExecSpec, send_raw: Callable[[bytes], None] | None = None) -> None:
        super().__init__(link, send_raw)
        self.spec = spec
        self.by_type: dict[str, int] = {}
        self.expected = {"error"} | {
            name
            for name, wanted in (("stdin", spec.stdin), ("stdout", spec.stdout),
                                 ("stderr", spec.stderr and not spec.tty), ("resize", spec.tty))
            if wanted
        }  # fmt: skip
        self.started = False
        self.spawn(self._creation_deadline())

    async def _creation_deadline(self) -> None:
        await asyncio.sleep(STREAM_CREATION_TIMEOUT)
        if not self.started:
            self.finished.set()

    def opened(self, stream_id: int, headers: dict[str, str]) -> None:
        kind = headers.get("streamtype", "")
        self.by_type[kind] = stream_id
        if kind in ("stdin", "resize"):
            self.inputs[stream_id] = Pipe(self.link)
        if not self.started and self.expected <= self.by_type.keys():
            self.started = True
            self.spawn(self._run())

    async def _run(self) -> None:
        stdin = self.inputs.get(self.by_type["stdin"]) if "stdin" in self.by_type else None
        resize = self.by_type.get("resize")
        if resize is not None:
            self.spawn(_drain(self.inputs[resize]))

        async def write(channel: int, data: bytes) -> None:
            sid = self.by_type.get("stdout" if channel == 1 or self.spec.tty else "stderr")
            if sid is not None and data:
                await self.write(sid, data)

        try:
            code = await _run_exec(self.spec, _ExecIO(stdin, write))
        except ConnectionError:
            return
        status = json.dumps(exit_status(code, self.spec.command)).encode()
        await self.write(self.by_type["error"], status, fin=True)
        for kind in ("stdout", "stderr", "stdin", "resize"):
            self.close_stream(self.by_type.get(kind))
        self.finished.set()


async def _drain(pipe: Pipe) -> None:
    while await pipe.read():  # terminal sizes: nothing simulated has a terminal to resize
        pass


class SpdyPortForward(SpdySession):
    """portforward.k8s.io: per forwarded connection the client opens an error and a data stream with the same
    ``port`` and ``requestID``; the data stream's bytes go to what listens on that port and back."""

    def __init__(self, link: Link, spec: PortForwardSpec, send_raw: Callable[[bytes], None] | None = None) -> None:
        super().__init__(link, send_raw)
        self.spec = spec
        self.errors: dict[str, int] = {}  # request id -> error stream

    def opened(self, stream_id: int, headers: dict[str, str]) -> None:
        request = headers.get("requestid") or headers.get("port", "")
        kind = headers.get("streamtype", "")
        if kind == "error":
            self.errors[request] = stream_id
            return
        if kind != "data":
            self.spdy.reset(stream_id, spdy.PROTOCOL_ERROR)
            return
        self.inputs[stream_id] = Pipe(self.link)
        self.spawn(self._forward(request, stream_id, headers.get("port", "")))

    async def _forward(self, request: str, data_id: int, port_text: str) -> None:
        spec = self.spec
        error_id = self.errors.get(request)
        try:
            port = int(port_text)
            if not 0 < port < 65536:
                raise ValueError(port_text)
        except ValueError:
            await self._fail(error_id, data_id, f'invalid port "{port_text}"')
            return
        if spec.ports is not None and port not in spec.ports:
            await self._fail(error_id, data_id, f"error forwarding port {port} to pod {spec.pod}, uid {spec.uid}: "
                             f"failed to connect to localhost:{port} inside namespace of pod {spec.pod}: dial tcp4 "
                             f"127.0.0.1:{port}: connect: connection refused")  # fmt: skip
            return
        pipe = self.inputs[data_id]

        class Conn:
            async def read(_self) -> bytes:
                return await pipe.read()

            async def write(_self, data: bytes) -> None:
                await self.write(data_id, data)

        try:
            await containers.serve_port(port, Conn(), spec.pod)
        except ConnectionError:
            return
        finally:
            self.inputs.pop(data_id, None)
        self.close_stream(data_id)
        self.close_stream(self.errors.pop(request, None))

    async def _fail(self, error_id: int | None, data_id: int, message: str) -> None:
        if error_id is not None:
            await self.write(error_id, message.encode(), fin=True)
        self.close_stream(data_id)
        self.inputs.pop(data_id, None)

    def reset(self, stream_id: int) -> None:
        self.inputs.pop(stream_id, None)


# ---- WebSocket
class WebSocketSession(Session):
    """RFC 6455 server side: pings answered, the close handshake completed; data frames go to :meth:`frame`."""

    def __init__(self, link: Link) -> None:
        super().__init__(link)
        self.parser = websocket.FrameParser(expect_masked=True)
        self.close_sent = False

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.parser.feed(data)
            for f in frames:
                if f.opcode == websocket.OP_PING:
                    self.link.write(websocket.encode_frame(websocket.OP_PONG, f.payload))
                elif f.opcode == websocket.OP_PONG:
                    pass
                elif f.opcode == websocket.OP_CLOSE:
                    self.peer_closed()
                    self.send_close(f.payload[:2] if len(f.payload) >= 2 else b"")
                    self.link.lost()  # nothing more will come, nor may be sent
                    self.finished.set()
                else:
                    self.frame(f)
        except websocket.WebSocketError as e:
            log.info("sim websocket protocol error: %s", e)
            self.send_close(websocket.close_payload(1002))
            self.finished.set()

    def send_close(self, payload: bytes = b"") -> None:
        if not self.close_sent:
            self.close_sent = True
            self.link.write(websocket.encode_frame(websocket.OP_CLOSE, payload or websocket.close_payload()))

    def frame(self, f: websocket.Frame) -> None:
        raise NotImplementedError

    def peer_closed(self) -> None:
        """The client sent a close frame."""

    def goodbye(self) -> None:
        self.send_close()


class WebSocketExec(WebSocketSession):
    """exec/attach over ``v5.channel.k8s.io`` (or v4): channel-prefixed binary messages, the status on channel 3,
    then a normal close, which the client reads as the end of every stream."""

    def __init__(self, link: Link, spec: ExecSpec, protocol: str) -> None:
        super().__init__(link)
        self.spec = spec
        self.v5 = protocol == websocket.V5_CHANNEL
        self.channels = websocket.ChannelDecoder()
        self.stdin = Pipe(link) if spec.stdin else None
        self.spawn(self._run())

    def frame(self, f: websocket.Frame) -> None:
        for piece in self.channels.feed(f):
            if piece.channel == websocket.STDIN and self.stdin is not None:
                self.stdin.feed(piece.data)
            elif piece.channel == websocket.CLOSE and self.v5 and piece.data[:1] == bytes([websocket.STDIN]):
                if self.stdin is not None:
                    self.stdin.feed_eof()

    def peer_closed(self) -> None:
        if self.stdin is not None:
            self.stdin.feed_eof()

    async def _run(self) -> None:
        async def write(channel: int, data: bytes) -> None:
            if self.spec.tty:
                channel = websocket.STDOUT
            if (channel == websocket.STDOUT and not self.spec.stdout) or (
                channel == websocket.STDERR and not self.spec.stderr
            ):
                return
            for i in range(0, len(data), CHUNK):
                await self.link.drain()
                self.link.write(websocket.channel_message(channel, data[i : i + CHUNK]))

        try:
            code = await _run_exec(self.spec, _ExecIO(self.stdin, write))
            await self.link.drain()
        except ConnectionError:
            return
        self.link.write(websocket.channel_message(websocket.ERROR, json.dumps(exit_status(code, self.spec.command))
                                                  .encode()))  # fmt: skip
        self.send_close()
        self.finished.set()


class WebSocketTunnel(WebSocketSession):
    """``SPDY/3.1+portforward.k8s.io``: a SPDY connection whose bytes travel as WebSocket binary messages."""

    def __init__(self, link: Link, spec: PortForwardSpec) -> None:
        super().__init__(link)
        self.inner = SpdyPortForward(link, spec, self._send)
        self.inner.finished = self.finished  # the tunnel ends with the SPDY session inside it

    def _send(self, data: bytes) -> None:
        if data and not self.close_sent:
            self.link.write(websocket.encode_frame(websocket.OP_BINARY, data))

    def frame(self, f: websocket.Frame) -> None:
        if f.opcode in (websocket.OP_BINARY, websocket.OP_CONTINUATION):
            self.inner.data_received(f.payload)

    async def run(self) -> None:
        try:
            await super().run()
        finally:
            for t in list(self.inner.tasks):
                t.cancel()


def start_session(plan: UpgradePlan, transport: asyncio.Transport) -> Session:
    """The session an upgrade plan calls for, on a transport that has just sent its 101."""
    link = Link(transport)
    spec = plan.spec
    if isinstance(spec, ExecSpec):
        if plan.framing == "spdy":
            return SpdyExec(link, spec)
        return WebSocketExec(link, spec, plan.protocol)
    if plan.framing == "spdy":
        return SpdyPortForward(link, spec)
    return WebSocketTunnel(link, spec)
