"""A tunnel whose peer falls silent is dropped within its deadline on either side; one that answers pings lives."""

from __future__ import annotations

import asyncio

from halyard.agent.clusterconnect import _Session
from halyard.controlplane.relay.tunnels import Tunnel
from halyard.tunnel.frames import Frame, FrameDecoder, FrameType
from tests.support.loopback import accepted_pair


async def test_the_relay_drops_a_silent_agent_and_keeps_one_that_answers() -> None:
    closed: list[str] = []
    silent, _, silent_writer, s1 = await accepted_pair()
    answering, reader, writer, s2 = await accepted_pair()
    for transport, name in ((silent, "silent"), (answering, "answering")):
        tunnel = Tunnel(name, on_refuse=lambda *_: None, on_close=lambda t: closed.append(t.cluster_id),
                        ping_every=0.05, dead_after=0.3)  # fmt: skip
        tunnel.adopt(transport, b"")

    async def pong() -> None:
        decoder = FrameDecoder()
        while data := await reader.read(4096):
            for frame in decoder.frames(data):
                if frame.type is FrameType.PING:
                    writer.write(Frame(FrameType.PONG, frame.payload).encode())

    ponging = asyncio.create_task(pong())
    await asyncio.sleep(0.8)
    assert closed == ["silent"]
    ponging.cancel()
    for w in (silent_writer, writer):
        w.close()
    for server in (s1, s2):
        server.close()


class _Owner:
    def stream_requested(self, session: _Session, stream_id: bytes) -> None:  # pragma: no cover - not asked here
        raise AssertionError


async def test_the_agent_drops_a_silent_relay() -> None:
    transport, _, writer, server = await accepted_pair()
    session = _Session(_Owner(), transport, ping_every=0.05, dead_after=0.3)  # type: ignore[arg-type]
    session.start(b"")
    await asyncio.wait_for(session.closed, 2)
    writer.close()
    server.close()
