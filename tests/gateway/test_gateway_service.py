"""The gateway service against a real control plane process: the cluster authenticated inside the tunnel by its
agent token, its link and the destination checked, the bytes spliced, and one audit row per connection whose byte
counts are what went through (counted here on the raw bytes of the agent's own TLS inside the tunnel)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl

import httpx
import pytest

from halyard.controlplane.gateway.service import HEAD_TIMEOUT
from tests.gateway.conftest import GatewayPlane, wait_for

pytestmark = pytest.mark.e2e


async def _tunnel(
    plane: GatewayPlane, gateway_name: str, destination: str, token: str | None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, int, bytes]:
    """Outer TLS to the gateway by its name, then CONNECT; (reader, writer, status, answer head)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", plane.gateway_port, ssl=plane.outer_tls(), server_hostname=gateway_name
    )
    auth = f"Proxy-Authorization: Bearer {token}\r\n" if token else ""
    writer.write(f"CONNECT {destination} HTTP/1.1\r\nHost: {destination}\r\n{auth}\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    return reader, writer, int(head.split()[1]), head


async def _inner_https_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, ca: str, path: str
) -> tuple[bytes, int, int]:
    """An HTTPS GET end to end inside the tunnel, TLS done by hand so every raw byte is counted: (body, up, down)."""
    context = ssl.create_default_context(cafile=ca)
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    up = down = 0

    async def flush() -> None:
        nonlocal up
        data = outgoing.read()
        if data:
            up += len(data)
            writer.write(data)
            await writer.drain()

    async def feed() -> bool:
        nonlocal down
        data = await reader.read(65536)
        if not data:
            incoming.write_eof()
            return False
        down += len(data)
        incoming.write(data)
        return True

    while True:
        try:
            tls.do_handshake()
            break
        except ssl.SSLWantReadError:
            await flush()
            await feed()
    await flush()
    tls.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode())
    await flush()
    answer = b""
    while True:
        try:
            chunk = tls.read(65536)
            if not chunk:
                break
            answer += chunk
        except ssl.SSLWantReadError:
            await flush()
            if not await feed():
                break
        except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
            break
    await flush()
    writer.close()
    await writer.wait_closed()
    return answer, up, down


