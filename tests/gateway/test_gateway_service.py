"""The gateway service against a real control plane process: the cluster authenticated inside the tunnel by its
agent token, its link and the destination checked, the bytes spliced, and one audit row per connection whose byte
counts are what went through (counted here on the raw bytes of the agent's own TLS inside the tunnel)."""

from __future__ import annotations

import asyncio
import re
import ssl

import pytest

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


def test_agents_read_their_network_settings_with_their_own_token(gateway_plane: GatewayPlane) -> None:
    """What arc-proxy asks at every heartbeat interval: the gateway's name and port, and the proxy settings
    (the proxy URL with its credentials, unsealed for the cluster's own agents only)."""
    import httpx

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
