"""``connectedk8s troubleshoot`` from where the agents run (issue 13): the view resource-sync's process records in
the cluster (``halyard-system/halyard-diagnostics``), read with the cluster's kubeconfig."""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import json
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace

from halyard.agent import handoff
from halyard.agent.diagnostics import DiagnosticsRecorder, look, system_resolve
from halyard.agent.endpoints import LiveEndpoints
from halyard.api.agents import EndpointMap
from halyard.api.diagnostics import Diagnostics
from halyard.cli.localagents import state_dir_for, stop_detached
from halyard.core.clock import SystemClock
from halyard.kube.client import connect as connect_kube
from tests.agents.conftest import Cli
from tests.agents.test_onboarding import connect, resource_id
from tests.api import agentcreds
from tests.api.helpers import CC_API
from tests.support.connectproxy import ConnectProxy
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e
HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}


def _recorded(kubeconfig: Path, timeout: float = 30) -> Diagnostics:
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    deadline = time.monotonic() + timeout
    try:
        while True:
            try:
                data = client.get(ConfigMap, "halyard-diagnostics", namespace="halyard-system").data or {}
                return Diagnostics.model_validate_json(data["diagnostics"])
            except ApiError as exc:
                assert exc.status.code == 404 and time.monotonic() < deadline, "the agents recorded nothing"
                time.sleep(0.2)
    finally:
        client.close()


def _troubleshoot(cli: Cli, group: str, name: str, kubeconfig: Path) -> tuple[int, dict[str, dict[str, Any]]]:
    proc = cli.run("connectedk8s", "troubleshoot", "-g", group, "-n", name, "--kube-config", str(kubeconfig),
                   "-o", "json")  # fmt: skip
    assert proc.stdout, proc.stderr
    print(
        cli.run(
            "connectedk8s", "troubleshoot", "-g", group, "-n", name, "--kube-config", str(kubeconfig), "-o", "table"
        ).stdout
    )
    return proc.returncode, {c["check"]: c for c in json.loads(proc.stdout)}


