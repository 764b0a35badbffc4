"""clusterconnect-agent: keeps the cluster's outbound tunnel to ``relay`` and carries streams to auth-proxy.

The tunnel is one control connection (agent token; only this cluster's identity can register this cluster's
tunnel). For every stream the relay asks for, the agent dials one data connection back (decision 008), reads the
relay's header and hands the connection to auth-proxy. Both sides ping; a silent tunnel is dropped within
``DEAD_AFTER`` seconds and dialled again, with the controller manager's jittered backoff when dialling fails.
"""

from __future__ import annotations

import asyncio
import logging
import os
import ssl
from typing import Any

from halyard.agent.authproxy import AuthProxy
from halyard.agent.endpoints import Url, url_of
from halyard.agent.metrics import AgentMetrics
from halyard.agent.resourcesync import TokenSource
from halyard.tunnel.dial import Upgraded, UpgradeRefused, dial
from halyard.tunnel.frames import Frame, FrameDecoder, FrameError, FrameType, parse_header, refuse_frame
from halyard.tunnel.protocol import STREAM_UPGRADE, TUNNEL_UPGRADE

log = logging.getLogger("halyard.agent")
PING_EVERY = 10.0
DEAD_AFTER = 30.0
HEADER_TIMEOUT = 10.0
MAX_STREAMS = 1000  # streams carried at once; the relay is refused beyond (a runaway must not exhaust the pod)


class ClusterConnect:
    name = "clusterconnect-agent"

    def __init__(
        self,
        relay_url: Url,
        tokens: TokenSource,
        tls: ssl.SSLContext | None,
        proxy: AuthProxy,
        metrics: AgentMetrics,
        *,
        ping_every: float = PING_EVERY,
        dead_after: float = DEAD_AFTER,
        via: str | None = None,
    ) -> None:
        self._via = via  # arc-proxy, when a gateway or an enterprise proxy is set
        self._relay = relay_url  # read at each dial: private link may move it (endpoints.py)
        self._tokens = tokens
        self._tls = tls
        self._proxy = proxy
        self._metrics = metrics
        self._ping_every = ping_every
        self._dead_after = dead_after
        self._streams: set[asyncio.Task[None]] = set()
        self.connected = False

    async def reconcile(self) -> float:
        """Hold the tunnel until it ends; a tunnel that ran a while is dialled again at once, a failed dial
        raises (the manager's backoff spaces the retries)."""
        await self._tokens.wait_ready(60.0)  # the identity operator's first certificate
        upgraded = await self._dial("/v1/tunnel", TUNNEL_UPGRADE)
        session = _Session(self, upgraded.transport, self._ping_every, self._dead_after)
        session.start(upgraded.rest)
        self.connected = True
        self._metrics.tunnel_up.set(1)
        log.info("tunnel connected", extra={"relay": url_of(self._relay)})
        loop = asyncio.get_running_loop()
        started = loop.time()
        try:
            await session.closed
        finally:
            self.connected = False
            self._metrics.tunnel_up.set(0)
            session.close()
        lasted = loop.time() - started
        log.warning("tunnel closed", extra={"relay": url_of(self._relay), "seconds": round(lasted, 1)})
        if lasted < self._dead_after:
            raise ConnectionError("the tunnel closed soon after it opened")
        return 0.5  # the relay went away (a replica restarting): dial again now

    async def _dial(self, path: str, upgrade: str) -> Upgraded:
        """A connection to the relay upgraded with the agent token (forgotten when refused as invalid)."""
        token = await self._tokens.token()
        try:
            return await dial(
                f"{url_of(self._relay)}{path}", upgrade=upgrade, fields=[("Authorization", f"Bearer {token}")],
                ssl_context=self._tls, proxy=self._via,
            )  # fmt: skip
        except UpgradeRefused as exc:
            if exc.status == 401:
                self._tokens.forget_token()
            raise

    @property
    def streams(self) -> int:
        return len(self._streams)

    def stream_requested(self, session: _Session, stream_id: bytes) -> None:
        if len(self._streams) >= MAX_STREAMS:
            session.send(refuse_frame(stream_id, f"the agent carries {MAX_STREAMS} streams already"))
            return
        task = asyncio.ensure_future(self._carry(session, stream_id))
        self._streams.add(task)
        self._metrics.streams_open.set(len(self._streams))
        task.add_done_callback(self._stream_ended)

    def _stream_ended(self, task: asyncio.Task[None]) -> None:
        self._streams.discard(task)
        self._metrics.streams_open.set(len(self._streams))
        self._metrics.streams_carried.inc()

    async def _carry(self, session: _Session, stream_id: bytes) -> None:
        try:
            upgraded = await self._dial(f"/v1/streams/{stream_id.hex()}", STREAM_UPGRADE)
        except Exception as exc:
            log.warning("stream not opened", extra={"error": f"{type(exc).__name__}: {exc}"})
            session.send(refuse_frame(stream_id, f"{type(exc).__name__}: {exc}"))
            return
        transport = upgraded.transport
        try:
            reader = _HeaderReader(transport)
            header, rest = await asyncio.wait_for(reader.read(upgraded.rest), HEADER_TIMEOUT)
        except (TimeoutError, FrameError, ConnectionError) as exc:
            log.warning("stream dropped: no header", extra={"error": str(exc)})
            transport.abort()
            return
        try:
            await self._proxy.serve(transport, header, rest)
        except Exception as exc:  # one stream's failure never takes the tunnel down
            log.warning("stream failed", extra={"error": f"{type(exc).__name__}: {exc}"})
            transport.abort()


