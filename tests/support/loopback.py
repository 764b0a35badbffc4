"""Loopback connections for tests of the byte path: an accepted transport, paused as the relay hands it over, and
the client's streams of the same connection."""

from __future__ import annotations

import asyncio


class _Adopted(asyncio.Protocol):
    """What an accepted connection runs until the test adopts its transport (paused, as the relay hands it over)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]


async def accepted_pair() -> tuple[asyncio.Transport, asyncio.StreamReader, asyncio.StreamWriter, asyncio.Server]:
    """A server-side transport (paused) and the client's streams of the same loopback connection."""
    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[asyncio.Transport] = loop.create_future()

    def factory() -> asyncio.Protocol:
        protocol = _Adopted()
        original = protocol.connection_made

        def made(transport: asyncio.BaseTransport) -> None:
            original(transport)
            accepted.set_result(transport)  # type: ignore[arg-type]

        protocol.connection_made = made  # type: ignore[method-assign]
        return protocol

    server = await loop.create_server(factory, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    return await accepted, reader, writer, server
