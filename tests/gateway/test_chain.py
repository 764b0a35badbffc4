"""agent → arc-proxy → a real squid → the gateway → the control plane, on loopback: the agents' own calls (his, dp
heartbeats, cluster connect's tunnel) go through the chain; squid allows only CONNECT to the gateway's name, and its
access log shows nothing else; a destination outside the allowed list is refused by the gateway and audited; the
skip range keeps in-cluster traffic off the proxy; with ssl_bump (a TLS-inspecting squid) it works with the proxy's
CA given (--proxy-cert) and fails, naming the flag, without it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest

from halyard.agent.arcproxy import ArcProxy, NetworkSettings
from halyard.api.agents import DP_HEARTBEAT_PATH, GATEWAY_NETWORK_PATH
from halyard.tunnel.dial import dial
from halyard.tunnel.protocol import TUNNEL_UPGRADE
from tests.agents.conftest import logged_in_cli
from tests.api.agentcreds import Agent
from tests.gateway.conftest import GatewayPlane, wait_for
from tests.gateway.squid import Squid, available, start_squid

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not available(), reason="squid is not installed (make system-deps)")]


class AgentTokens:
    """The cluster's real agent token, as identity-operator hands it to the other agents."""

    def __init__(self, agent: Agent) -> None:
        self._agent = agent

    async def token(self) -> str:
        return self._agent.token

    def forget_token(self) -> None:
        pass

    async def wait_ready(self, timeout: float) -> None:
        return None


class Linked:
    def __init__(self, plane: GatewayPlane) -> None:
        group = plane.group()
        self.gateway = plane.gateway(group, "chain")
        self.name = self.gateway["properties"]["gatewayEndpoint"]
        self.agent = plane.cluster(group, "behind-squid")
        plane.link(self.agent, self.gateway["id"])


@pytest.fixture(scope="module")
def linked(gateway_plane: GatewayPlane) -> Linked:
    return Linked(gateway_plane)


@pytest.fixture(scope="module")
def squid(linked: Linked, gateway_plane: GatewayPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Squid]:
    proc = start_squid(linked.name, gateway_plane.gateway_port)
    yield proc
    proc.stop()


@pytest.fixture
async def arc_proxy(linked: Linked, gateway_plane: GatewayPlane, squid: Squid) -> AsyncIterator[ArcProxy]:
    settings = NetworkSettings(
        gateway=f"{linked.name}:{gateway_plane.gateway_port}", proxy=squid.url, skip_range="localhost,.svc"
    )
    proxy = ArcProxy(settings, AgentTokens(linked.agent), Path(gateway_plane.server.ca).read_text())
    await proxy.start()
    yield proxy
    await proxy.close()


async def test_agent_calls_go_through_squid_and_the_gateway(
    gateway_plane: GatewayPlane, linked: Linked, squid: Squid, arc_proxy: ArcProxy
) -> None:
    server = gateway_plane.server
    async with httpx.AsyncClient(proxy=arc_proxy.url, verify=server.ca, timeout=20) as http:
        r = await http.get(f"{server.url}/his/v1/endpoints")
        assert r.status_code == 200 and r.json()["dp"]
        beat = {"agentVersion": "1.0.0", "totalNodeCount": 1}
        r = await http.post(f"{server.url}/dp{DP_HEARTBEAT_PATH}", json=beat, headers=linked.agent.headers)
        assert r.status_code == 200, r.text
    # Cluster connect's tunnel, long-lived, through the same chain.
    upgraded = await dial(
        f"{server.url}/relay/v1/tunnel",
        upgrade=TUNNEL_UPGRADE,
        fields=[("Authorization", f"Bearer {linked.agent.token}")],
        ssl_context=gateway_plane.outer_tls(),
        proxy=arc_proxy.url,
    )
    upgraded.transport.close()

    def allowed() -> list[dict[str, object]] | None:
        rows = [r for r in gateway_plane.audit(linked.gateway["id"]) if r["verdict"] == "allowed"]
        return rows if len(rows) >= 2 else None  # httpx's one kept-alive connection, then the tunnel

    rows = await wait_for(allowed)
    assert all(r["clusterId"].lower() == linked.agent.path.lower() for r in rows)
    entries = await wait_for(lambda: [e for e in squid.access() if e["method"] == "CONNECT"] or None)
    # squid saw only the gateway's one name, never the control plane's own address.
    assert {e["url"] for e in entries} == {f"{linked.name}:{gateway_plane.gateway_port}"}
    # squid sees the outer TLS (handshake, records and the inner CONNECT): at least what the gateway carried.
    assert sum(int(e["down"]) for e in entries) >= sum(r["bytesDown"] for r in rows)


async def test_a_destination_outside_the_allowed_list_is_refused_and_audited(
    gateway_plane: GatewayPlane, linked: Linked, arc_proxy: ArcProxy
) -> None:
    async with httpx.AsyncClient(proxy=arc_proxy.url, timeout=20) as http:
        with pytest.raises(httpx.ProxyError, match="403"):
            await http.get("https://registry.example.com/v2/")
    rows = await wait_for(
        lambda: [r for r in gateway_plane.audit(linked.gateway["id"], verdict="denied")
                 if r["destination"] == "registry.example.com:443"] or None
    )  # fmt: skip
    assert rows[0]["reason"].startswith("DestinationNotAllowed")


