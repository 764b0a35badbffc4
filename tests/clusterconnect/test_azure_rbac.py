"""azure-rbac end to end through the tunnel: ``enable-features --features azure-rbac`` starts guard beside the agents,
the cluster's owner points the API server's authorization webhook at it (as a kube-apiserver flag), and the
control plane's role assignments then decide what a principal with no Kubernetes binding may do, at cluster or
namespace scope."""

from __future__ import annotations

import ipaddress
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from halyard.sim.webhookauthz import webhook_path
from tests.agents.conftest import Cli
from tests.agents.sockets import listening_addresses
from tests.clusterconnect.conftest import Connected, connect
from tests.clusterconnect.test_kubectl import principal, token_of
from tests.sim.conftest import Sim

pytestmark = pytest.mark.e2e
ARC_USER = "Azure Arc Enabled Kubernetes Cluster User Role"


@pytest.fixture(scope="module")
def guarded(cc_cli: Cli, cc_sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connected]:
    cluster = connect(cc_cli, cc_sim, 2, "cc-rbac", "guarded", tmp_path_factory.mktemp("cc-rbac"))
    enabled = cc_cli.run("connectedk8s", "enable-features", "-g", "cc-rbac", "-n", "guarded", "--features",
                         "azure-rbac", "--kube-config", str(cluster.admin_kubeconfig))  # fmt: skip
    assert enabled.returncode == 0, enabled.stderr
    (state_dir,) = [d for d in cc_cli.state_dirs() if d.name.startswith("guarded-")]
    guard_config = state_dir / "guard" / "guard.kubeconfig"
    deadline = time.monotonic() + 30
    while not guard_config.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    # What a cluster admin does on a real API server: --authorization-webhook-config-file=<guard's kubeconfig>.
    sim_cluster = cluster.admin_kubeconfig.stem
    target = webhook_path(cc_sim.data_dir, sim_cluster)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(guard_config, target)
    yield cluster
    target.unlink(missing_ok=True)


def test_role_assignments_decide_at_cluster_and_namespace_scope(guarded: Connected, tmp_path: Path) -> None:
    for ns in ("team-a", "team-b"):
        assert guarded.admin("create", "namespace", ns).returncode == 0
        assert guarded.admin("-n", ns, "create", "configmap", "settings").returncode == 0
    viewer = principal(guarded.cli, "cc-azviewer", ARC_USER, guarded.resource_id)
    guarded.cli.ok("role", "assignment", "create", "--assignee", viewer["appId"], "--role",
                   "Azure Arc Kubernetes Viewer", "--scope", f"{guarded.resource_id}/namespaces/team-a")  # fmt: skip
    kubeconfig = guarded.kubeconfig(tmp_path / "viewer", token=token_of(guarded.server, viewer))
    listed = guarded.kubectl(kubeconfig, "-n", "team-a", "get", "configmaps", "-o", "name")
    assert listed.returncode == 0 and "configmap/settings" in listed.stdout.split(), listed.stderr
    other = guarded.kubectl(kubeconfig, "-n", "team-b", "get", "configmaps")
    assert other.returncode == 1 and "forbidden" in other.stderr, other.stderr
    deleted = guarded.kubectl(kubeconfig, "-n", "team-a", "delete", "configmap", "settings")
    assert deleted.returncode == 1 and "forbidden" in deleted.stderr, deleted.stderr

    writer = principal(guarded.cli, "cc-azwriter", ARC_USER, guarded.resource_id)
    guarded.cli.ok("role", "assignment", "create", "--assignee", writer["appId"], "--role",
                   "Azure Arc Kubernetes Writer", "--scope", guarded.resource_id)  # fmt: skip
    kubeconfig = guarded.kubeconfig(tmp_path / "writer", token=token_of(guarded.server, writer))
    for ns in ("team-a", "team-b"):
        created = guarded.kubectl(kubeconfig, "-n", ns, "create", "configmap", "written")
        assert created.returncode == 0, created.stderr


def test_with_every_agent_on_they_listen_on_loopback_only(guarded: Connected) -> None:
    """clusterconnect-agent dials out and listens on nothing; guard and the metrics agent listen on loopback."""
    (state_dir,) = [d for d in guarded.cli.state_dirs() if d.name.startswith("guarded-")]
    pid = int((state_dir / "agent.pid").read_text())
    addresses = listening_addresses(pid)
    assert all(ipaddress.ip_address(host).is_loopback for host, _ in addresses), addresses
    guard_port = urlsplit(yaml.safe_load((state_dir / "guard" / "guard.kubeconfig").read_text())["clusters"][0]
                          ["cluster"]["server"]).port  # fmt: skip
    metrics_port = int((state_dir / "metrics.port").read_text())
    assert {port for _, port in addresses} == {guard_port, metrics_port}, addresses
