"""``connectedk8s proxy``'s data path on loopback: kubectl's side (TLS to the local listener) spliced with one relay
stream per connection, against a small relay in the test that speaks the stream-open contract (a ``101`` then raw
bytes, or an ARM error). Integrity of 10 MB each way, flow control with a reader that does not read, refusals,
renewed tokens used for new streams, and a clean stop."""

from __future__ import annotations

import asyncio
import hashlib
import os
import socket
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from halyard.cli.clustercredentials import RelayAccess
from halyard.cli.errors import CliError
from halyard.cli.eventloop import run_on_own_loop
from halyard.cli.localcert import LocalCertificate, make_local_certificate
from halyard.cli.localproxy import LocalProxy, Renewal, check_port_free, run_until_signalled, serve
from tests.support.processes import free_port

pytestmark = pytest.mark.unit
CERTS: dict[str, LocalCertificate] = {}


def _cert(name: str) -> LocalCertificate:
    if name not in CERTS:
        CERTS[name] = make_local_certificate()
    return CERTS[name]


def _client_tls(cert: LocalCertificate) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=cert.ca_pem.decode())
    return context


@dataclass
class LoopbackRelay:
    """Answers each stream request with 101 and echoes the bytes after it (``refuse``: an ARM error instead)."""

    refuse: tuple[int, str] | None = None
    requests: list[dict[str, str]] = field(default_factory=list)
    early: bytes = b""
    url: str = ""
    server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=_cert("relay").server_context())
        port = self.server.sockets[0].getsockname()[1]
        self.url = f"https://127.0.0.1:{port}/relay/clusters/c1"
        return self.url

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1")
        line, *rest = head.strip().split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in rest)}
        self.requests.append({"line": line, **headers})
        if self.refuse is not None:
            status, code = self.refuse
            body = f'{{"error":{{"code":"{code}","message":"refused by the test relay"}}}}'.encode()
            writer.write(f"HTTP/1.1 {status} No\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body)
            await writer.drain()
            writer.close()
            return
        writer.write(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: halyard-stream/1\r\nConnection: Upgrade\r\n\r\n")
        writer.write(self.early)
        try:
            while chunk := await reader.read(65536):
                writer.write(chunk)
                await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()


@pytest.fixture
async def relay() -> AsyncIterator[LoopbackRelay]:
    relay = LoopbackRelay()
    await relay.start()
    yield relay
    await relay.stop()


def _access(relay: LoopbackRelay, token: str = "tok-1", expires_in: float = 3600) -> RelayAccess:
    return RelayAccess(relay.url, "/subscriptions/s/c1", token, time.time() + expires_in)


async def _proxy(relay: LoopbackRelay, logs: list[str], access: RelayAccess | None = None) -> tuple[LocalProxy, int]:
    port = free_port()
    current = access or _access(relay)
    proxy = LocalProxy(lambda: current, "AAD", _client_tls(_cert("relay")), logs.append)
    server = await serve(proxy, port, _cert("local").server_context())
    proxy.server = server  # type: ignore[attr-defined]
    return proxy, port


async def _connect(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port, ssl=_client_tls(_cert("local")))


async def _close(proxy: LocalProxy) -> None:
    proxy.server.close()  # type: ignore[attr-defined]
    await proxy.close()


async def test_bytes_cross_intact_both_ways_after_the_relays_answer(relay: LoopbackRelay) -> None:
    relay.early = b"EARLY"
    logs: list[str] = []
    proxy, port = await _proxy(relay, logs)
    try:
        reader, writer = await _connect(port)
        payload = os.urandom(10 * 1024 * 1024)

        async def send() -> None:
            writer.write(payload)
            await writer.drain()

        sending = asyncio.create_task(send())
        received = await reader.readexactly(len(payload) + 5)
        await sending
        assert received[:5] == b"EARLY"
        assert hashlib.sha256(received[5:]).digest() == hashlib.sha256(payload).digest()
        writer.close()
        request = relay.requests[0]
        assert request["line"] == "GET /relay/clusters/c1 HTTP/1.1"
        assert request["authorization"] == "Bearer tok-1"
        assert request["upgrade"] == "halyard-stream/1" and request["connection"] == "Upgrade"
        assert request["halyard-authentication-method"] == "AAD"
        assert request["host"] == relay.url.split("/")[2]
        assert proxy.opened == 1 and logs == []
    finally:
        await _close(proxy)


async def test_a_reader_that_does_not_read_stops_the_writer_instead_of_filling_memory(relay: LoopbackRelay) -> None:
    proxy, port = await _proxy(relay, [])
    try:
        _reader, writer = await _connect(port)
        sent = 0
        chunk = os.urandom(256 * 1024)

        async def flood() -> None:
            nonlocal sent
            while sent < 64 * 1024 * 1024:
                writer.write(chunk)
                await writer.drain()
                sent += len(chunk)

        flooding = asyncio.create_task(flood())
        await asyncio.sleep(1.0)  # the echo comes back to a reader that never reads
        assert not flooding.done(), "64 MB went through although nobody read the echo"
        buffered = [size for pipe in proxy.live for size in pipe.write_buffers()]
        assert len(buffered) == 2 and max(buffered) < 2 * 1024 * 1024, buffered
        flooding.cancel()
        writer.close()
    finally:
        await _close(proxy)


@pytest.mark.parametrize(("status", "code"), [(409, "FeatureDisabled"), (503, "ClusterOffline"), (403, "Forbidden")])
async def test_a_refused_stream_is_one_log_line_and_a_closed_kubectl_connection(
    relay: LoopbackRelay, status: int, code: str
) -> None:
    relay.refuse = (status, code)
    logs: list[str] = []
    proxy, port = await _proxy(relay, logs)
    try:
        reader, writer = await _connect(port)
        writer.write(b"GET /api HTTP/1.1\r\nHost: x\r\n\r\n")
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError, ssl.SSLError)):
            await asyncio.wait_for(reader.readexactly(1), 10)
        assert logs == [
            f"The relay refused the stream: ({code}) refused by the test relay (HTTP {status}); "
            "the kubectl connection is closed."
        ]
        assert proxy.refused == 1 and proxy.opened == 0
        writer.close()
    finally:
        await _close(proxy)


