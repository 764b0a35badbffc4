"""End to end, all as separate processes: server + simulator + ``connectedk8s connect --agent-mode local``."""

from __future__ import annotations

import asyncio
import inspect
import ipaddress
import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Namespace

import halyard
from halyard.agent.clusterconfig import ClusterConfig, load_cluster_config
from halyard.agent.controlplane import ControlPlaneError, http_client
from halyard.agent.identity import IdentityOperator, Issued
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import EndpointMap
from halyard.cli.agentplacement import disconnect_cluster
from halyard.cli.localagents import running_pid, state_dir_for
from halyard.core.clock import SystemClock
from halyard.kube.client import connect as kube_connect
from tests.agents.conftest import CERT_LIFETIME, HEARTBEAT, OFFLINE_THRESHOLD, Cli, logged_in_cli, stop_agents
from tests.agents.identity import heartbeat, read_identity, token_response
from tests.agents.sockets import listening_addresses
from tests.support.processes import ServerProcess, free_port
from tests.support.relay import Relay

pytestmark = pytest.mark.e2e


def connect(cli: Cli, group: str, name: str, kubeconfig: Path, *extra: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return cli.run(
        "connectedk8s", "connect", "-g", group, "-n", name, "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "local", "--yes", "-o", "json", *extra, env=env,
    )  # fmt: skip


def resource_id(cli: Cli, group: str, name: str) -> str:
    sub = cli.server.admin["subscription"]
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters/{name}"


def namespace_exists(kubeconfig: Path) -> bool:
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        client.get(Namespace, "halyard-system")
        return True
    except ApiError as exc:
        assert exc.status.code == 404
        return False
    finally:
        client.close()


def test_connect_reaches_connected_with_metadata_then_offline_and_back(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-main")
    proc = connect(cli, group, "main", kubeconfig)
    assert proc.returncode == 0, proc.stderr
    shown = json.loads(proc.stdout)  # connect returns once the resource reports Connected (bench/onboard.py: time)
    assert shown["connectivityStatus"] == "Connected"
    assert shown["kubernetesVersion"] == "1.31.2"
    assert shown["totalNodeCount"] == 3
    assert shown["totalCoreCount"] == 12  # 3 simulated nodes of 4 CPUs
    assert shown["agentVersion"] == halyard.__version__
    assert shown["distribution"] == "generic" and shown["infrastructure"] == "generic"
    assert shown["arcAgentProfile"]["agentState"] == "Succeeded"
    assert shown["lastConnectivityTime"] and shown["managedIdentityCertificateExpirationTime"]

    state_dir = state_dir_for(resource_id(cli, group, "main")).name
    state = cli.agents_dir / state_dir
    pid = running_pid(state)
    assert pid is not None

    # No agent listens on a non-loopback address; the metrics endpoint is on loopback.
    addresses = listening_addresses(pid)
    assert addresses, "the metrics agent should listen (on loopback)"
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in addresses), addresses
    metrics_port = int((state / "metrics.port").read_text())
    assert ("127.0.0.1", metrics_port) in addresses

    # The certificate renews from half-life (the test server issues 12-second certificates).
    first_expiry = shown["managedIdentityCertificateExpirationTime"]
    deadline = time.monotonic() + CERT_LIFETIME + 5
    while cli.show(group, "main")["managedIdentityCertificateExpirationTime"] == first_expiry:
        assert time.monotonic() < deadline, "the cluster certificate was not renewed"
        time.sleep(0.5)
    assert cli.show(group, "main")["connectivityStatus"] == "Connected"
    metrics = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
    assert _metric(metrics, "halyard_agent_certificate_renewals_total") >= 1
    assert _metric(metrics, "halyard_agent_heartbeats_sent_total") >= 1

    # The official SDK reads what the agents reported.
    _check_with_sdk(cli, group, "main")

    # Agents killed: Offline once the (test-short) threshold passes; back: Connected again.
    os.kill(pid, signal.SIGKILL)
    killed = time.monotonic()
    offline = cli.wait_status(group, "main", "Offline", timeout=OFFLINE_THRESHOLD + 10)
    assert time.monotonic() - killed >= OFFLINE_THRESHOLD - 1.5  # not before the threshold (one beat of slack)
    assert offline["lastConnectivityTime"] == cli.show(group, "main")["lastConnectivityTime"]
    restart = cli.run("agent", "start", "--state-dir", str(state), "--kubeconfig", str(kubeconfig))
    assert restart.returncode == 0, restart.stderr
    cli.wait_status(
        group, "main", "Connected", timeout=40
    )  # a restart under a loaded machine (two test workers) takes a while


def test_agents_reconnect_after_the_control_plane_restarts(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-restart")
    assert connect(cli, group, "restart", kubeconfig).returncode == 0
    state = cli.agents_dir / state_dir_for(resource_id(cli, group, "restart")).name
    pid = running_pid(state)
    before = cli.show(group, "restart")["lastConnectivityTime"]
    cli.server.stop(signal.SIGKILL)  # a crash; a restart well within the (test-short) certificate lifetime
    time.sleep(2)  # the agents' beats fail meanwhile; they back off (jittered) and keep trying
    cli.server.start()
    deadline = time.monotonic() + 20
    while True:
        shown = cli.show(group, "restart")
        if shown["connectivityStatus"] == "Connected" and shown["lastConnectivityTime"] > before:
            break
        assert time.monotonic() < deadline, f"the agents did not reconnect: {shown['connectivityStatus']}"
        time.sleep(0.5)
    assert running_pid(state) == pid  # the same process reconnected; nothing was duplicated
    listed = cli.ok("connectedk8s", "list", "-g", group)
    assert [c["name"] for c in listed] == ["restart"]


AGENT_REQUEST_TIMEOUT = inspect.signature(http_client).parameters["timeout"].default


def test_agents_ride_out_a_silent_network_loss_and_reconnect(tmp_path: Path, fresh_cluster: Callable[[], Path]) -> None:
    """The link to the control plane goes dark (no reset: requests just hang), then comes back. The agents' own
    request timeout frees them from the hung connections; they back off and come back as the same process."""
    relay_port = free_port()
    server = ServerProcess(
        tmp_path / "data",
        free_port(),
        # The agents learn their endpoints from the server: make them the relay's, so their traffic crosses it.
        extra_args=["--offline-threshold", str(OFFLINE_THRESHOLD), "--public-url", f"https://127.0.0.1:{relay_port}"],
        env={"HALYARD_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT)},
    )
    with Relay(upstream=server.port, port=relay_port) as relay:
        server.start()
        # Onboarding goes through the relay like everything the agents do; watching goes straight to the server.
        cli = logged_in_cli(server, tmp_path / "home", url=f"https://127.0.0.1:{relay_port}")
        watch = logged_in_cli(server, tmp_path / "watch")
        try:
            group = cli.group("agents-dark")
            proc = connect(cli, group, "dark", fresh_cluster())
            assert proc.returncode == 0, proc.stderr
            state = cli.agents_dir / state_dir_for(resource_id(cli, group, "dark")).name
            pid = running_pid(state)
            metrics_url = f"http://127.0.0.1:{int((state / 'metrics.port').read_text())}/metrics"
            failed_before = _metric(httpx.get(metrics_url).text, "halyard_agent_heartbeats_failed_total")

            relay.blackhole()
            dark_at = time.monotonic()
            watch.wait_status(group, "dark", "Offline", timeout=OFFLINE_THRESHOLD + 10)
            # Dark beyond the agents' 15 s request timeout: a hung beat must fail, not wedge the heartbeat loop.
            time.sleep(max(0.0, AGENT_REQUEST_TIMEOUT + 2 - (time.monotonic() - dark_at)))
            assert _metric(httpx.get(metrics_url).text, "halyard_agent_heartbeats_failed_total") > failed_before
            relay.restore()  # the path is back; the middlebox forgot the old flows, so they are reset
            back = watch.wait_status(group, "dark", "Connected", timeout=20)
            assert running_pid(state) == pid  # the same agents, no restart and nothing duplicated
            assert [c["name"] for c in watch.ok("connectedk8s", "list", "-g", group)] == ["dark"]
            assert back["agentVersion"] == halyard.__version__
        finally:
            stop_agents(cli)
            server.stop()


def test_rerun_is_idempotent_and_mixups_are_refused(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    first_cluster, second_cluster = fresh_cluster(), fresh_cluster()
    group = cli.group("agents-rerun")
    # No --agent-mode: nothing runs in a simulated cluster, so its agents run here (the default elsewhere: in-cluster).
    first = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "rerun", "-l", "eastus", "--kube-config", str(first_cluster),
        "--yes", "-o", "none",
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    assert "agents run on this machine (--agent-mode local)" in first.stderr
    key = cli.show(group, "rerun")["agentPublicKeyCertificate"]
    pid = running_pid(cli.agents_dir / state_dir_for(resource_id(cli, group, "rerun")).name)

    again = connect(cli, group, "rerun", first_cluster, "--tags", "team=a")
    assert again.returncode == 0, again.stderr
    shown = cli.show(group, "rerun")
    assert shown["agentPublicKeyCertificate"] == key
    assert shown["tags"] == {"team": "a"}
    assert shown["connectivityStatus"] == "Connected"
    assert running_pid(cli.agents_dir / state_dir_for(resource_id(cli, group, "rerun")).name) == pid

    as_other = connect(cli, group, "rerun-other", first_cluster)
    assert as_other.returncode != 0
    assert "(ClusterAlreadyOnboarded)" in as_other.stderr and as_other.stderr.count("\n") == 1
    assert cli.run("connectedk8s", "show", "-g", group, "-n", "rerun-other").returncode != 0

    other_cluster = connect(cli, group, "rerun", second_cluster)
    assert other_cluster.returncode != 0
    assert "(ResourceBoundToAnotherCluster)" in other_cluster.stderr
    assert not namespace_exists(second_cluster)


def test_delete_revokes_the_identity_and_cleanup_removes_agents(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-delete")
    assert connect(cli, group, "gone", kubeconfig).returncode == 0
    rid = resource_id(cli, group, "gone")
    issued = read_identity(kubeconfig)
    token = token_response(cli.server, issued).json()["access_token"]
    assert heartbeat(cli.server, token).status_code == 200
    # The cluster's key gets the agent services only, never a management token.
    management = token_response(cli.server, issued, audience=cli.server.admin["audience"])
    assert management.status_code == 400 and management.json()["error"] == "unauthorized_client"

    state = cli.agents_dir / state_dir_for(rid).name
    assert running_pid(state) is not None
    # No --kube-config: the delete finds the cluster through the kubeconfig its local agents were started with.
    deleted = cli.run("connectedk8s", "delete", "-g", group, "-n", "gone", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert "Removed: local agents, namespace halyard-system." in deleted.stderr
    assert running_pid(state) is None
    assert not namespace_exists(kubeconfig)

    # The token minted before the delete, the certificate's key and the certificate itself are all refused.
    refused = heartbeat(cli.server, token)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "ClusterIdentityRevoked"
    login = token_response(cli.server, issued)
    # The principal is gone: answered as any bad credential is (no oracle of which identities exist).
    assert (login.status_code, login.json()["error"]) == (401, "invalid_client"), login.text
    with pytest.raises(ControlPlaneError) as renewal:
        asyncio.run(_renew(cli, rid, issued))
    assert renewal.value.status == 401

    # Deleting again (the resource is gone) still answers success and finds nothing left to remove.
    again = cli.run("connectedk8s", "delete", "-g", group, "-n", "gone", "--yes", "--kube-config", str(kubeconfig))
    assert again.returncode == 0, again.stderr
    assert _in_agent_dir(cli, lambda: disconnect_cluster(rid, kubeconfig, None)) == []


def test_certificate_lapse_without_renewal_is_expired(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-expiry")
    # Renewal "blocked": the agents would renew only at 5x the lifetime, long after the certificate lapsed.
    proc = connect(cli, group, "lapse", kubeconfig, env={"HALYARD_AGENT_RENEW_FRACTION": "5"})
    assert proc.returncode == 0, proc.stderr
    expired = cli.wait_status(group, "lapse", "Expired", timeout=CERT_LIFETIME + 10)
    assert expired["lastConnectivityTime"], "it was connected before it expired"
    issued = read_identity(kubeconfig)
    # The onboarding key cannot revive an expired identity: delete and onboard again.
    with pytest.raises(ControlPlaneError) as again:
        asyncio.run(_renew(cli, resource_id(cli, group, "lapse"), None, kubeconfig=kubeconfig))
    assert again.value.code == "ClusterCertificateExpired"
    login = token_response(cli.server, issued)
    assert (login.status_code, login.json()["error"]) == (401, "invalid_client"), login.text  # its key has lapsed


async def _renew(cli: Cli, rid: str, current: Issued | None, *, kubeconfig: Path | None = None) -> Issued:
    """Ask his for a certificate as identity-operator does: with ``current`` (renewal) or the cluster's onboarding key
    read from ``kubeconfig``'s cluster."""
    onboarding_key = None
    if kubeconfig is not None:
        kube = kube_connect(kubeconfig)
        try:
            onboarding_key = (await load_cluster_config(kube)).onboarding_key
        finally:
            await kube.close()
    endpoints = EndpointMap.model_validate(
        httpx.get(f"{cli.server.url}/his/v1/endpoints", verify=cli.server.ca).json() | {"tenant": "t"}
    )
    config = ClusterConfig(rid, endpoints, Path(cli.server.ca).read_text(), onboarding_key)
    async with httpx.AsyncClient(verify=cli.server.ca) as http:
        # request_certificate never touches the cluster, so no Kubernetes client is needed.
        operator = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
        return await operator.request_certificate(current)


def _in_agent_dir(cli: Cli, action: Callable[[], list[str]]) -> list[str]:
    """Run a CLI library call with the session's agent directory (as the CLI process would see it)."""
    import halyard.cli.localagents as agent_module

    saved = agent_module.STATE_ROOT
    agent_module.STATE_ROOT = cli.agents_dir
    try:
        return action()
    finally:
        agent_module.STATE_ROOT = saved


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} missing from the metrics")


def _check_with_sdk(cli: Cli, group: str, name: str) -> None:
    from azure.identity import ClientSecretCredential
    from azure.mgmt.hybridkubernetes import ConnectedKubernetesClient

    admin = cli.server.admin
    credential = ClientSecretCredential(
        admin["tenant"],
        admin["clientId"],
        admin["clientSecret"],
        authority=admin["server"],
        disable_instance_discovery=True,
        connection_verify=admin["caCert"],
    )
    client = ConnectedKubernetesClient(
        credential,
        admin["subscription"],
        base_url=admin["server"],
        credential_scopes=[admin["audience"] + ".default"],
        connection_verify=admin["caCert"],
    )
    cluster = client.connected_cluster.get(group, name)
    assert cluster.connectivity_status == "Connected"
    assert cluster.kubernetes_version == "1.31.2"
    assert cluster.total_node_count == 3
    assert cluster.agent_version == halyard.__version__
