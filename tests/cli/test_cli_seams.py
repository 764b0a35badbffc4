"""The CLI's shared libraries, without a server: the resource-id builder, one Kubernetes session per command, agent
placement's up-front obstacles, where helm is found, and progress lines without a terminal."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from halyard.api.agents import EndpointMap
from halyard.cli import connectedclusters, resourceids
from halyard.cli.agentplacement import InClusterAgents
from halyard.cli.argv import GlobalOptions
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.kubesession import KubeSession
from halyard.kube import helm as helm_module
from halyard.kube.facts import ClusterFacts
from halyard.kube.helm import Helm, HelmError

pytestmark = pytest.mark.unit
SUB = "00000000-0000-0000-0000-000000000001"


def test_every_id_shape_comes_from_one_builder() -> None:
    assert resourceids.group_scope(SUB, "g") == f"/subscriptions/{SUB}/resourceGroups/g"
    assert resourceids.provider_id(SUB) == f"/subscriptions/{SUB}/providers"
    assert (
        resourceids.provider_id(SUB, "Microsoft.Kubernetes") == f"/subscriptions/{SUB}/providers/Microsoft.Kubernetes"
    )
    cluster = connectedclusters.cluster_id(SUB, "g", "c")
    assert cluster == f"/subscriptions/{SUB}/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c"
    assert connectedclusters.clusters_collection(SUB, "g") == cluster.rsplit("/", 1)[0]
    assert connectedclusters.clusters_collection(SUB) == (
        f"/subscriptions/{SUB}/providers/Microsoft.Kubernetes/connectedClusters"
    )
    # Extension resources hang off any scope or resource: role assignments today, cluster extensions next.
    assert resourceids.extension_id(cluster, "Microsoft.KubernetesConfiguration", "extensions", "flux") == (
        f"{cluster}/providers/Microsoft.KubernetesConfiguration/extensions/flux"
    )
    assert resourceids.extension_id("/", "Microsoft.Authorization", "roleDefinitions") == (
        "/providers/Microsoft.Authorization/roleDefinitions"
    )
    assert resourceids.resource_group_of(cluster) == "g"


def _kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1', insecure-skip-tls-verify: true}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: k, user: u}}]\n"
    )
    return path


def test_a_kube_session_is_one_loop_and_one_client_for_every_step(tmp_path: Path) -> None:
    async def what(client: object) -> tuple[int, int]:
        return id(asyncio.get_running_loop()), id(client)

    with KubeSession(_kubeconfig(tmp_path), None) as session:
        first, second = session.run(what), session.run(what)
    assert first == second
    # Nothing is read before the first step: a command that never reaches the cluster never needs a kubeconfig.
    with KubeSession(tmp_path / "missing", None) as unused:
        assert unused.kubeconfig == tmp_path / "missing"


def test_an_unusable_kubeconfig_is_one_clear_error(tmp_path: Path) -> None:
    async def nothing(client: object) -> None:
        return None

    with KubeSession(tmp_path / "missing", None) as session, pytest.raises(CliError) as raised:
        session.run(nothing)
    assert raised.value.code == "KubeconfigError" and "does not exist" in raised.value.message


def _facts(*, simulated: bool) -> ClusterFacts:
    return ClusterFacts("1.31.2", 3, 12, 3, "generic", "generic", simulated=simulated)


def _endpoints(host: str) -> EndpointMap:
    base = f"https://{host}:8443"
    return EndpointMap(management=base, login=base, his=base + "/his", dp=base + "/dp", agentAudience="a", tenant="t")


def test_in_cluster_agents_name_what_keeps_them_from_connecting(tmp_path: Path) -> None:
    agents = InClusterAgents(KubeSession(None, None), Helm("helm"), "chart")
    simulated = agents.obstacle(_facts(simulated=True), _endpoints("halyard.example"))
    assert simulated is not None and "Halyard simulator" in simulated
    loopback = agents.obstacle(_facts(simulated=False), _endpoints("127.0.0.1"))
    assert loopback is not None and "https://127.0.0.1:8443/dp" in loopback and "--public-url" in loopback
    assert agents.obstacle(_facts(simulated=False), _endpoints("halyard.example")) is None


def _executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\necho v3.16.0\n")
    path.chmod(0o755)
    return path


def test_helm_is_found_where_the_install_script_puts_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALYARD_HELM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    project_helm = _executable(tmp_path / ".cache" / "bin" / "helm")
    monkeypatch.setattr(helm_module, "PROJECT_HELM", project_helm)
    assert Helm.find(None, None).binary == str(project_helm)
    # On PATH wins over the project's copy (a helm the user installed is the one they expect).
    on_path = _executable(tmp_path / "path-bin" / "helm")
    monkeypatch.setenv("PATH", str(on_path.parent))
    assert Helm.find(None, None).binary == str(on_path)


def test_helm_not_found_points_at_the_install_script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HALYARD_HELM", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))
    monkeypatch.setattr(helm_module, "PROJECT_HELM", tmp_path / "nothing" / "helm")
    with pytest.raises(HelmError) as raised:
        Helm.find(None, None)
    message = str(raised.value)
    assert (
        "scripts/install-helm.sh (make system-deps runs it" in message and str(tmp_path / "nothing" / "helm") in message
    )
    # An explicit HALYARD_HELM is the only one tried: a wrong one is named, not silently replaced.
    monkeypatch.setenv("HALYARD_HELM", str(tmp_path / "nope"))
    with pytest.raises(HelmError, match=r"HALYARD_HELM is .*nope, which does not exist"):
        Helm.find(None, None)


def test_progress_without_a_terminal_is_a_line_every_so_often(capfd: pytest.CaptureFixture[str]) -> None:
    inv = Invocation(GlobalOptions(), progress_every=0.05)
    assert not inv.stderr.is_terminal  # pytest captures stderr: no terminal, as in CI or behind a pipe
    with inv.progress("Waiting for the agents to connect"):
        deadline = time.monotonic() + 10
        while "Waiting for the agents to connect .. " not in capfd.readouterr().err:
            assert time.monotonic() < deadline, "no progress line"
            time.sleep(0.05)
    capfd.readouterr()
    time.sleep(0.15)
    assert capfd.readouterr().err == ""  # the lines stop with the step
    quiet = Invocation(GlobalOptions(only_show_errors=True), progress_every=0.01)
    with quiet.progress("Silent"):
        time.sleep(0.1)
    assert "Silent" not in capfd.readouterr().err


def test_no_command_module_imports_another() -> None:
    """What the import-linter contract keeps: a fresh interpreter importing connectedk8s (show/list/delete/update/
    upgrade) loads no other command module, and connect's module does not load connectedk8s."""
    code = (
        "import sys, halyard.cli.{0}; "
        "print(sorted(m for m in sys.modules if m in {{'halyard.cli.onboarding','halyard.cli.agent',"
        "'halyard.cli.connectedk8s','halyard.cli.login','halyard.cli.up','halyard.controlplane'}} "
        "and m != 'halyard.cli.{0}'))"
    )
    for module in ("connectedk8s", "onboarding"):
        out = subprocess.run(
            [sys.executable, "-c", code.format(module)], capture_output=True, text=True, env=os.environ, check=True
        )
        assert out.stdout.strip() == "[]", (module, out.stdout)
