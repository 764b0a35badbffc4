"""Onboarding behind an enterprise proxy through a gateway, as a user runs it: ``connectedk8s connect
--gateway-resource-id … --proxy-https <squid>`` with local agents. The agents start arc-proxy; their first
certificate (proved with the onboarding key at the gateway: no token yet), tokens, heartbeats and cluster connect's
tunnel all go agent → arc-proxy → squid → gateway; squid allows only the gateway's name. The cluster becomes
Connected, and the gateway's audit holds the cluster's connections."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.agents.conftest import Cli, logged_in_cli, stop_agents
from tests.agents.test_onboarding import connect
from tests.gateway.conftest import GatewayPlane
from tests.gateway.squid import available, start_squid

pytestmark = [pytest.mark.e2e, pytest.mark.skipif(not available(), reason="squid is not installed (make system-deps)")]


@pytest.fixture
def gateway_cli(gateway_plane: GatewayPlane, tmp_path: Path) -> Iterator[Cli]:
    cli = logged_in_cli(gateway_plane.server, tmp_path)
    yield cli
    stop_agents(cli)


def test_connect_through_squid_and_the_gateway(
    gateway_plane: GatewayPlane, gateway_cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    cli = gateway_cli
    group = cli.group("behind-proxy")
    gw = cli.ok("arcgateway", "create", "-g", group, "-n", "edge", "-l", "eastus")
    squid = start_squid(gw["gatewayEndpoint"], gateway_plane.gateway_port)
    try:
        proc = connect(
            cli, group, "walled", fresh_cluster(), "--gateway-resource-id", gw["id"], "--proxy-https", squid.url,
            "--onboarding-timeout", "60",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        shown = cli.wait_status(group, "walled", "Connected", timeout=60)
        assert shown["gateway"] == {"enabled": True, "resourceId": gw["id"]}
        deadline = time.monotonic() + 20
        while not (rows := gateway_plane.audit(gw["id"], clusterId=shown["id"], verdict="allowed")):
            assert time.monotonic() < deadline, "no connection of the cluster's agents went through the gateway"
            time.sleep(0.2)  # a row is written when its connection closes
        assert {r["destination"] for r in rows} == {f"127.0.0.1:{gateway_plane.server.port}"}
        entries = [e for e in squid.access() if e["method"] == "CONNECT"]
        assert entries and {e["url"] for e in entries} == {f"{gw['gatewayEndpoint']}:{gateway_plane.gateway_port}"}
    finally:
        stop_agents(cli)
        squid.stop()


def test_connect_through_a_tls_inspecting_squid_with_proxy_cert(
    gateway_plane: GatewayPlane, gateway_cli: Cli, fresh_cluster: Callable[[], Path], tmp_path: Path
) -> None:
    cli = gateway_cli
    group = cli.group("behind-bump")
    gw = cli.ok("arcgateway", "create", "-g", group, "-n", "bumped", "-l", "eastus")
    squid = start_squid(gw["gatewayEndpoint"], gateway_plane.gateway_port, bump=True)
    try:
        assert squid.ca_pem is not None
        ca = tmp_path / "proxy-ca.pem"
        ca.write_text(squid.ca_pem)
        proc = connect(
            cli, group, "inspected", fresh_cluster(), "--gateway-resource-id", gw["id"], "--proxy-https", squid.url,
            "--proxy-cert", str(ca), "--onboarding-timeout", "60",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        shown = cli.wait_status(group, "inspected", "Connected", timeout=60)
        deadline = time.monotonic() + 20
        while not gateway_plane.audit(gw["id"], clusterId=shown["id"], verdict="allowed"):
            assert time.monotonic() < deadline, "no connection of the cluster's agents went through the gateway"
            time.sleep(0.2)
    finally:
        stop_agents(cli)
        squid.stop()