def _arrivals(plane: GatewayPlane) -> dict[str, float]:
    with plane.server.client() as c:
        text = c.get("/metrics").text
    found = re.findall(r'^halyard_requests_by_arrival_total\{arrival="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {kind: float(value) for kind, value in found}


async def test_linked_cluster_reaches_the_control_plane_and_the_audit_counts_its_bytes(
    gateway_plane: GatewayPlane,
) -> None:
    plane = gateway_plane
    group = plane.group()
    gw = plane.gateway(group, "gw-svc")
    name = gw["properties"]["gatewayEndpoint"]
    agent = await asyncio.to_thread(plane.cluster, group, "via-gw")
    plane.link(agent, gw["id"])
    destination = f"127.0.0.1:{plane.server.port}"
    before = await asyncio.to_thread(_arrivals, plane)

    reader, writer, status, _ = await _tunnel(plane, name, destination, agent.token)
    assert status == 200
    answer, up, down = await _inner_https_get(reader, writer, plane.server.ca, "/his/v1/endpoints")
    assert answer.startswith(b"HTTP/1.1 200") and b'"dp"' in answer
    # The request inside the tunnel arrived as the gateway's (Arrival(GATEWAY)), not as a public one.
    after = await asyncio.to_thread(_arrivals, plane)
    assert after["gateway"] - before["gateway"] == 1

    rows = await wait_for(lambda: [r for r in plane.audit(gw["id"]) if r["verdict"] == "allowed"])
    assert len(rows) == 1
    row = rows[0]
    assert row["clusterId"].lower() == agent.path.lower() and row["destination"] == destination
    assert (row["bytesUp"], row["bytesDown"]) == (up, down)  # exactly the bytes of the agent's own TLS
    assert row["durationMs"] >= 0 and row["gatewayId"] == gw["id"]

    # Shown as using the gateway, and when it was last seen through it.
    with plane.server.client() as c:
        linked = c.get(f"{gw['id']}/linkedClusters", params={"api-version": "2024-07-31-preview"}).json()["value"]
    assert [x["clusterId"] for x in linked] == [agent.path.lower()] and linked[0]["lastSeen"]


async def test_refusals_are_answered_and_audited(gateway_plane: GatewayPlane) -> None:
    plane = gateway_plane
    group = plane.group()
    gw = plane.gateway(group, "gw-deny", ["cluster-connect"])
    other = plane.gateway(group, "gw-other")
    name = gw["properties"]["gatewayEndpoint"]
    linked = await asyncio.to_thread(plane.cluster, group, "linked")
    plane.link(linked, gw["id"])
    stranger = await asyncio.to_thread(plane.cluster, group, "stranger")
    plane.link(stranger, other["id"])
    control_plane = f"127.0.0.1:{plane.server.port}"

    cases = [
        (linked.token, "example.com:443", 403, b"DestinationNotAllowed"),  # not a Halyard service
        (linked.token, "127.0.0.1:22", 403, b"DestinationNotAllowed"),
        (stranger.token, control_plane, 403, b"ClusterNotLinked"),  # linked to another gateway
        (None, control_plane, 407, b"AgentTokenRequired"),
        ("not-a-token", control_plane, 407, b""),
    ]
    for token, destination, wanted, code in cases:
        reader, writer, status, head = await _tunnel(plane, name, destination, token)
        body = await reader.read()
        assert status == wanted, (destination, head, body)
        assert code in body
        writer.close()

    rows = await wait_for(lambda: [r for r in plane.audit(gw["id"], verdict="denied")] if len(
        plane.audit(gw["id"], verdict="denied")) >= len(cases) else None)  # fmt: skip
    reasons = sorted(r["reason"].split(":")[0] for r in rows)
    assert reasons.count("DestinationNotAllowed") == 2 and "ClusterNotLinked" in reasons
    assert all(r["bytesUp"] == 0 and r["bytesDown"] == 0 for r in rows)
    assert {r["destination"] for r in rows} >= {"example.com:443", control_plane}


def test_audit_rows_cannot_be_written_or_erased_through_the_api(gateway_plane: GatewayPlane) -> None:
    plane = gateway_plane
    group = plane.group()
    gw = plane.gateway(group, "gw-ro")
    with plane.server.client() as c:
        for method in ("PUT", "POST", "PATCH", "DELETE"):
            r = c.request(method, f"{gw['id']}/auditRecords", params={"api-version": "2024-07-31-preview"}, json={})
            assert r.status_code in (404, 405), (method, r.status_code, r.text)
        r = c.get(f"{gw['id']}/auditRecords", params={"api-version": "2024-07-31-preview", "verdict": "bogus"})
        assert r.status_code == 400
    plane.delete(gw["id"])  # the module's server holds at most 5 gateways


def test_agents_read_their_network_settings_with_their_own_token(gateway_plane: GatewayPlane) -> None:
    """What arc-proxy asks at every heartbeat interval: the gateway's name and port, and the proxy settings
    (the proxy URL with its credentials, unsealed for the cluster's own agents only)."""
    from halyard.api.agents import GATEWAY_NETWORK_PATH

    plane = gateway_plane
    group = plane.group()
    gw = plane.gateway(group, "gw-net")
    agent = plane.cluster(group, "net")
    plane.link(agent, gw["id"])
    with plane.server.client() as c:
        cluster = c.get(agent.path, params={"api-version": "2024-07-01-preview"}).json()
        cluster["properties"]["arcAgentryConfigurations"] = [
            {
                "feature": "proxy",
                "settings": {"noProxy": ".svc"},
                "protectedSettings": {"httpsProxy": "http://u:p@sq:3128"},
            }
        ]
        assert c.put(agent.path, params={"api-version": "2024-07-01-preview"}, json=cluster).status_code == 200
    url = f"{plane.server.url}{GATEWAY_NETWORK_PATH}"
    network = httpx.get(url, headers=agent.headers, verify=plane.server.ca).json()
    assert network["gateway"] == f"{gw['properties']['gatewayEndpoint']}:{plane.gateway_port}"
    assert (network["httpsProxy"], network["noProxy"]) == ("http://u:p@sq:3128", ".svc")
    with plane.server.client() as c:  # users never see the credentials
        shown = c.get(agent.path, params={"api-version": "2024-07-01-preview"}).json()
        assert shown["properties"]["arcAgentryConfigurations"][0]["protectedSettings"] == {"httpsProxy": ""}
    assert httpx.get(url, verify=plane.server.ca).status_code == 401  # agents only
    with plane.server.client() as c:  # a management token is not an agent token
        assert c.get(GATEWAY_NETWORK_PATH).status_code == 401


def _arrivals(plane: GatewayPlane) -> dict[str, float]:
    with plane.server.client() as c:
        text = c.get("/metrics").text
    found = re.findall(r'^halyard_requests_by_arrival_total\{arrival="(\w+)"\} ([0-9.e+]+)$', text, re.MULTILINE)
    return {kind: float(value) for kind, value in found}


# ---- hostile input at the gateway's door ----------------------------------------------------------------------
# raw TLS and CONNECT, no OpenAPI route for the fuzzers to walk: oversized and endless heads, slow and idle clients,
# garbage where TLS should be, bad CONNECT targets, hundreds of connections from one address. Each is answered
# clearly or cut, never a 5xx or a crash, and a linked cluster's own tunnel is served all the while.

IDLE_CONNECTIONS = 200
SLOW_CONNECTIONS = 20


async def _raw(plane: GatewayPlane, name: str, data: bytes) -> tuple[int, dict[str, object]]:
    """``data`` sent inside TLS to the gateway; the status and JSON error of its answer (0, {} if it just closed)."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", plane.gateway_port, ssl=plane.outer_tls(), server_hostname=name
    )
    try:
        writer.write(data)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(), 20)
    except (ConnectionError, ssl.SSLError):
        answer = b""
    finally:
        writer.close()
    if not answer:
        return 0, {}
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body) if body else {}


async def _not_tls(plane: GatewayPlane, data: bytes) -> bytes:
    """``data`` where a TLS ClientHello should be: what comes back before the gateway closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", plane.gateway_port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 20)
    except ConnectionError:
        return b""
    finally:
        writer.close()


async def _slow(plane: GatewayPlane, name: str) -> int:
    """A head trickled a byte at a time, never finished: the status the gateway cuts it with."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", plane.gateway_port, ssl=plane.outer_tls(), server_hostname=name
    )
    try:
        writer.write(b"CONNECT 127.0.0.1:1 HTTP/1.1\r\nX-Slow: ")
        while not reader.at_eof():
            writer.write(b"a")
            await writer.drain()
            try:
                answer = await asyncio.wait_for(reader.read(4096), 0.5)
            except TimeoutError:
                continue
            return int(answer.split(b" ")[1]) if answer else 0
        return 0
    except (ConnectionError, ssl.SSLError):
        return 0
    finally:
        writer.close()


async def _idle(plane: GatewayPlane, name: str) -> int:
    """A TLS connection that never sends a byte: the status it is cut with."""
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", plane.gateway_port, ssl=plane.outer_tls(), server_hostname=name
    )
    try:
        answer = await asyncio.wait_for(reader.read(), HEAD_TIMEOUT * 3)
        return int(answer.split(b" ")[1]) if answer else 0
    except (ConnectionError, ssl.SSLError):
        return 0
    finally:
        writer.close()


async def test_hostile_input_never_harms_the_gateway_or_its_other_clients(gateway_plane: GatewayPlane) -> None:
    plane = gateway_plane
    group = plane.group()
    gw = plane.gateway(group, "gw-fuzz")
    name = gw["properties"]["gatewayEndpoint"]
    agent = await asyncio.to_thread(plane.cluster, group, "fuzzed")
    plane.link(agent, gw["id"])
    control_plane = f"127.0.0.1:{plane.server.port}"

    # Slow and idle clients first: they hold their connections while everything else runs.
    slow = [asyncio.ensure_future(_slow(plane, name)) for _ in range(SLOW_CONNECTIONS)]
    idle = [asyncio.ensure_future(_idle(plane, name)) for _ in range(IDLE_CONNECTIONS)]

    heads: list[tuple[bytes, int]] = [
        (b"CONNECT x:1 HTTP/1.1\r\nX: " + b"a" * 70_000 + b"\r\n\r\n", 431),
        (b"CONNECT x:1 HTTP/1.1\r\n" + b"".join(b"X%d: y\r\n" % i for i in range(500)) + b"\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),  # a second ClientHello inside
        (b"CONNECT HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT :443 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host:0 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host:65536 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host:" + b"9" * 5000 + b" HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host:-1 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT /etc/passwd HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT [::1:443 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT h\x00st:443 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT \xff\xfe:443 HTTP/1.1\r\n\r\n", 400),
        ("CONNECT \udcff:443 HTTP/1.1\r\n\r\n".encode("utf-8", "surrogateescape"), 400),
        (b"CONNECT a:1 HTTP/1.1\r\nno colon\r\n\r\n", 400),
        (b"GET /gw/v1/connect HTTP/1.1\r\nHalyard-Destination: " + control_plane.encode() + b"\r\n\r\n", 400),
        (b"GET /gw/v1/connect HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", 400),
        (b"GET /gw/v1/connect HTTP/1.1\r\nUpgrade: websocket\r\nHalyard-Destination: a:b:c\r\n\r\n", 400),
        # Well-formed, but no credential, or one that is not a token: refused before anything is dialled.
        (f"CONNECT {control_plane} HTTP/1.1\r\n\r\n".encode(), 407),
        (f"CONNECT {control_plane} HTTP/1.1\r\nProxy-Authorization: Bearer {'x' * 8000}\r\n\r\n".encode(), 407),
        (f"CONNECT {control_plane} HTTP/1.1\r\nProxy-Authorization: Proof \udcff\r\n\r\n".encode(
            "utf-8", "surrogateescape"), 407),
        (f"CONNECT {control_plane} HTTP/1.1\r\nProxy-Authorization: Proof a.b.c\r\n\r\n".encode(), 407),
    ]  # fmt: skip
    answers = await asyncio.gather(*(_raw(plane, name, raw) for raw, _ in heads))
    for (raw, wanted), (status, body) in zip(heads, answers, strict=True):
        assert status == wanted, (raw[:80], status, body)
        assert isinstance(body.get("error"), dict) and body["error"]["code"], (raw[:80], body)  # type: ignore[index]

    # Not TLS at all, a TLS record of absurd length, half a handshake (cut at the head deadline): closed without
    # an HTTP answer.
    garbage = (os.urandom(4096), b"\x16\x03\x01\xff\xff" + os.urandom(64), b"\x16\x03\x01\x00\x30\x01")
    closed = asyncio.gather(*(_not_tls(plane, g) for g in garbage))
    # A TLS name the gateway does not serve: answered (403/400), not crashed.
    status, _ = await _raw(plane, "nowhere.gw.halyard.local", f"CONNECT {control_plane} HTTP/1.1\r\n\r\n".encode())
    assert 400 <= status < 500

    # While all that is held open, the linked cluster's own tunnel is served end to end.
    reader, writer, status, _ = await _tunnel(plane, name, control_plane, agent.token)
    assert status == 200
    answer, _, _ = await _inner_https_get(reader, writer, plane.server.ca, "/his/v1/endpoints")
    assert answer.startswith(b"HTTP/1.1 200")

    # Slow and idle clients are cut at the head deadline (counted from the connection, not from the last byte).
    assert not [answer for answer in await closed if answer.startswith(b"HTTP")]
    assert set(await asyncio.gather(*slow)) == {408}
    assert set(await asyncio.gather(*idle)) == {408}
    assert httpx.get(f"{plane.server.url}/healthz", verify=plane.server.ca).status_code == 200
    assert plane.server.proc is not None and plane.server.proc.poll() is None
    plane.delete(gw["id"])  # the module's server holds at most 5 gateways
