"""An idle keep-alive connection outlives its clients' own idle expiry, so the client always closes first.

The server used uvicorn's 5 s, the very expiry httpx (the agents' and the SDKs' async client) gives its pooled
connections: a client reusing a connection idle for just under 5 s met the server closing it, and its request failed
with no answer at all ("Server disconnected without sending a response", or a reset when the request was already
in). At 1,000 clusters long-polling, that failed PUTs, polls and reports (docs/benchmarks.md, config push)."""

from __future__ import annotations

import socket
import ssl
import time

import httpx
import pytest

from halyard.core.settings import Settings
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
HTTPX_IDLE_EXPIRY = httpx.Limits().keepalive_expiry or 0.0  # httpx's default: 5 s


def _exchange(tls: ssl.SSLSocket, host: str) -> bytes:
    tls.sendall(f"GET /healthz HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = tls.recv(65536)
        assert chunk, "the server closed the connection without answering"
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    while len(body) < length:
        body += tls.recv(65536)
    return head.split(b"\r\n", 1)[0]


def test_the_server_keeps_an_idle_connection_longer_than_its_clients_do(server: ServerProcess) -> None:
    assert Settings().keep_alive_seconds > HTTPX_IDLE_EXPIRY
    context = ssl.create_default_context(cafile=server.ca)
    host = f"127.0.0.1:{server.port}"
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            assert b" 200 " in _exchange(tls, host)
            time.sleep(HTTPX_IDLE_EXPIRY + 0.5)  # idle past the moment the server used to close it
            assert b" 200 " in _exchange(tls, host)  # the same connection, still open