async def test_an_unreachable_relay_is_logged_and_the_connection_closed(relay: LoopbackRelay) -> None:
    logs: list[str] = []
    gone = RelayAccess(f"https://127.0.0.1:{free_port()}/relay", "c", "t", time.time() + 3600)
    proxy, port = await _proxy(relay, logs, gone)
    try:
        reader, writer = await _connect(port)
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError, ssl.SSLError)):
            await asyncio.wait_for(reader.readexactly(1), 10)
        assert len(logs) == 1 and "cannot be reached" in logs[0], logs
        writer.close()
    finally:
        await _close(proxy)


async def test_renewed_credentials_open_the_next_streams_and_stop_closes_everything(relay: LoopbackRelay) -> None:
    fetched: list[str] = []

    def fetch() -> RelayAccess:
        fetched.append(f"tok-{len(fetched) + 2}")
        return _access(relay, fetched[-1])

    # Expires in 300.5 s: renewed half a second from now (300 s before expiry, as az).
    renewal = Renewal(_access(relay, "tok-1", 300.5), fetch, print)
    stop = asyncio.Event()
    port = free_port()
    listening = asyncio.Event()
    running = asyncio.create_task(
        run_until_signalled(
            port=port, server_tls=_cert("local").server_context(), relay_tls=_client_tls(_cert("relay")),
            method="Token", renewal=renewal, on_listening=listening.set, log=print, stop=stop,
        )
    )  # fmt: skip
    await asyncio.wait_for(listening.wait(), 10)
    first_reader, first_writer = await _connect(port)
    first_writer.write(b"one")
    assert await first_reader.readexactly(3) == b"one"
    deadline = time.monotonic() + 10
    while not fetched:
        assert time.monotonic() < deadline, "the credentials were not renewed"
        await asyncio.sleep(0.05)
    reader, writer = await _connect(port)
    writer.write(b"two")
    assert await reader.readexactly(3) == b"two"
    assert [r["authorization"] for r in relay.requests] == ["Bearer tok-1", "Bearer tok-2"]
    assert {r["halyard-authentication-method"] for r in relay.requests} == {"Token"}

    stop.set()
    proxy = await asyncio.wait_for(running, 10)
    assert not proxy.live
    for stream in (first_reader, reader):
        with pytest.raises((ConnectionError, asyncio.IncompleteReadError, ssl.SSLError)):
            await asyncio.wait_for(stream.readexactly(1), 5)
    with pytest.raises(OSError):
        await _connect(port)


async def test_a_port_in_use_is_a_clear_error_naming_it() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(CliError) as refused:
            check_port_free(port)
        assert refused.value.code == "PortInUse"
        assert f"Port {port} is already in use" in refused.value.message and "--port" in refused.value.message
        proxy = LocalProxy(lambda: RelayAccess("https://h/", "c", "t", 0), "AAD", ssl.create_default_context(), print)
        with pytest.raises(CliError) as again:
            await serve(proxy, port, _cert("local").server_context())
        assert again.value.code == "PortInUse"


def test_the_data_path_on_uvloop_as_the_command_runs_it() -> None:
    """The command runs on uvloop, whose TLS transports differ from asyncio's (they are not asyncio.Transport
    subclasses): the same splice, flow control included, on the loop the command uses."""

    async def scenario() -> None:
        assert type(asyncio.get_running_loop()).__module__.startswith("uvloop")
        relay = LoopbackRelay()
        await relay.start()
        proxy, port = await _proxy(relay, [])
        try:
            reader, writer = await _connect(port)
            payload = os.urandom(8 * 1024 * 1024)
            writer.write(payload)
            assert await reader.readexactly(len(payload)) == payload
            writer.close()
            _reader, flooder = await _connect(port)

            async def flood() -> None:
                for _ in range(256):
                    flooder.write(payload[: 256 * 1024])
                    await flooder.drain()

            flooding = asyncio.create_task(flood())
            await asyncio.sleep(1.0)
            assert not flooding.done(), "64 MB went through although nobody read the echo"
            flooding.cancel()
            flooder.close()
        finally:
            await _close(proxy)
            await relay.stop()

    run_on_own_loop(scenario)
