"""The chain in network namespaces: the cluster's namespace has a veth to this host and nothing else; there, only a
real squid is reachable, which allows CONNECT to the gateway's name and port alone. The control plane listens on the
host's loopback, out of the namespace's reach: the direct path is blocked. The agents' calls (his, a heartbeat,
cluster connect's tunnel) work through arc-proxy → squid → gateway, a registry outside the allowed list is refused
and audited, and squid's log holds only the gateway's name. Root only; the namespace is removed afterwards."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.agents.conftest import logged_in_cli
from tests.cli.test_proxy_relay import _kubectl, _proxy, _sim_token
from tests.gateway.conftest import GatewayPlane
from tests.gateway.squid import Squid, available, start_squid
from tests.sim.conftest import helm_path, start_sim
from tests.support.processes import free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not available() or os.geteuid() != 0 or not shutil.which("ip"), reason="needs root, ip, squid"),
]
HERE = Path(__file__).parent


def test_agents_in_a_walled_namespace_reach_the_control_plane_only_through_the_chain(
    gateway_plane: GatewayPlane, namespace: tuple[str, str, str]
) -> None:
    name, host_side, _ = namespace
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


def _heartbeats(plane: GatewayPlane) -> float:
    """Heartbeats the control plane has answered 200 (its /metrics)."""
    with plane.server.client() as c:
        text = c.get("/metrics").text
    pattern = r'^halyard_http_requests_total\{method="POST",route="/dp/v1/heartbeat",status="200"\} ([0-9.e+]+)$'
    return sum(float(v) for v in re.findall(pattern, text, re.MULTILINE))


WALL_CHECK = """
import json, socket, sys
out = {}
for host, port in json.loads(sys.argv[1]):
    try:
        socket.create_connection((host, port), timeout=2).close()
        out[f"{host}:{port}"] = "reachable"
    except OSError as exc:
        out[f"{host}:{port}"] = "blocked"
print(json.dumps(out))
"""


def test_real_agents_in_the_walled_namespace_onboard_beat_and_carry_kubectl_through_the_chain(
    gateway_plane: GatewayPlane, namespace: tuple[str, str, str], tmp_path: Path
) -> None:
    """The cluster lives in the namespace: its API server (the simulator) on the namespace's address, its agents
    (``halyard agent run``, local mode, arc-proxy in-process) beside it. The operator onboards from this host; the
    agents' every connection to the control plane goes arc-proxy → squid (on the host side of the veth, the one
    thing the namespace reaches) → gateway; kubectl on this host reaches the cluster through the agents' tunnel."""
    name, host_side, ns_side = namespace
    plane = gateway_plane
    netns = ("ip", "netns", "exec", name)
    (tmp_path / "sim").mkdir()
    sim = start_sim(tmp_path / "sim" / "data", "--clusters", "1", "--nodes", "2", "--host", ns_side, wrap=netns)
    cli = logged_in_cli(plane.server, tmp_path / "cli")
    squid: Squid | None = None
    agents: subprocess.Popen[bytes] | None = None
    try:
        group = cli.group("walled-agents")
        gw = cli.ok("arcgateway", "create", "-g", group, "-n", "walled-agents", "-l", "eastus")
        gateway = f"{gw['gatewayEndpoint']}:{plane.gateway_port}"
        squid = start_squid(gw["gatewayEndpoint"], plane.gateway_port, listen=host_side)
        kubeconfig = sim.clusters[0].kubeconfig

        # Walled: from the namespace, squid answers; the control plane's listeners and the gateway itself do not.
        cp_port = plane.server.port
        targets = [
            ["127.0.0.1", cp_port],
            [host_side, cp_port],
            [host_side, plane.gateway_port],
            [host_side, squid.port],
        ]
        walls = subprocess.run([*netns, sys.executable, "-c", WALL_CHECK, json.dumps(targets)],
                               capture_output=True, text=True, timeout=30)  # fmt: skip
        assert json.loads(walls.stdout) == {
            f"127.0.0.1:{cp_port}": "blocked", f"{host_side}:{cp_port}": "blocked",
            f"{host_side}:{plane.gateway_port}": "blocked", f"{host_side}:{squid.port}": "reachable",
        }, walls.stderr  # fmt: skip

        # Onboarding, from this host: the resource linked to the gateway, the cluster's onboarding Secret and
        # configuration written (--agent-mode in-cluster: no agent starts here; they run in the namespace).
        made = cli.run(
            "connectedk8s", "connect", "-g", group, "-n", "walled", "-l", "eastus", "--kube-config", str(kubeconfig),
            "--agent-mode", "in-cluster", "--gateway-resource-id", gw["id"], "--proxy-https", squid.url,
            "--proxy-skip-range", ns_side, "--no-wait", "--yes", "-o", "json", env={"HALYARD_HELM": str(helm_path())},
        )  # fmt: skip
        assert made.returncode == 0, made.stderr
        with open(tmp_path / "agents.log", "wb") as log:
            agents = subprocess.Popen(
                [*netns, sys.executable, "-m", "halyard", "agent", "run", "--kubeconfig", str(kubeconfig),
                 "--state-dir", str(tmp_path / "agents"), "--gateway", gateway, "--proxy", squid.url,
                 "--proxy-skip-range", ns_side, "--heartbeat-seconds", "1"],
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        first = cli.wait_status(group, "walled", "Connected", timeout=90)
        assert first["gateway"] == {"enabled": True, "resourceId": gw["id"]}
        # Heartbeats keep coming (each second here; lastConnectivityTime is written at most every few minutes, so
        # they are counted where the server counts them). The only cluster of this server beating now is this one.
        beats = _heartbeats(plane)
        deadline = time.monotonic() + 30
        while _heartbeats(plane) < beats + 2:
            assert time.monotonic() < deadline, "heartbeats stopped coming through the chain"
            time.sleep(0.5)

        # Cluster connect: kubectl here, the agents' tunnel (held through the chain) there.
        port, file = free_port(), tmp_path / "kube" / "config"
        file.parent.mkdir()
        with _proxy(cli, "-g", group, "-n", "walled", "--port", str(port), "-f", str(file), "--token",
                    _sim_token(kubeconfig)) as (proc, _):  # fmt: skip
            nodes = _kubectl("1.33", file, cli, "get", "nodes", "-o", "name")
            assert nodes.returncode == 0, nodes.stderr
            assert len(nodes.stdout.split()) == 2
            proc.send_signal(signal.SIGTERM)
            proc.wait(15)

        # Every connection the agents made through squid is one audit row of the gateway (written as each closes).
        agents.send_signal(signal.SIGTERM)
        agents.wait(30)
        agents = None
        deadline = time.monotonic() + 20
        while True:
            through = [e for e in squid.access() if e["method"] == "CONNECT" and e["url"] == gateway]
            rows = plane.audit(gw["id"])
            if len(rows) == len(through) and through:
                break
            assert time.monotonic() < deadline, (len(rows), len(through))
            time.sleep(0.3)
        allowed = [r for r in rows if r["verdict"] == "allowed"]
        assert allowed and {r["clusterId"].lower() for r in allowed} == {first["id"].lower()}
        assert {r["destination"] for r in allowed} == {f"127.0.0.1:{cp_port}"}
        assert {e["url"] for e in squid.access() if e["method"] == "CONNECT" and e["status"] != "403"} == {gateway}
    finally:
        if agents is not None:
            agents.kill()
            agents.wait(10)
        if squid is not None:
            squid.stop()
        sim.stop()
