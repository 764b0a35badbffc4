"""A forward proxy for tests that plays DNS: it answers CONNECT, records the names requests go to, and connects to the
address ``route`` gives that name (private link names to an endpoint's loopback port). Agents take a proxy
(``http_client(proxy=…)``, clusterconnect's ``via``), so their real dialling code runs unchanged; TLS stays end to
end with the name as SNI."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator

Route = Callable[[str, int], tuple[str, int]]


class ConnectProxy:
    def __init__(self, route: Route) -> None:
        self._route = route
        self.asked: list[str] = []  # the host name of each chunk a client sent (since ``forget``), in order
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def forget(self) -> None:
        """Start recording afresh (kept-alive tunnels count again as soon as a request goes through them)."""
        self.asked.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: asyncio.StreamWriter | None = None
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            method, target, _ = head.split(b"\r\n", 1)[0].decode().split(" ", 2)
            host, _, port = target.rpartition(":")
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                return
            up_reader, upstream = await asyncio.open_connection(*self._route(host, int(port)))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await asyncio.gather(_pipe(reader, upstream, lambda: self.asked.append(host)), _pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    w.close()

    @contextlib.contextmanager
    def running(self) -> Iterator[ConnectProxy]:
        started = threading.Event()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(asyncio.start_server(self._serve, "127.0.0.1", 0))
            self.port = self._server.sockets[0].getsockname()[1]
            started.set()
            self._loop.run_forever()
            pending = asyncio.all_tasks(self._loop)
            for task in pending:
                task.cancel()
            self._loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            self._loop.run_until_complete(self._server.wait_closed())
            self._loop.close()

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self
        finally:

            def stop() -> None:
                assert self._server is not None
                self._server.close()
                self._loop.stop()

            self._loop.call_soon_threadsafe(stop)
            thread.join(10)


async def _pipe(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, sent: Callable[[], None] = lambda: None
) -> None:
    try:
        while data := await reader.read(65536):
            sent()
            writer.write(data)
            await writer.drain()
    finally:
        with contextlib.suppress(OSError):
            writer.write_eof()
