"""The chain in network namespaces: the cluster's namespace has a veth to this host and nothing else; there, only a
real squid is reachable, which allows CONNECT to the gateway's name and port alone. The control plane listens on the
host's loopback, out of the namespace's reach: the direct path is blocked. The agents' calls (his, a heartbeat,
cluster connect's tunnel) work through arc-proxy → squid → gateway, a registry outside the allowed list is refused
and audited, and squid's log holds only the gateway's name. Root only; the namespace is removed afterwards."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.gateway.conftest import GatewayPlane
from tests.gateway.squid import available, start_squid

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not available() or os.geteuid() != 0 or not shutil.which("ip"), reason="needs root, ip, squid"),
]
HERE = Path(__file__).parent


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str]]:
    """(namespace, host-side address): a /30 on a veth pair, private to this machine."""
    tag = uuid.uuid4().hex[:6]
    name, host_if, ns_if = f"hgw-{tag}", f"hgw{tag}h", f"hgw{tag}n"
    octet = int(tag[:2], 16)
    host_side, ns_side = f"10.254.{octet}.1", f"10.254.{octet}.2"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{host_side}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{ns_side}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield name, host_side
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


def test_agents_in_a_walled_namespace_reach_the_control_plane_only_through_the_chain(
    gateway_plane: GatewayPlane, namespace: tuple[str, str]
) -> None:
    name, host_side = namespace
    plane = gateway_plane
    group = plane.group()
    gw = plane.gateway(group, "walled")
    endpoint = gw["properties"]["gatewayEndpoint"]
    agent = plane.cluster(group, "in-netns")
    plane.link(agent, gw["id"])
    squid = start_squid(endpoint, plane.gateway_port, listen=host_side)
    try:
        env = {
            **os.environ, "CP_URL": plane.server.url, "CP_CA": plane.server.ca, "AGENT_TOKEN": agent.token,
            "GATEWAY": f"{endpoint}:{plane.gateway_port}", "SQUID": squid.url, "HOST_SIDE": host_side,
        }  # fmt: skip
        done = subprocess.run(
            ["ip", "netns", "exec", name, sys.executable, str(HERE / "netns_agent.py")],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr[-3000:]
        result = json.loads(done.stdout.strip().splitlines()[-1])
        assert all(v.startswith("blocked") for k, v in result.items() if k.startswith("direct")), result
        assert (result["his endpoints"], result["heartbeat"], result["tunnel"]) == (200, 200, "upgraded"), result
        assert "403" in str(result["registry"])
        deadline = time.monotonic() + 20
        while not [
            r for r in plane.audit(gw["id"], verdict="denied") if r["destination"] == "registry.example.com:443"
        ]:
            assert time.monotonic() < deadline, "the refusal is not in the audit"
            time.sleep(0.2)
        assert len(plane.audit(gw["id"], verdict="allowed")) >= 2
        assert {e["url"] for e in squid.access() if e["method"] == "CONNECT"} == {f"{endpoint}:{plane.gateway_port}"}
    finally:
        squid.stop()