class _Session(asyncio.Protocol):
    """The agent's side of the control connection."""

    def __init__(self, owner: ClusterConnect, transport: asyncio.Transport, ping_every: float, dead_after: float):
        self._owner = owner
        self._transport = transport
        self._decoder = FrameDecoder()
        self._loop = asyncio.get_running_loop()
        self._heard = self._loop.time()
        self._ping_every = ping_every
        self._dead_after = dead_after
        self._timer: asyncio.TimerHandle | None = None
        self.closed: asyncio.Future[None] = self._loop.create_future()

    def start(self, rest: bytes) -> None:
        self._transport.set_protocol(self)
        self._timer = self._loop.call_later(self._ping_every, self._tick)
        if rest:
            self.data_received(rest)
        if not self._transport.is_closing():
            self._transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        self._heard = self._loop.time()
        try:
            for frame in self._decoder.frames(data):
                if frame.type is FrameType.OPEN and len(frame.payload) == 16:
                    self._owner.stream_requested(self, frame.payload)
                elif frame.type is FrameType.PING:
                    self.send(Frame(FrameType.PONG, frame.payload))
                elif frame.type is not FrameType.PONG:
                    raise FrameError(f"unexpected {frame.type.name} frame from the relay")
        except FrameError as exc:
            log.warning("tunnel protocol error", extra={"error": str(exc)})
            self.close()

    def send(self, frame: Frame) -> None:
        if not self._transport.is_closing():
            self._transport.write(frame.encode())

    def _tick(self) -> None:
        if self._loop.time() - self._heard > self._dead_after:
            log.warning("tunnel silent: dropped", extra={"seconds": self._dead_after})
            self.close()
            return
        self.send(Frame(FrameType.PING, os.urandom(8)))
        self._timer = self._loop.call_later(self._ping_every, self._tick)

    def connection_lost(self, exc: Exception | None) -> None:
        self.close()

    def close(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self._transport.is_closing():
            self._transport.abort()
        if not self.closed.done():
            self.closed.set_result(None)


class _HeaderReader(asyncio.Protocol):
    """Reads the relay's HEADER frame off a data connection, leaving it paused with what followed."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._decoder = FrameDecoder()
        self._done: asyncio.Future[tuple[dict[str, Any], bytes]] = asyncio.get_running_loop().create_future()

    async def read(self, first: bytes) -> tuple[dict[str, Any], bytes]:
        self._transport.set_protocol(self)
        self.data_received(first)
        if not self._done.done():
            self._transport.resume_reading()
        return await self._done

    def data_received(self, data: bytes) -> None:
        if self._done.done():
            return
        try:
            self._decoder.feed(data)
            frame = self._decoder.next()
            if frame is None:
                return
            header = parse_header(frame)
        except FrameError as exc:
            self._done.set_exception(exc)
            return
        self._transport.pause_reading()
        self._done.set_result((header, self._decoder.rest()))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._done.set_exception(ConnectionError("the relay closed the data connection"))
