"""``agent.controlplane.send`` sends a request once more when its connection failed under it with no answer: a
clean close (``RemoteProtocolError``) or a reset with the request unread (``ReadError``), as a server or a proxy
closing an idle kept-alive connection just as it is reused does. A loopback server plays that close."""

from __future__ import annotations

import asyncio
import socket
import struct

import httpx
import pytest

from halyard.agent.controlplane import send

pytestmark = pytest.mark.unit
ANSWER = b'HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 11\r\n\r\n{"ok":true}'


@pytest.mark.parametrize("reset", [True, False], ids=["reset", "clean-close"])
async def test_a_request_whose_connection_fails_unanswered_is_sent_once_more(reset: bool) -> None:
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        await reader.readuntil(b"\r\n\r\n")
        if connections == 1:  # the first connection ends with the request unanswered
            if reset:
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.close()
            return
        writer.write(ANSWER)
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            assert await send(http, "GET", f"http://127.0.0.1:{port}/dp/v1/heartbeat") == {"ok": True}
    finally:
        server.close()
        await server.wait_closed()
    assert connections == 2
