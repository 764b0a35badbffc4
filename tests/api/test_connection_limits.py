"""What one client may cost before authentication (issue 11, finding 3): header size and count, header and body time,
open and new connections per address (new ones refused before their TLS handshake, fewer for an address whose
connections are refused); and the data directory readable by its owner only (finding 5)."""

from __future__ import annotations

import os
import resource
import socket
import ssl
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e
PER_ADDRESS = 6


@pytest.fixture(scope="module")
def strict(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server whose time limits are short enough to wait out in a test."""
    proc = ServerProcess(
        tmp_path_factory.mktemp("strict") / "data",
        free_port(),
        extra_args=["--header-timeout", "1", "--body-timeout", "1", "--connections-per-address", str(PER_ADDRESS)],
    ).start()
    yield proc
    proc.stop()


def _open(server: ServerProcess, source: str = "127.0.0.1") -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=server.ca)
    raw = socket.create_connection(("127.0.0.1", server.port), timeout=10, source_address=(source, 0))
    return context.wrap_socket(raw, server_hostname="127.0.0.1")


def _read_all(sock: ssl.SSLSocket) -> bytes:
    """Everything the server writes until it closes the connection."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionError, ssl.SSLError):
            break
        if not chunk:
            break
        data += chunk
    return data


def _healthy(server: ServerProcess) -> bool:
    return httpx.get(f"{server.url}/healthz", verify=server.ca, timeout=5).status_code == 200


def test_headers_that_stop_arriving_are_answered_408_and_closed(strict: ServerProcess) -> None:
    with _open(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        answer = _read_all(sock)  # without the timeout, the socket's own 10 s timeout raises here
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"RequestTimeout" in answer


def test_a_body_that_stops_arriving_is_answered_408(strict: ServerProcess) -> None:
    with _open(strict) as sock:
        sock.sendall(b"POST /dp/v1/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000\r\n\r\n{\"agentVersion\":")  # fmt: skip
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]


@pytest.mark.parametrize(
    "headers",
    [b"X-Big: " + b"a" * (100 * 1024) + b"\r\n", b"".join(b"X-H%d: v\r\n" % i for i in range(200))],
    ids=["one-huge-header", "too-many-headers"],
)
def test_oversized_headers_are_answered_431(strict: ServerProcess, headers: bytes) -> None:
    with _open(strict) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer = _read_all(sock)
    assert answer.startswith(b"HTTP/1.1 431"), answer[:200]


def test_connections_per_address_are_bounded_and_others_are_served(strict: ServerProcess) -> None:
    held = [_open(strict) for _ in range(PER_ADDRESS)]
    try:
        with _open(strict) as extra:
            extra.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            answer = _read_all(extra)
        assert answer.startswith(b"HTTP/1.1 503"), answer[:200]
        assert b"retry-after" in answer.lower()
    finally:
        for sock in held:
            sock.close()
    # Once the held connections are gone (closed by the client or by the header timeout), the address is served.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if _healthy(strict):
                return
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("the address was not served again after its connections closed")


def test_slow_header_connections_are_shed_and_the_server_stays_reachable(strict: ServerProcess) -> None:
    stalled = [_open(strict) for _ in range(PER_ADDRESS - 1)]
    for sock in stalled:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    try:
        time.sleep(1.5)  # past the header timeout: every stalled connection was answered and closed
        for sock in stalled:
            assert _read_all(sock).startswith(b"HTTP/1.1 408")
        assert _healthy(strict)
    finally:
        for sock in stalled:
            sock.close()


def test_data_directory_is_owner_only_and_a_loose_one_is_fixed_at_start(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    os.chmod(data, 0o755)
    loose = data / "notes.txt"
    loose.write_text("x")
    os.chmod(loose, 0o644)
    old = os.umask(0o022)  # the usual umask, inherited by the server
    try:
        proc = ServerProcess(data, free_port()).start()
    finally:
        os.umask(old)
    try:
        with proc.client() as c:  # a write, so the database's -wal and -shm exist
            assert c.put(f"/subscriptions/{proc.admin['subscription']}/resourceGroups/perm",
                         params={"api-version": "2024-11-01"}, json={"location": "eastus"}).status_code == 201  # fmt: skip
        assert stat.S_IMODE(data.stat().st_mode) == 0o700
        files = [p for p in data.rglob("*") if p.is_file()]
        assert {"halyard.db", "halyard.db-wal", "notes.txt", "admin.json"} <= {p.name for p in files}
        loose_files = {str(p.relative_to(data)): oct(stat.S_IMODE(p.stat().st_mode)) for p in files
                       if stat.S_IMODE(p.stat().st_mode) & 0o077}  # fmt: skip
        assert loose_files == {}
        dirs = [p for p in data.rglob("*") if p.is_dir()]
        assert all(stat.S_IMODE(p.stat().st_mode) == 0o700 for p in dirs)
        assert "made owner-only" in proc.log()
    finally:
        proc.stop()


def test_stalled_clients_cannot_take_every_descriptor(tmp_path: Path) -> None:
    # Started with 256 descriptors, as some systems start processes: the server raises its own limit, and one
    # address holds at most its share, so 300 stalled connections from one host leave room for everyone else.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, hard))
    try:
        proc = ServerProcess(tmp_path / "data", free_port()).start()
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    stalled: list[socket.socket] = []
    try:
        assert proc.proc is not None
        limits = Path(f"/proc/{proc.proc.pid}/limits").read_text()
        open_files = next(line for line in limits.splitlines() if line.startswith("Max open files")).split()
        assert int(open_files[3]) > 256, open_files
        for _ in range(300):
            sock = socket.socket()
            sock.bind(("127.0.0.2", 0))
            sock.connect(("127.0.0.1", proc.port))  # a TCP connection that never even starts its TLS handshake
            stalled.append(sock)
        assert _healthy(proc)
    finally:
        for sock in stalled:
            sock.close()
        proc.stop()


# A server whose new-connection bucket is tiny and does not refill within a test; its TLS handshakes may take a
# minute, so a connection that was let in and sends nothing stays open far longer than a test waits.
BURST, PENALTY, EXEMPT = 3, 2, "127.0.0.9"


@pytest.fixture(scope="module")
def gated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("gated") / "data",
        free_port(),
        extra_args=[
            "--new-connections-per-address-burst",
            str(BURST),
            "--new-connections-per-address-rate",
            "0.001",
            "--refused-connection-penalty",
            str(PENALTY),
            "--connection-limits-exempt",
            EXEMPT,
            "--tls-handshake-timeout",
            "60",
        ],
    ).start()
    yield proc
    proc.stop()


def _served(server: ServerProcess, source: str) -> bytes:
    """A /healthz on a new connection from ``source``: the answer's status line."""
    with _open(server, source) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return _read_all(sock).split(b"\r\n", 1)[0]


def _closed_unread(server: ServerProcess, source: str) -> bool:
    """Whether a new connection from ``source`` that sends nothing is closed by the server. One let in would wait
    for its ClientHello for the handshake's minute: the socket's 20 s timeout then fails the test."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=20, source_address=(source, 0)) as raw:
        try:
            return raw.recv(1) == b""
        except ConnectionResetError:
            return True


def test_new_connections_over_the_burst_are_closed_before_any_tls_byte_is_read(gated: ServerProcess) -> None:
    source = "127.0.0.2"
    assert [_served(gated, source) for _ in range(BURST)] == [b"HTTP/1.1 200 OK"] * BURST
    assert _closed_unread(gated, source)  # nothing was sent: the server closed it without reading a byte
    with pytest.raises((ssl.SSLError, ConnectionError)):
        _served(gated, source)
    assert _served(gated, "127.0.0.3") == b"HTTP/1.1 200 OK"  # per address: another is served
    assert all(_served(gated, EXEMPT) == b"HTTP/1.1 200 OK" for _ in range(BURST + 2))  # exempt: not limited


def _first_request(server: ServerProcess, source: str, request: bytes) -> bytes:
    with _open(server, source) as sock:
        sock.sendall(request)
        return _read_all(sock)


OVERSIZED = (
    b"POST /dp/v1/heartbeat HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 5242880\r\n\r\n"
)
TOO_MANY_HEADERS = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n"


@pytest.mark.parametrize(("source", "request_", "status"), [
    ("127.0.0.4", OVERSIZED, b"413"), ("127.0.0.6", TOO_MANY_HEADERS, b"431"),
], ids=["413-body-layer", "431-connection-layer"])  # fmt: skip
def test_a_connection_whose_first_request_is_refused_costs_its_address_the_penalty(
    gated: ServerProcess, source: str, request_: bytes, status: bytes
) -> None:
    assert _first_request(gated, source, request_).startswith(b"HTTP/1.1 " + status)
    # BURST - 1 - PENALTY = 0 left: the next connection is closed unread.
    assert _closed_unread(gated, source)


def test_a_refusal_after_an_answered_request_costs_nothing_more(gated: ServerProcess) -> None:
    source = "127.0.0.5"
    with _open(gated, source) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        answer = b""
        while not answer.endswith(b'{"status":"ok"}'):  # the whole first answer, before the next request
            answer += sock.recv(65536)
        assert answer.startswith(b"HTTP/1.1 200")
        sock.sendall(OVERSIZED)
        assert _read_all(sock).startswith(b"HTTP/1.1 413")
    assert [_served(gated, source) for _ in range(BURST - 1)] == [b"HTTP/1.1 200 OK"] * (BURST - 1)
    assert _closed_unread(gated, source)