async def test_the_skip_range_keeps_in_cluster_traffic_off_the_proxy(arc_proxy: ArcProxy, squid: Squid) -> None:
    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(await reader.read(100))
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(echo, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    before = len(squid.access())
    reader, writer = await asyncio.open_connection("127.0.0.1", int(arc_proxy.url.rsplit(":", 1)[1]))
    writer.write(f"CONNECT localhost:{port} HTTP/1.1\r\nHost: localhost:{port}\r\n\r\n".encode())
    assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
    writer.write(b"in-cluster")
    assert await reader.read(100) == b"in-cluster"
    writer.close()
    server.close()
    await asyncio.sleep(0.3)
    assert len(squid.access()) == before  # the proxy never saw it


async def test_a_tls_inspecting_proxy_needs_proxy_cert(
    gateway_plane: GatewayPlane, linked: Linked, tmp_path: Path
) -> None:
    bumping = start_squid(linked.name, gateway_plane.gateway_port, bump=True)
    ca = Path(gateway_plane.server.ca).read_text()
    server = gateway_plane.server
    try:
        settings = NetworkSettings(gateway=f"{linked.name}:{gateway_plane.gateway_port}", proxy=bumping.url)
        without = ArcProxy(settings, AgentTokens(linked.agent), ca)
        await without.start()
        try:
            async with httpx.AsyncClient(proxy=without.url, verify=server.ca, timeout=20) as http:
                with pytest.raises(httpx.ProxyError) as caught:
                    await http.get(f"{server.url}/his/v1/endpoints")
            assert "--proxy-cert" in str(caught.value) or "502" in str(caught.value)
        finally:
            await without.close()
        assert bumping.ca_pem is not None
        with_cert = ArcProxy(
            NetworkSettings(settings.gateway, settings.proxy, proxy_cert=bumping.ca_pem), AgentTokens(linked.agent), ca
        )
        await with_cert.start()
        try:
            async with httpx.AsyncClient(proxy=with_cert.url, verify=server.ca, timeout=20) as http:
                r = await http.get(f"{server.url}/his/v1/endpoints")
            # The agent's own TLS to the control plane is end to end inside: the bumping CA is not trusted there.
            assert r.status_code == 200
        finally:
            await with_cert.close()
    finally:
        bumping.stop()


def test_arcgateway_logs_and_show_tell_what_went_through(
    gateway_plane: GatewayPlane, linked: Linked, tmp_path: Path
) -> None:
    """Run after the chain tests of this module: the audit they left, read as an operator reads it."""
    cli = logged_in_cli(gateway_plane.server, tmp_path)
    group = linked.gateway["id"].split("/")[4]
    rows = cli.ok("arcgateway", "logs", "-g", group, "-n", "chain")
    assert {r["verdict"] for r in rows} == {"allowed", "denied"}
    denied = cli.ok("arcgateway", "logs", "-g", group, "-n", "chain", "--verdict", "denied")
    assert denied and all(r["verdict"] == "denied" for r in denied)
    assert "registry.example.com:443" in {r["destination"] for r in denied}
    mine = cli.ok("arcgateway", "logs", "-g", group, "-n", "chain", "--cluster", linked.agent.path)
    assert mine and all(r["clusterId"].lower() == linked.agent.path.lower() for r in mine)
    table = cli.run("arcgateway", "logs", "-g", group, "-n", "chain", "-o", "table")
    assert table.returncode == 0 and "Destination" in table.stdout
    shown = cli.ok("arcgateway", "show", "-g", group, "-n", "chain")
    assert shown["linkedClusters"][0]["clusterId"] == linked.agent.path.lower()
    assert shown["linkedClusters"][0]["lastSeen"]
    assert "--verdict" in cli.run("arcgateway", "logs", "-g", group, "-n", "chain", "--verdict", "maybe").stderr


async def test_moving_a_cluster_off_the_gateway_and_back_follows_at_the_next_refresh(
    gateway_plane: GatewayPlane, linked: Linked
) -> None:
    plane = gateway_plane
    group = linked.gateway["id"].split("/")[4]
    agent = await asyncio.to_thread(plane.cluster, group, "mover")
    await asyncio.to_thread(plane.link, agent, linked.gateway["id"])
    server = plane.server
    where = f"{linked.name}:{plane.gateway_port}"
    proxy = ArcProxy(
        NetworkSettings(gateway=where, gateway_address=f"127.0.0.1:{plane.gateway_port}"),
        AgentTokens(agent),
        Path(server.ca).read_text(),
        network_url=f"{server.url}{GATEWAY_NETWORK_PATH}",
    )
    await proxy.start()

    def through_gateway() -> int:
        rows = plane.audit(linked.gateway["id"], clusterId=agent.path, verdict="allowed")
        return len([r for r in rows if r["destination"] == f"127.0.0.1:{server.port}"])

    async def call() -> None:
        async with httpx.AsyncClient(proxy=proxy.url, verify=server.ca, timeout=20) as http:
            assert (await http.get(f"{server.url}/his/v1/endpoints")).status_code == 200

    try:
        assert (await proxy.refresh()).gateway == where
        await asyncio.to_thread(plane.link, agent, None)  # off the gateway
        assert (await proxy.refresh()).gateway is None  # the gateway refuses now: asked again, directly
        before = await wait_for(lambda: through_gateway() or None)
        await call()
        await asyncio.sleep(0.5)
        assert through_gateway() == before  # went direct
        await asyncio.to_thread(plane.link, agent, linked.gateway["id"])  # and back
        assert (await proxy.refresh()).gateway == where
        await call()
        await wait_for(lambda: through_gateway() > before)  # the call went through the gateway again
    finally:
        await proxy.close()
