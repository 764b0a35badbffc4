"""Joining two transports into one byte pipe, with flow control both ways.

Written against asyncio ``Protocol``s with pause/resume rather than StreamReader/``drain()``: measured on this
kind of machine, the Protocol form relays at about 0.64× raw loopback against 0.32-0.46× for streams (see
``shared/reference/baselines.md``). Each direction pauses reading its source while the destination's write buffer
is above the transport's high-water mark, so memory per stream is bounded by two write buffers whatever the
speeds of the two ends.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

HIGH_WATER = 1024 * 1024  # bytes buffered towards one end before its source is paused
LOW_WATER = 256 * 1024
BURST = 256 * 1024  # bytes passed on from one source before it yields the loop to every other connection


class Reading:
    """Whether a source transport reads: paused while its destination is backed up, and for one loop iteration
    after every ``BURST`` bytes. Without the second, a stream whose consumer keeps up is never paused, and uvloop
    reads (and decrypts, and re-encrypts) up to 32 socket buffers of it per event: other streams' requests waited
    behind ~70 ms of one bulk stream's bytes (docs/benchmarks.md, cluster connect)."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self._count = 0
        self._yielding = False
        self._held = False

    def passed(self, count: int) -> None:
        self._count += count
        if self._count >= BURST and not self._yielding:
            self._yielding = True
            if not self.transport.is_closing():
                self.transport.pause_reading()
            asyncio.get_running_loop().call_soon(self._turn)

    def hold(self, held: bool) -> None:
        self._held = held
        if held:
            if not self.transport.is_closing():
                self.transport.pause_reading()
        else:
            self._apply()

    def _turn(self) -> None:
        self._yielding = False
        self._count = 0
        self._apply()

    def _apply(self) -> None:
        if not self._held and not self._yielding and not self.transport.is_closing():
            self.transport.resume_reading()


class _End(asyncio.Protocol):
    """One side of a pipe: what its transport reads is written to the other side's transport."""

    def __init__(self, pipe: Pipe) -> None:
        self.pipe = pipe
        self.transport: asyncio.Transport | None = None
        self.reading: Reading | None = None
        self.peer: _End | None = None
        self.closed = False
        self.ended = False  # this side sent its EOF (passed on to the peer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:  # pragma: no cover - ends are adopted
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.pipe.bytes_from(self, len(data))
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            peer.transport.write(data)
        if self.reading is not None:
            self.reading.passed(len(data))

    def eof_received(self) -> bool | None:
        # TLS transports cannot half-close, so a finished side closes the other once its buffer has drained. Plain
        # TCP passes the half-close on; once both sides have ended, nothing more can flow and both are closed.
        self.ended = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if peer.transport.can_write_eof():
                peer.transport.write_eof()
                if peer.ended:
                    peer.transport.close()
                    return None  # and this side closes too
                return True
            peer.transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        peer = self.peer
        if peer is not None and peer.transport is not None and not peer.transport.is_closing():
            if exc is None:
                peer.transport.close()  # flushes what is buffered first
            else:
                peer.transport.abort()
        self.pipe.end_closed(exc)

    # The peer's writes back up: stop reading this side until they drain.
    def pause_writing(self) -> None:
        if self.peer is not None and self.peer.reading is not None:
            self.peer.reading.hold(True)

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.reading is not None:
            self.peer.reading.hold(False)


class Pipe:
    """Two transports joined; ``done`` resolves when both ends have closed. Counts the bytes each way."""

    def __init__(
        self,
        a: asyncio.Transport,
        b: asyncio.Transport,
        *,
        a_first: bytes = b"",
        b_first: bytes = b"",
        on_close: Callable[[Pipe], None] | None = None,
    ) -> None:
        """Join ``a`` and ``b``. ``a_first`` is what ``a`` already sent (it goes to ``b`` first), and the other way
        round; both transports may be paused on entry and are resumed here."""
        self.a_to_b = 0
        self.b_to_a = 0
        self._on_close = on_close
        self._open = 2
        self.error: Exception | None = None
        self.done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._a, self._b = _End(self), _End(self)
        self._a.peer, self._b.peer = self._b, self._a
        for end, transport in ((self._a, a), (self._b, b)):
            end.transport = transport
            end.reading = Reading(transport)
            transport.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
            transport.set_protocol(end)
        if a_first:
            self._a.data_received(a_first)
        if b_first:
            self._b.data_received(b_first)
        for transport in (a, b):
            if transport.is_closing():
                continue
            if not transport.is_reading():
                transport.resume_reading()
        # An end that closed before it was adopted never calls connection_lost on its new protocol.
        for end, transport in ((self._a, a), (self._b, b)):
            if transport.is_closing() and not end.closed:
                end.connection_lost(None)

    def bytes_from(self, end: _End, count: int) -> None:
        if end is self._a:
            self.a_to_b += count
        else:
            self.b_to_a += count

    def end_closed(self, exc: Exception | None) -> None:
        if exc is not None and self.error is None:
            self.error = exc
        self._open -= 1
        if self._open == 0 and not self.done.done():
            self.done.set_result(None)
            if self._on_close is not None:
                self._on_close(self)

    def write_buffers(self) -> tuple[int, int]:
        """Bytes waiting to be written towards each end (bounded by the high-water mark plus one read)."""
        return tuple(  # type: ignore[return-value]
            e.transport.get_write_buffer_size() if e.transport is not None else 0 for e in (self._a, self._b)
        )

    def close(self) -> None:
        for end in (self._a, self._b):
            if end.transport is not None and not end.transport.is_closing():
                end.transport.abort()
