"""``connectedk8s proxy``'s runtime: a TLS listener on 127.0.0.1 whose every accepted connection becomes one stream
through the relay (:mod:`relaystream` opens it, :mod:`splice` joins the two), and the relay token renewed before it
expires. Runs until SIGINT or SIGTERM, then closes the listener and every stream."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import ssl
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

from halyard.cli.clustercredentials import RelayAccess
from halyard.cli.errors import CliError
from halyard.cli.relaystream import Opened, Refused, StreamHandshake, Target, open_request
from halyard.cli.splice import Pipe, link

LISTEN_HOST = "127.0.0.1"
# As az connectedk8s proxy: new credentials 300 s before the old ones expire.
REFRESH_BEFORE_SECONDS = 300
RETRY_SECONDS = 30  # a failed renewal is retried this often while the old token lasts
OPEN_TIMEOUT_SECONDS = 30  # connect + the relay's answer
T = TypeVar("T")


def refresh_delay(expires_at: float, now: float) -> float:
    """Seconds until the credentials are renewed: 300 s before they expire, at once when that has passed."""
    return max(0.0, expires_at - REFRESH_BEFORE_SECONDS - now)


class _RelayConnection(Pipe):
    """The relay side of one stream: sends the upgrade request, reads the answer, then is a plain pipe."""

    def __init__(self, request: bytes) -> None:
        super().__init__()
        self.answer: asyncio.Future[Opened | Refused] = asyncio.get_running_loop().create_future()
        self._handshake = StreamHandshake()
        self._request = request

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert self.transport is not None
        self.transport.write(self._request)

    def data_received(self, data: bytes) -> None:
        if self.answer.done():
            super().data_received(data)
            return
        verdict = self._handshake.receive(data)
        if verdict is not None:
            self.answer.set_result(verdict)
            if isinstance(verdict, Opened) and self.transport is not None:
                self.transport.pause_reading()  # until linked to the kubectl side

    def eof_received(self) -> bool:
        if not self.answer.done():
            self.answer.set_result(self._handshake.receive_eof())
        return super().eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answer.done():
            self.answer.set_result(self._handshake.receive_eof())
        super().connection_lost(exc)


@dataclass
class LocalProxy:
    """Streams for accepted connections. ``access`` gives the current relay credentials (renewed elsewhere)."""

    access: Callable[[], RelayAccess]
    method: str
    relay_tls: ssl.SSLContext
    log: Callable[[str], None]
    live: set[Pipe] = field(default_factory=set)
    opened: int = 0
    refused: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def accepted(self, client: Pipe) -> None:
        """A kubectl connection: hold its bytes until its stream is open."""
        self._track(client)
        assert client.transport is not None
        client.transport.pause_reading()
        task = asyncio.get_running_loop().create_task(self._open(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, client: Pipe) -> None:
        access = self.access()
        target = Target.of(access.relay)
        loop = asyncio.get_running_loop()
        relay: _RelayConnection | None = None
        try:
            async with asyncio.timeout(OPEN_TIMEOUT_SECONDS):
                _, relay = await loop.create_connection(
                    lambda: _RelayConnection(open_request(target, access.token, self.method)),
                    target.host,
                    target.port,
                    ssl=self.relay_tls,
                    server_hostname=target.host,
                )
                self._track(relay)
                verdict = await relay.answer
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            reason = "no answer in time" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
            self.log(f"The relay at {target.authority} cannot be reached ({reason}); the kubectl connection is closed.")
            if relay is not None:
                relay.abort()
            client.abort()
            return
        assert relay is not None
        if isinstance(verdict, Refused):
            self.refused += 1
            self.log(f"The relay refused the stream: {verdict.line()}; the kubectl connection is closed.")
            relay.close()
            client.close()
            return
        if client.transport is None or client.transport.is_closing():
            relay.close()
            return
        self.opened += 1
        link(client, relay, verdict.early)

    def _track(self, pipe: Pipe) -> None:
        self.live.add(pipe)
        pipe.closed.add_done_callback(lambda _: self.live.discard(pipe))

    async def close(self) -> None:
        """Close every stream (both sides) and wait for them to be gone."""
        for task in list(self._tasks):
            task.cancel()
        for pipe in list(self.live):
            pipe.abort()
        waits = [p.closed for p in list(self.live)] + list(self._tasks)
        if waits:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(5):
                    await asyncio.gather(*waits, return_exceptions=True)


def check_port_free(port: int) -> None:
    """Fail early, before anything is asked of the control plane, when the port is taken (as az checks first)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((LISTEN_HOST, port))
        except OSError as exc:
            raise _listen_error(port, exc) from None


def _listen_error(port: int, exc: OSError) -> CliError:
    if exc.errno == errno.EADDRINUSE:
        return CliError(
            f"Port {port} is already in use. Please select a different port with the --port option.", "PortInUse"
        )
    return CliError(f"Cannot listen on {LISTEN_HOST}:{port}: {exc.strerror or exc}.", "ListenFailed")


async def serve(proxy: LocalProxy, port: int, server_tls: ssl.SSLContext) -> asyncio.Server:
    """The listener on 127.0.0.1:``port``; a port in use is a clear error naming it and ``--port``."""
    loop = asyncio.get_running_loop()
    try:
        return await loop.create_server(
            lambda: Pipe(proxy.accepted), LISTEN_HOST, port, ssl=server_tls, reuse_address=True
        )
    except OSError as exc:
        raise _listen_error(port, exc) from None


@dataclass
class Renewal:
    """The current relay credentials, renewed in a thread (the CLI's management client is synchronous)."""

    current: RelayAccess
    fetch: Callable[[], RelayAccess]
    log: Callable[[str], None]
    clock: Callable[[], float] = time.time

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        delay = refresh_delay(self.current.expires_at, self.clock())
        while not await _stopped_within(stop, delay):
            try:
                self.current = await loop.run_in_executor(None, self.fetch)
            except CliError as exc:
                left = self.current.expires_at - self.clock()
                self.log(
                    f"Renewing the cluster credentials failed: {exc.line()[7:]}; retrying in {RETRY_SECONDS} s "
                    f"(the current ones last {max(0, int(left))} s more)."
                )
                delay = RETRY_SECONDS
                continue
            delay = max(1.0, refresh_delay(self.current.expires_at, self.clock()))


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
    return stop.is_set()


async def run_until_signalled(
    *,
    port: int,
    server_tls: ssl.SSLContext,
    relay_tls: ssl.SSLContext,
    method: str,
    renewal: Renewal,
    on_listening: Callable[[], None],
    log: Callable[[str], None],
    stop: asyncio.Event | None = None,
) -> LocalProxy:
    """Serve until SIGINT/SIGTERM (or ``stop``); then everything is closed. Returns the proxy (its counters)."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    proxy = LocalProxy(lambda: renewal.current, method, relay_tls, log)
    server = await serve(proxy, port, server_tls)
    renewing = loop.create_task(renewal.run(stop))
    try:
        on_listening()
        await stop.wait()
    finally:
        renewing.cancel()
        server.close()
        await proxy.close()
        with contextlib.suppress(asyncio.CancelledError):
            await renewing
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    return proxy


def run_on_own_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main`` on an event loop of its own: uvloop when installed (the relay pattern measured fastest on it)."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
