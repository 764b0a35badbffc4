"""``connectedk8s proxy``'s runtime: a TLS listener on 127.0.0.1 whose every accepted connection becomes one stream
through the relay (:func:`halyard.tunnel.dial.dial` opens it, :class:`halyard.tunnel.splice.Pipe` joins the two), and the relay token renewed before it
expires. Runs until SIGINT or SIGTERM, then closes the listener and every stream."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import signal
import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

from halyard.cli.clustercredentials import RelayAccess
from halyard.cli.errors import CliError
from halyard.tunnel.dial import UpgradeRefused, dial
from halyard.tunnel.protocol import METHOD_FIELD, STREAM_UPGRADE
from halyard.tunnel.splice import Pipe

LISTEN_HOST = "127.0.0.1"
# As az connectedk8s proxy: new credentials 300 s before the old ones expire.
REFRESH_BEFORE_SECONDS = 300
RETRY_SECONDS = 30  # a failed renewal is retried this often while the old token lasts
OPEN_TIMEOUT_SECONDS = 30  # connect + the relay's answer


def refresh_delay(expires_at: float, now: float) -> float:
    """Seconds until the credentials are renewed: 300 s before they expire, at once when that has passed."""
    return max(0.0, expires_at - REFRESH_BEFORE_SECONDS - now)


class _Accepted(asyncio.Protocol):
    """A kubectl connection waiting for its stream: read paused, anything already read held."""

    def __init__(self, proxy: LocalProxy) -> None:
        self._proxy = proxy
        self.transport: asyncio.Transport | None = None
        self.held = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A stream transport (uvloop's TLS transports are not asyncio.Transport subclasses, but are ones).
        self.transport = cast(asyncio.Transport, transport)
        self.transport.pause_reading()
        self._proxy.accepted(self)

    def data_received(self, data: bytes) -> None:
        self.held += data

    def abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


@dataclass
class LocalProxy:
    """Streams for accepted connections. ``access`` gives the current relay credentials (renewed elsewhere)."""

    access: Callable[[], RelayAccess]
    method: str
    relay_tls: ssl.SSLContext
    log: Callable[[str], None]
    live: set[Pipe] = field(default_factory=set)
    waiting: set[_Accepted] = field(default_factory=set)
    opened: int = 0
    refused: int = 0
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)

    def accepted(self, client: _Accepted) -> None:
        """A kubectl connection: its bytes wait until its stream is open."""
        self.waiting.add(client)
        task = asyncio.get_running_loop().create_task(self._open(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _open(self, client: _Accepted) -> None:
        access = self.access()
        fields = [("Authorization", f"Bearer {access.token}"), (METHOD_FIELD, self.method)]
        try:
            upgraded = await dial(
                access.relay, upgrade=STREAM_UPGRADE, fields=fields, ssl_context=self.relay_tls,
                timeout=OPEN_TIMEOUT_SECONDS,
            )  # fmt: skip
        except UpgradeRefused as refused:
            self.refused += 1
            self.log(f"The relay refused the stream: ({refused.code}) {refused.message} (HTTP {refused.status}); "
                     "the kubectl connection is closed.")  # fmt: skip
            self._drop(client)
            return
        except (OSError, TimeoutError) as exc:  # ssl.SSLError is an OSError
            reason = "no answer in time" if isinstance(exc, TimeoutError) else (str(exc) or type(exc).__name__)
            where = urlsplit(access.relay).netloc
            self.log(f"The relay at {where} cannot be reached ({reason}); the kubectl connection is closed.")
            self._drop(client)
            return
        finally:
            self.waiting.discard(client)
        if client.transport is None or client.transport.is_closing():
            upgraded.transport.close()
            return
        self.opened += 1
        pipe = Pipe(client.transport, upgraded.transport, a_first=client.held, b_first=upgraded.rest,
                    on_close=self.live.discard)  # fmt: skip
        if not pipe.done.done():
            self.live.add(pipe)

    @staticmethod
    def _drop(client: _Accepted) -> None:
        if client.transport is not None and not client.transport.is_closing():
            client.transport.close()

    async def close(self) -> None:
        """Close every stream (both sides) and wait for them to be gone."""
        for task in list(self._tasks):
            task.cancel()
        for client in list(self.waiting):
            client.abort()
        for pipe in list(self.live):
            pipe.close()
        waits = [p.done for p in list(self.live)] + list(self._tasks)
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
        return await loop.create_server(lambda: _Accepted(proxy), LISTEN_HOST, port, ssl=server_tls, reuse_address=True)
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
