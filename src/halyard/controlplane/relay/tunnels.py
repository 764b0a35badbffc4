"""One cluster's control connection to this replica, and the table of them.

The connection carries only control frames (:mod:`halyard.tunnel.frames`): the relay asks for streams, both sides
ping. Either side that hears nothing for ``DEAD_AFTER`` seconds closes it, so a tunnel cut by a load balancer or a
NAT that forgot it is noticed within that time and the agent dials again.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable

from halyard.tunnel.frames import Frame, FrameDecoder, FrameError, FrameType, open_frame

log = logging.getLogger("halyard.relay")
PING_EVERY = 10.0
DEAD_AFTER = 30.0


class Tunnel(asyncio.Protocol):
    """The relay's side of one cluster's control connection (adopted after the upgrade)."""

    def __init__(
        self,
        cluster_id: str,
        *,
        on_refuse: Callable[[bytes, str], None],
        on_close: Callable[[Tunnel], None],
        ping_every: float = PING_EVERY,
        dead_after: float = DEAD_AFTER,
    ) -> None:
        self.cluster_id = cluster_id
        self._on_refuse = on_refuse
        self._on_close = on_close
        self._decoder = FrameDecoder()
        self._transport: asyncio.Transport | None = None
        self._loop = asyncio.get_running_loop()
        self._last_heard = self._loop.time()
        self._ping_every = ping_every
        self._dead_after = dead_after
        self._timer: asyncio.TimerHandle | None = None
        self.closed = False

    def adopt(self, transport: asyncio.Transport, rest: bytes) -> None:
        self._transport = transport
        transport.set_protocol(self)
        self._timer = self._loop.call_later(self._ping_every, self._tick)
        if rest:
            self.data_received(rest)
        if not transport.is_closing():
            transport.resume_reading()

    def open_stream(self, stream_id: bytes) -> None:
        self._send(open_frame(stream_id))

    def data_received(self, data: bytes) -> None:
        self._last_heard = self._loop.time()
        try:
            for frame in self._decoder.frames(data):
                if frame.type is FrameType.PING:
                    self._send(Frame(FrameType.PONG, frame.payload))
                elif frame.type is FrameType.REFUSE:
                    self._on_refuse(frame.payload[:16], frame.payload[16:].decode("utf-8", "replace"))
                elif frame.type is not FrameType.PONG:
                    raise FrameError(f"unexpected {frame.type.name} frame from an agent")
        except FrameError as exc:
            log.warning("tunnel closed: protocol error", extra={"cluster": self.cluster_id, "error": str(exc)})
            self.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if not self.closed:
            self.closed = True
            self._on_close(self)

    def close(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.abort()  # a dead peer never acknowledges a TLS close
        if not self.closed:
            self.closed = True
            if self._timer is not None:
                self._timer.cancel()
            self._on_close(self)

    def _tick(self) -> None:
        if self.closed:
            return
        if self._loop.time() - self._last_heard > self._dead_after:
            log.warning("tunnel closed: silent", extra={"cluster": self.cluster_id, "seconds": self._dead_after})
            self.close()
            return
        self._send(Frame(FrameType.PING, os.urandom(8)))
        self._timer = self._loop.call_later(self._ping_every, self._tick)

    def _send(self, frame: Frame) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(frame.encode())


class TunnelTable:
    """The tunnels this replica holds, one per cluster (lower-cased resource id); a new one replaces the old."""

    def __init__(self) -> None:
        self._by_cluster: dict[str, Tunnel] = {}

    def add(self, tunnel: Tunnel) -> None:
        key = tunnel.cluster_id.lower()
        old = self._by_cluster.get(key)
        self._by_cluster[key] = tunnel
        if old is not None and old is not tunnel:
            old.close()  # the agent dialled again: the old connection is dead or dying

    def remove(self, tunnel: Tunnel) -> bool:
        key = tunnel.cluster_id.lower()
        if self._by_cluster.get(key) is tunnel:
            del self._by_cluster[key]
            return True
        return False

    def get(self, cluster_id: str) -> Tunnel | None:
        return self._by_cluster.get(cluster_id.lower())

    def __len__(self) -> int:
        return len(self._by_cluster)

    def close_all(self) -> None:
        for tunnel in list(self._by_cluster.values()):
            tunnel.close()
