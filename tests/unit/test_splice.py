"""The byte pipe on real loopback connections: bytes intact both ways, and a busy source yielding the loop."""

from __future__ import annotations

import asyncio
import os

from halyard.tunnel.splice import BURST, Pipe, Reading
from tests.support.loopback import accepted_pair


async def test_a_pipe_carries_megabytes_both_ways_intact() -> None:
    a, a_reader, a_writer, a_server = await accepted_pair()
    b, b_reader, b_writer, b_server = await accepted_pair()
    pipe = Pipe(a, b)
    up, down = os.urandom(6 * 1024 * 1024 + 7), os.urandom(3 * 1024 * 1024 + 1)
    a_writer.write(up)
    b_writer.write(down)
    got_up, got_down = await asyncio.wait_for(
        asyncio.gather(b_reader.readexactly(len(up)), a_reader.readexactly(len(down))), 20
    )
    assert got_up == up and got_down == down
    assert (pipe.a_to_b, pipe.b_to_a) == (len(up), len(down))
    a_writer.close()  # TCP half-closes: the EOF goes on to b
    assert await asyncio.wait_for(b_reader.read(), 10) == b""
    pipe.close()
    await asyncio.wait_for(pipe.done, 10)
    b_writer.close()
    for server in (a_server, b_server):
        server.close()


async def test_a_pipe_of_plain_tcp_ends_once_both_sides_have_half_closed() -> None:
    a, a_reader, a_writer, a_server = await accepted_pair()
    b, b_reader, b_writer, b_server = await accepted_pair()
    pipe = Pipe(a, b)
    a_writer.write_eof()
    assert await asyncio.wait_for(b_reader.read(), 10) == b""  # the half-close went on
    assert not pipe.done.done()  # b may still answer
    b_writer.write(b"last words")
    b_writer.write_eof()
    assert await asyncio.wait_for(a_reader.read(), 10) == b"last words"
    await asyncio.wait_for(pipe.done, 10)  # both ended: the pipe is gone, nothing leaks
    for writer in (a_writer, b_writer):
        writer.close()
    for server in (a_server, b_server):
        server.close()


async def test_a_source_pauses_for_one_loop_turn_after_a_burst_and_stays_paused_while_held() -> None:
    transport, _, writer, server = await accepted_pair()
    reading = Reading(transport)
    transport.resume_reading()
    reading.passed(BURST - 1)
    assert transport.is_reading()
    reading.passed(1)
    assert not transport.is_reading()  # yielded: every other ready connection is served first
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert transport.is_reading()  # its turn again
    reading.hold(True)  # the destination backed up
    reading.passed(BURST)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert not transport.is_reading()  # the turn does not undo the hold
    reading.hold(False)
    assert transport.is_reading()
    writer.close()
    server.close()
