"""GitOps end to end over a real git repository, on the simulator's Flux controllers (``halyard sim --flux``) with
the real ``git`` (``tests/support/gitserver.py``).

The issue's scenario: a Flux configuration over a repository the test creates (served over HTTP with basic auth,
the credentials going through the protected settings) → objects appear in the cluster, complianceState Compliant
with the commit id; a new commit → applied; a broken kustomization → Non-Compliant with the reason; ``prune``
removes what left the repository; ``suspend`` stops it; delete removes the objects.
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap

from tests.agents.conftest import Cli
from tests.sim.conftest import start_sim
from tests.support import gitserver

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
API = {"api-version": "2025-04-01"}
USER, PASSWORD = "fleet", "git-" + "p4ss"


@pytest.fixture
def flux_sim(tmp_path: Path) -> Iterator[Any]:
    data_dir = tmp_path / "flux-sim"
    data_dir.mkdir()
    sim = start_sim(data_dir, "--clusters", "1", "--nodes", "1", "--flux", "--flux-requeue-dependency", "0.3")
    try:
        yield sim
    finally:
        sim.stop()


def _until(what: str, check: Callable[[], Any], timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def _configmap(kube: Client, name: str, namespace: str = "apps") -> dict[str, str] | None:
    try:
        return dict(kube.get(ConfigMap, name, namespace=namespace).data or {})
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def _cm(name: str, value: str) -> str:
    return (f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: apps\ndata:\n"
            f"  value: \"{value}\"\n")  # fmt: skip


def test_a_flux_configuration_over_a_real_repository_converges(cli: Cli, flux_sim: Any, tmp_path: Path) -> None:
    kubeconfig = flux_sim.clusters[0].kubeconfig
    kube = Client(config=KubeConfig.from_file(str(kubeconfig)))
    root = tmp_path / "repos"
    repo = gitserver.Repo(root / "fleet")
    ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: apps\n"
    first = repo.commit({"infra/ns.yaml": ns, "apps/one.yaml": _cm("one", "1"), "apps/two.yaml": _cm("two", "2")})
    group = cli.group("gitops-git")
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", "git1", "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "local", "--yes", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cli.wait_status(group, "git1", "Connected")
    path = f"{cli.show(group, 'git1')['id']}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/fleet"
    with gitserver.serve_git(root, (USER, PASSWORD)) as base, cli.server.client() as c:
        body = {"properties": {
            "scope": "cluster", "namespace": "flux-system", "sourceKind": "GitRepository",
            "gitRepository": {"url": f"{base}/fleet", "repositoryRef": {"branch": repo.git("branch", "--show-current")
                                                                               .strip() or "master"},
                              "httpsUser": USER, "syncIntervalInSeconds": 1},
            "kustomizations": {"infra": {"path": "./infra", "syncIntervalInSeconds": 1},
                               "apps": {"path": "./apps", "dependsOn": ["infra"], "prune": True,
                                        "syncIntervalInSeconds": 1}},
            "configurationProtectedSettings": {"httpsKey": base64.b64encode(PASSWORD.encode()).decode()},
        }}  # fmt: skip
        r = c.put(path, params=API, json=body)
        assert r.status_code == 201, r.text

        def props() -> dict[str, Any]:
            p: dict[str, Any] = c.get(path, params=API).json()["properties"]
            return p

        shown = _until("Compliant", lambda: (p := props())["complianceState"] == "Compliant" and p)
        assert first in shown["sourceSyncedCommitId"]
        assert _configmap(kube, "one") == {"value": "1"} and _configmap(kube, "two") == {"value": "2"}

        second = repo.commit({"apps/one.yaml": _cm("one", "changed"), "apps/two.yaml": None})  # prune removes two
        _until("the new commit applied", lambda: second in (props().get("sourceSyncedCommitId") or ""))
        _until("one changed", lambda: (_configmap(kube, "one") or {}).get("value") == "changed")
        _until("two pruned", lambda: _configmap(kube, "two") is None)

        repo.commit({"apps/kustomization.yaml": "resources: [missing.yaml]\n"})
        # Non-Compliant may first name the dependency (infra reconciling the new revision makes apps wait on it);
        # the build failure is the reason once infra's own build has failed.
        broken = _until(
            "Non-Compliant naming the build failure",
            lambda: (
                (p := props())["complianceState"] == "Non-Compliant"
                and "missing.yaml" in (p.get("errorMessage") or "")
                and p
            ),
        )
        assert broken["complianceState"] == "Non-Compliant"
        repo.commit({"apps/kustomization.yaml": None})
        _until("Compliant again", lambda: props()["complianceState"] == "Compliant")

        r = c.patch(path, params=API, json={"properties": {"suspend": True}})
        assert r.status_code in (200, 202), r.text
        _until("Suspended", lambda: props()["complianceState"] == "Suspended")
        repo.commit({"apps/one.yaml": _cm("one", "while-suspended")})
        time.sleep(3)  # several sync intervals: a suspended configuration applies nothing
        assert (_configmap(kube, "one") or {}).get("value") == "changed"

        r = c.delete(path, params=API)
        assert r.status_code == 202, r.text
        _until("deleted", lambda: c.get(path, params=API).status_code == 404)