def test_troubleshoot_shows_what_the_local_agents_recorded(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-troubleshoot")
    assert connect(cli, group, "seen", kubeconfig).returncode == 0
    rid = resource_id(cli, group, "seen")
    try:
        record = _recorded(kubeconfig)
        assert record.mode == "local" and record.resourceId.lower() == rid.lower(), record
        code, checks = _troubleshoot(cli, group, "seen", kubeconfig)
        assert code == 0, checks
        assert "local process on" in checks["agent pods"]["detail"]
        assert checks["agents' view"]["ok"] and checks["heartbeat"]["ok"], checks
        assert checks["agent state"]["detail"].startswith("Succeeded"), checks["agent state"]
        seen = checks["resolve 127.0.0.1"]  # the control plane's (loopback) address, as the agents resolved it
        assert seen["ok"] and seen["detail"].startswith("from the agents (local on "), seen
        tls = checks["TLS 127.0.0.1"]
        assert tls["ok"] and "certificate valid, expires in" in tls["detail"], tls
    finally:
        stop_detached(cli.agents_dir / state_dir_for(rid).name)


@dataclass
class _Beats:
    last_beat: dt.datetime | None
    beat_error: str | None = None
    beat_error_at: dt.datetime | None = None


async def _healthy() -> tuple[str | None, list[Any]]:
    return "Succeeded", []


def test_troubleshoot_reports_a_name_the_agents_resolve_elsewhere_from_their_view(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    """The agents' DNS (here: a resolver answering 127.0.0.9 for the scope's names, as a cluster DNS server with a
    stale record would) is not this machine's: troubleshoot shows the name as the agents resolved it, the endpoint's
    address it expected, and the fix, and checks nothing from this machine."""
    server = cli.server
    group = cli.group("agents-troubleshoot")
    base = f"/subscriptions/{server.admin['subscription']}/resourceGroups/{group}/providers"
    scope = f"{base}/Microsoft.HybridCompute/privateLinkScopes/ts-scope"
    vnet = f"{base}/Microsoft.Network/virtualNetworks/ts-vnet"
    endpoint = f"{base}/Microsoft.Network/privateEndpoints/ts-pe"
    connection = {"privateLinkServiceId": scope, "groupIds": ["hybridcompute"]}
    with server.client() as client:
        _put(client, scope, HC, {"location": "eastus", "properties": {"publicNetworkAccess": "Enabled"}})
        _put(client, vnet, NET, {"location": "eastus", "properties": {
            "addressSpace": {"addressPrefixes": ["10.7.0.0/16"]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": "10.7.0.0/24"}}]}})  # fmt: skip
        _put(client, endpoint, NET, {"location": "eastus", "properties": {
            "subnet": {"id": f"{vnet}/subnets/default"},
            "privateLinkServiceConnections": [{"name": "c", "properties": connection}]}})  # fmt: skip
        agent = agentcreds.connect(server, group, "misresolved")
        key = client.get(agent.path, params=CC_API).json()["properties"]["agentPublicKeyCertificate"]
        _put(client, agent.path, CC_API, {"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {
            "agentPublicKeyCertificate": key, "privateLinkState": "Enabled", "privateLinkScopeResourceId": scope}})  # fmt: skip
        uuid = client.get(scope, params=HC).json()["properties"]["privateLinkScopeId"]
        address = client.get(endpoint, params=NET).json()["properties"]["customDnsConfigs"][0]["ipAddresses"][0]
    kubeconfig = fresh_cluster()
    _onboarded_as(kubeconfig, agent.path)  # what connect leaves in the cluster
    zone = "privatelink.halyard.local"
    private = EndpointMap(
        management=f"https://{uuid}.management.{zone}", login=f"https://{uuid}.management.{zone}",
        his=f"https://{uuid}.his.{zone}/his", dp=f"https://{uuid}.dp.{zone}/dp",
        relay=f"https://{uuid}.relay.{zone}/relay", agentAudience="agents", tenant=server.admin["tenant"],
    )  # fmt: skip

    async def stale_dns(host: str, port: int) -> list[str]:
        return ["127.0.0.9"] if host.endswith(zone) else [host]

    async def record() -> None:
        kube = connect_kube(kubeconfig)
        try:
            recorder = DiagnosticsRecorder(
                _Beats(dt.datetime.now(dt.UTC)), _healthy, LiveEndpoints(private), Path(server.ca).read_text(),
                functools.partial(handoff.publish_diagnostics, kube), SystemClock(), resource_id=agent.path,
                mode="local", resolve=stale_dns,
            )  # fmt: skip
            await recorder.reconcile()
            assert recorder.last is not None
        finally:
            await kube.close()

    asyncio.run(record())
    code, checks = _troubleshoot(cli, group, "misresolved", kubeconfig)
    assert code == 1
    dp = checks[f"resolve {uuid}.dp.{zone}"]
    assert not dp["ok"] and dp["detail"].startswith("from the agents (local on "), dp
    assert dp["detail"].endswith(f": 127.0.0.9 (expected {address})") and "dns-config" in dp["fix"], dp
    tcp = checks[f"TCP {uuid}.dp.{zone}:443"]  # nothing answers there: said from the agents too
    assert not tcp["ok"] and "127.0.0.9" in tcp["detail"] and "halyard endpoint run" in tcp["fix"], tcp
    assert checks["agents' endpoint map"]["ok"] and checks["agents' view"]["ok"], checks
    assert not [c for c in checks.values() if c["detail"].startswith("from this machine")], checks


def _put(client: Any, path: str, api: dict[str, str], body: dict[str, Any]) -> None:
    r = client.put(path, params=api, json=body)
    assert r.status_code in (200, 201), r.text
    operation = r.headers.get("Azure-AsyncOperation")
    for _ in range(400):
        if operation is None or client.get(operation).json()["status"] != "InProgress":
            break
        time.sleep(0.05)
    assert operation is None or client.get(operation).json()["status"] == "Succeeded", client.get(operation).text


def _onboarded_as(kubeconfig: Path, rid: str) -> None:
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        client.create(Namespace(metadata=ObjectMeta(name="halyard-system")))
        client.create(ConfigMap(metadata=ObjectMeta(name="halyard-clusterconfig", namespace="halyard-system"),
                                data={"RESOURCE_ID": rid}))  # fmt: skip
    finally:
        client.close()


def test_through_a_proxy_the_agents_leave_the_name_to_it_and_see_tls_or_its_refusal(cli: Cli) -> None:
    """arc-proxy's way: CONNECT through the proxy, then TLS end to end with the name as SNI; a proxy that cannot
    reach the name is said to be where the connection stops."""
    server = cli.server
    port = int(server.url.rsplit(":", 1)[1])
    closed = free_port()
    proxy = ConnectProxy(lambda host, wanted: ("127.0.0.1", closed if wanted == 1 else wanted))
    tls = ssl.create_default_context(cafile=server.ca)

    async def scenario() -> None:
        through = await look("127.0.0.1", port, ["dp"], tls, resolve=system_resolve, via=proxy.url)
        assert through.via == proxy.url and through.addresses == [] and through.tcp and through.tls, through
        assert through.certificateNotAfter is not None and through.certificateNotAfter > dt.datetime.now(dt.UTC)
        stopped = await look("127.0.0.1", 1, ["his"], tls, resolve=system_resolve, via=proxy.url)
        assert stopped.tcp is False and "the proxy refused CONNECT 127.0.0.1:1" in (stopped.tcpError or ""), stopped

    with proxy.running():
        asyncio.run(scenario())
