"""The DNS listener: UDP and TCP on one address, each query answered from the zone cache."""

from __future__ import annotations

import asyncio
import logging
import struct

from halyard.controlplane.dns.answers import answer
from halyard.controlplane.dns.records import ZoneCache

log = logging.getLogger(__name__)
TCP_IDLE_SECONDS = 10.0
UDP_MAX = 4096


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, cache: ZoneCache) -> None:
        self._cache = cache
        self._transport: asyncio.DatagramTransport | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # a datagram transport (not its ABC's subclass)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.ensure_future(self._reply(data, addr))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _reply(self, data: bytes, addr: tuple[str, int]) -> None:
        try:
            response = answer(data, await self._cache.zones(), max_size=UDP_MAX)
        except Exception:
            log.exception("dns query failed", extra={"client": addr[0]})
            return
        if response is not None and self._transport is not None:
            self._transport.sendto(response, addr)


async def _tcp(cache: ZoneCache, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
            query = await asyncio.wait_for(reader.readexactly(struct.unpack("!H", head)[0]), TCP_IDLE_SECONDS)
            response = answer(query, await cache.zones())
            if response is None:
                return
            writer.write(struct.pack("!H", len(response)) + response)
            await writer.drain()
    except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
        return
    finally:
        writer.close()


async def serve(cache: ZoneCache, host: str, port: int, ready: asyncio.Event | None = None) -> None:
    """Answer on ``host:port`` (UDP and TCP) until cancelled."""
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: _Udp(cache), local_addr=(host, port))
    server = await asyncio.start_server(lambda r, w: _tcp(cache, r, w), host, port)
    log.info("dns listening", extra={"address": f"{host}:{port}"})
    if ready is not None:
        ready.set()
    try:
        async with server:
            await asyncio.Event().wait()
    finally:
        transport.close()


def run(database_url: str, host: str, port: int, virtual_network: str | None) -> None:
    """``halyard dns`` alone: the store's zones on ``host:port`` until interrupted."""
    from halyard.store import Database

    async def main() -> None:
        db = Database(database_url)
        try:
            await serve(ZoneCache(db, virtual_network), host, port)
        finally:
            await db.close()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
