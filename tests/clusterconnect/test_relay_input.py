"""Hostile input at the relay's own door (its paths are not in the OpenAPI document the fuzzers walk): malformed,
oversized and stalled heads, wrong upgrades and ids, each a clear answer and the server unharmed."""

from __future__ import annotations

import json
import socket
import ssl
import time

import httpx
import pytest

from tests.clusterconnect.conftest import Connected

pytestmark = pytest.mark.e2e


def exchange(cluster: Connected, raw: bytes, *, wait: float = 15) -> tuple[int, dict[str, object]]:
    """Send ``raw`` on a fresh TLS connection; the status and JSON body of the answer (0, {} if it just closed)."""
    context = ssl.create_default_context(cafile=cluster.server.ca)
    with socket.create_connection(("127.0.0.1", cluster.server.port), timeout=wait) as plain:
        with context.wrap_socket(plain, server_hostname="127.0.0.1") as tls:
            tls.sendall(raw)
            answer = b""
            try:
                while chunk := tls.recv(65536):
                    answer += chunk
            except (ssl.SSLError, ConnectionResetError):
                pass
    if not answer:
        return 0, {}
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body) if body else {}


def test_malformed_oversized_and_misdirected_requests_get_clear_errors(connected: Connected) -> None:
    token = connected.server.token()
    path = f"/relay/v1{connected.resource_id}"
    cases: list[tuple[bytes, int, str]] = [
        (b"GET /relay/v1/nowhere HTTP/1.1\r\nHost: x\r\n\r\n", 404, "NotFound"),
        (b"GET /relay/v1/tunnel HTTP/1.1\r\nHost: x\r\n\r\n", 426, "UpgradeRequired"),
        (b"GET /relay/v1/streams/zz HTTP/1.1\r\nHost: x\r\nUpgrade: halyard-stream/1\r\n\r\n", 401, "AuthenticationFailed"),
        (f"GET /relay/v1/streams/{'ab' * 16} HTTP/1.1\r\nUpgrade: halyard-stream/1\r\nAuthorization: Bearer x\r\n\r\n".encode(),
         401, "InvalidAuthenticationToken"),
        (b"GET /relay/v1/x HTTP/1.1\r\nno colon here\r\n\r\n", 400, "BadRequest"),
        (b"GET /relay/v1/x HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431, "BadRequest"),
        (b"GET /relay/v1/x HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(150)) + b"\r\n", 431, "BadRequest"),
        (f"GET {path}/api HTTP/1.1\r\nAuthorization: Bearer {token}\r\nUpgrade: halyard-stream/1\r\n"
         f"Halyard-Authentication-Method: Kerberos\r\n\r\n".encode(), 400, "InvalidAuthenticationMethod"),
        ("GET /relay/v1/subscriptions/\udcff/x HTTP/1.1\r\n\r\n".encode("utf-8", "surrogateescape"), 404, "NotFound"),
    ]  # fmt: skip
    for raw, status, code in cases:
        got, body = exchange(connected, raw)
        assert (got, body.get("error", {}).get("code")) == (status, code), (raw[:80], got, body)  # type: ignore[union-attr]
    assert httpx.get(f"{connected.server.url}/healthz", verify=connected.server.ca).status_code == 200


def test_a_head_that_never_ends_is_cut_at_the_deadline(connected: Connected) -> None:
    started = time.monotonic()
    got, body = exchange(connected, b"GET /relay/v1/tunnel HTTP/1.1\r\nHost: x\r\n", wait=30)
    assert (got, body["error"]["code"]) == (408, "RequestTimeout")  # type: ignore[index]
    assert time.monotonic() - started < 20  # the listener's header deadline (10 s by default)
