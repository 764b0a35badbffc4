"""``connectedk8s enable-features/disable-features`` end to end: the control plane, a simulated cluster and its
agents (local processes, and the chart installed with the real helm). FEATURES lands in the cluster's ConfigMap,
the agents restart to read it (the local process is a new one, and still reports; the chart's optional Deployments
come and go), and asking for what is already so changes nothing and says so."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap
from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding

from halyard.cli.localagents import running_pid, state_dir_for
from tests.agents.conftest import Cli
from tests.agents.test_onboarding import connect, resource_id
from tests.sim.conftest import helm_path

pytestmark = pytest.mark.e2e
NS = "halyard-system"


def _config(kubeconfig: Path) -> dict[str, str]:
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        return dict(client.get(ConfigMap, "halyard-clusterconfig", namespace=NS).data or {})
    finally:
        client.close()


def _features(runner: Cli, *args: str, env: dict[str, str] | None = None) -> tuple[dict[str, Any], str]:
    proc = runner.run("connectedk8s", *args, "-o", "json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout), proc.stderr


def test_features_with_local_agents(agents_cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    cli = agents_cli
    kubeconfig = fresh_cluster()
    group = cli.group("features-local")
    assert connect(cli, group, "feat", kubeconfig).returncode == 0
    state_dir = cli.agents_dir / state_dir_for(resource_id(cli, group, "feat")).name
    first_pid = running_pid(state_dir)
    assert first_pid is not None and "FEATURES" not in _config(kubeconfig)
    target = ("-g", group, "-n", "feat")

    # cluster-connect is on by default: nothing to do, nothing restarted.
    shown, said = _features(cli, "enable-features", *target, "--features", "cluster-connect")
    assert shown == {"name": "feat", "resourceGroup": group,
                     "features": {"cluster-connect": "Enabled", "azure-rbac": "Disabled",
                                  "extensions": "Disabled"}}  # fmt: skip
    assert said.strip() == "Already enabled: cluster-connect."
    assert "FEATURES" not in _config(kubeconfig) and running_pid(state_dir) == first_pid

    shown, said = _features(
        cli, "enable-features", *target, "--features", "cluster-connect", "azure-rbac", "--skip-azure-rbac-list", "a,b"
    )
    assert shown["features"] == {"cluster-connect": "Enabled", "azure-rbac": "Enabled", "extensions": "Disabled"}
    assert "Already enabled: cluster-connect." in said and "Enabled: azure-rbac. The agents restarted" in said
    config = _config(kubeconfig)
    assert config["FEATURES"] == "cluster-connect,azure-rbac" and config["AZURE_RBAC_SKIP_LIST"] == "a,b"
    second_pid = running_pid(state_dir)
    assert second_pid not in (None, first_pid)
    before = cli.show(group, "feat")["lastConnectivityTime"]
    cli.wait_status(group, "feat", "Connected")
    assert cli.show(group, "feat")["lastConnectivityTime"] >= before

    shown, _ = _features(cli, "disable-features", *target, "--features", "cluster-connect,azure-rbac", "--yes")
    assert shown["features"] == {"cluster-connect": "Disabled", "azure-rbac": "Disabled", "extensions": "Disabled"}
    assert _config(kubeconfig)["FEATURES"] == "" and running_pid(state_dir) not in (None, second_pid)
    _, said = _features(cli, "disable-features", *target, "--features", "azure-rbac")
    assert said.strip() == "Already disabled: azure-rbac."

    # A re-run of connect keeps what the features commands chose.
    assert connect(cli, group, "feat", kubeconfig).returncode == 0
    assert _config(kubeconfig)["FEATURES"] == ""

    bad = cli.run("connectedk8s", "enable-features", *target, "--features", "custom-locations")
    assert bad.returncode == 2 and bad.stderr.startswith(
        "ERROR: (UsageError) argument --features: unsupported feature(s) custom-locations; Halyard's are: "
        "cluster-connect, azure-rbac, extensions."
    ), bad.stderr
    elsewhere = cli.run("connectedk8s", "enable-features", "-g", group, "-n", "other", "--features", "azure-rbac",
                        "--kube-config", str(kubeconfig))  # fmt: skip
    assert elsewhere.returncode == 1 and elsewhere.stderr.startswith("ERROR: (AgentsNotFound)"), elsewhere.stderr


def test_features_with_the_chart_turn_its_deployments_on_and_off(
    agents_cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    cli = agents_cli
    kubeconfig = fresh_cluster()
    group = cli.group("features-chart")
    env = {"HALYARD_HELM": str(helm_path())}
    connected = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "chartfeat", "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "in-cluster", "--no-wait", "--yes", "-o", "none", env=env,
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    target = ("-g", group, "-n", "chartfeat", "--kube-config", str(kubeconfig))

    def deployments() -> dict[str, str]:
        client = Client(KubeConfig.from_file(str(kubeconfig)))
        try:
            return {
                d.metadata.name: (d.spec.template.metadata.annotations or {}).get("halyard.io/features")  # type: ignore[union-attr]
                for d in client.list(Deployment, namespace=NS)
            }
        finally:
            client.close()

    assert set(deployments()) == {"identity-operator", "metadata-operator", "resource-sync", "controller-manager",
                                  "clusterconnect-agent"}  # fmt: skip
    _features(cli, "enable-features", *target, "--features", "azure-rbac", env=env)
    rolled = deployments()
    assert "guard" in rolled and "clusterconnect-agent" in rolled
    assert set(rolled.values()) == {"cluster-connect,azure-rbac"}  # every agent's pod template changed: all restart
    _features(cli, "disable-features", *target, "--features", "cluster-connect", env=env)
    rolled = deployments()
    assert "clusterconnect-agent" not in rolled and "guard" in rolled and set(rolled.values()) == {"azure-rbac"}
    assert _config(kubeconfig)["FEATURES"] == "azure-rbac"
    # extensions: extension-manager's Deployment, and its service account alone bound to cluster-admin (decision 014).
    _features(cli, "enable-features", *target, "--features", "extensions", env=env)
    assert deployments()["extension-manager"] == "azure-rbac,extensions"
    assert {"config-agent", "flux-logs-agent"} <= set(deployments())  # GitOps' agents too (decision 016)
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        binding = client.get(ClusterRoleBinding, "halyard-extension-manager")
        assert binding.roleRef.name == "cluster-admin"
        assert [(s.kind, s.name) for s in binding.subjects or []] == [("ServiceAccount", "extension-manager")]
    finally:
        client.close()
    _features(cli, "disable-features", *target, "--features", "extensions", env=env)
    assert not {"extension-manager", "config-agent", "flux-logs-agent"} & set(deployments())
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        with pytest.raises(ApiError):
            client.get(ClusterRoleBinding, "halyard-extension-manager")
    finally:
        client.close()
