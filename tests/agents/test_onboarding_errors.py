"""Bad input to ``connectedk8s connect``: one clear error line, a non-zero exit, and nothing half-created."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ServiceAccount

from tests.agents.conftest import Cli
from tests.agents.test_onboarding import connect, namespace_exists
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def cluster(fresh_cluster_module: Path) -> Path:
    return fresh_cluster_module


@pytest.fixture(scope="module")
def fresh_cluster_module(agent_sim) -> Iterator[Path]:  # type: ignore[no-untyped-def]
    from tests.agents.conftest import _take

    yield _take(agent_sim)


def _variant(kubeconfig: Path, tmp_path: Path, **user_or_server: str) -> Path:
    """A copy of ``kubeconfig`` with another server URL or another user's bearer token."""
    doc = yaml.safe_load(kubeconfig.read_text())
    if "server" in user_or_server:
        doc["clusters"][0]["cluster"]["server"] = user_or_server["server"]
    if "token" in user_or_server:
        doc["users"][0]["user"] = {"token": user_or_server["token"]}
    path = tmp_path / "variant.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _limited_token(kubeconfig: Path) -> str:
    """A service account with no role: it may only ask what it may do."""
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        client.apply(ServiceAccount(metadata=ObjectMeta(name="limited", namespace="default")), field_manager="test")
        answer = client.create(
            ServiceAccount.Token(metadata=ObjectMeta(), spec=TokenRequestSpec(audiences=[])),
            "limited",
            namespace="default",
        )
        return str(answer.status.token)
    finally:
        client.close()


def _assert_refused(proc, code: str) -> None:  # type: ignore[no-untyped-def]
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ERROR: ({code}) "), proc.stderr


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("missing-kubeconfig", "KubeconfigError"),
        ("unknown-context", "KubeconfigError"),
        ("unreachable", "KubernetesConnectivityError"),
        ("no-permissions", "InsufficientPermissions"),
        ("bad-location", "InvalidLocation"),
        ("no-group", "ResourceGroupNotFound"),
        ("bad-name", "InvalidResourceName"),
    ],
)
def test_bad_input_is_one_clear_error_and_leaves_nothing(
    cli: Cli, cluster: Path, tmp_path: Path, case: str, code: str
) -> None:
    group = cli.group("agents-errors")
    name, extra, kubeconfig = "err-" + case, [], cluster
    if case == "missing-kubeconfig":
        kubeconfig = tmp_path / "nope.yaml"
    elif case == "unknown-context":
        extra = ["--kube-context", "no-such-context"]
    elif case == "unreachable":
        kubeconfig = _variant(cluster, tmp_path, server=f"https://127.0.0.1:{free_port()}")
    elif case == "no-permissions":
        kubeconfig = _variant(cluster, tmp_path, token=_limited_token(cluster))
    elif case == "bad-location":
        extra = ["-l", "atlantis"]
    elif case == "no-group":
        group = "agents-no-such-group"
    elif case == "bad-name":
        name = "-bad-name-"
    proc = connect(cli, group, name, kubeconfig, *extra)
    _assert_refused(proc, code)
    if case != "no-group":
        assert cli.ok("connectedk8s", "list", "-g", group) == []
    assert not namespace_exists(cluster)
    # No local agents' state of this cluster at all (pid, logs, key), not only no pid file.
    assert [d.name for d in cli.state_dirs() if name in d.name] == []


def test_in_cluster_without_helm_is_refused_before_anything_is_created(cli: Cli, cluster: Path) -> None:
    group = cli.group("agents-errors")
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", "nohelm", "-l", "eastus", "--kube-config",
                   str(cluster), "--agent-mode", "in-cluster", env={"HALYARD_HELM": "/nonexistent/helm"})  # fmt: skip
    _assert_refused(proc, "HelmNotFound")
    assert cli.ok("connectedk8s", "list", "-g", group) == []
    assert not namespace_exists(cluster)
