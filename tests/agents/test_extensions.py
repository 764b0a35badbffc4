"""Extensions end to end (issue 15): a chart published as an extension type is installed by extension-manager (the
local agents, the real helm, the simulator) when the extension is created, its state reaches the resource, a new
version on its release train rolls out by itself, and deleting the extension uninstalls it."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Secret

from tests.agents.conftest import Cli
from tests.configuration.charts import broken_chart_b64, tiny_chart, tiny_chart_b64

pytestmark = pytest.mark.e2e
EXT_API = {"api-version": "2025-03-01"}
TYPES = "/providers/Halyard.Extensions/extensionTypes"
TYPES_API = {"api-version": "2026-01-01"}
SECRET = "pr0tected-" + uuid.uuid4().hex


def _until(what: str, check: Callable[[], Any], timeout: float = 90) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.2)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def _settings(kube: Client, namespace: str) -> dict[str, str] | None:
    try:
        return dict(kube.get(ConfigMap, "hello-settings", namespace=namespace).data or {})
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def _releases(kube: Client, name: str) -> list[str]:
    """helm's release records of a release, in any namespace (Secrets ``sh.helm.release.v1.<name>.vN``)."""
    return [
        s.metadata.name
        for s in kube.list(Secret, namespace="*", labels={"owner": "helm", "name": name})
        if s.metadata is not None and s.metadata.name
    ]


def test_an_extension_is_installed_upgraded_within_its_train_and_removed(
    cli: Cli, fresh_cluster: Callable[[], Path], tmp_path: Path
) -> None:
    server = cli.server
    kubeconfig = fresh_cluster()
    group = cli.group("extensions")
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", "ext1", "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "local", "--yes", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cli.wait_status(group, "ext1", "Connected")
    cluster = cli.show(group, "ext1")["id"]
    path = f"{cluster}/providers/Microsoft.KubernetesConfiguration/extensions/hello"
    type_name = f"contoso.hello-{uuid.uuid4().hex[:6]}"
    kube = Client(config=KubeConfig.from_file(str(kubeconfig)))
    chart_dir = tmp_path / "hello"
    with tarfile.open(fileobj=io.BytesIO(tiny_chart("1.0.0")), mode="r:gz") as tar:
        tar.extractall(tmp_path, filter="data")
    published = cli.ok("extension-type", "publish", "--extension-type", type_name, "--version", "1.0.0",
                       "--chart", str(chart_dir))  # fmt: skip
    assert published["properties"]["releaseTrains"] == ["stable"]
    started = time.monotonic()
    created = cli.ok("k8s-extension", "create", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n", "hello",
                     "--extension-type", type_name, "--release-train", "stable", "--scope", "cluster",
                     "--release-namespace", "hello-ns", "--config", "greeting=hi",
                     "--config-protected", f"password={SECRET}")  # fmt: skip
    took = time.monotonic() - started
    assert created["properties"]["extensionType"] == type_name and SECRET not in json.dumps(created)
    # The create's operation ended only once the cluster had installed it: the release is there already.
    assert created["properties"]["provisioningState"] == "Succeeded"
    assert created["properties"]["installState"] == "Installed" and created["properties"]["currentVersion"] == "1.0.0"
    assert _settings(kube, "hello-ns") == {"chartVersion": "1.0.0", "greeting": "hi"}
    print(f"k8s-extension create to Succeeded with the release installed: {took:.2f} s")
    with server.client() as c:

        def installed(version: str) -> dict[str, Any] | None:
            props: dict[str, Any] = c.get(path, params=EXT_API).json()["properties"]
            return props if props.get("currentVersion") == version and props.get("installState") else None

        props = _until("the extension installed", lambda: installed("1.0.0"))
        assert props["statuses"][0]["code"] == "InstallSucceeded"
        secret = kube.get(Secret, "hello-protected-settings", namespace="hello-ns")
        assert set((secret.data or {}).keys()) == {"password"}

        # A new version on the stable train: rolled out without any change to the extension.
        r = c.put(f"{TYPES}/{type_name}/versions/1.1.0", params=TYPES_API, json={"chart": tiny_chart_b64("1.1.0")})
        assert r.status_code == 200, r.text
        _until("1.1.0 rolled out", lambda: installed("1.1.0"))
        assert (_settings(kube, "hello-ns") or {}).get("chartVersion") == "1.1.0"

        # The protected settings never leave through ARM.
        for r in (c.get(path, params=EXT_API), c.get(path.rsplit("/", 1)[0], params=EXT_API)):
            assert r.status_code == 200 and SECRET not in r.text

        # Settings changed with the CLI: the update returns once the release has them.
        cli.ok("k8s-extension", "update", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n", "hello",
               "--config", "greeting=hey", "--yes")  # fmt: skip
        assert (_settings(kube, "hello-ns") or {}).get("greeting") == "hey"
        listed = cli.ok("k8s-extension", "list", "-g", group, "-c", "ext1", "-t", "connectedClusters")
        assert [e["name"] for e in listed] == ["hello"] and SECRET not in json.dumps(listed)

        # A chart that cannot install: the create fails with helm's reason, the resource Failed.
        broken = f"contoso.broken-{uuid.uuid4().hex[:6]}"
        r = c.put(f"{TYPES}/{broken}/versions/1.0.0", params=TYPES_API, json={"chart": broken_chart_b64()})
        assert r.status_code == 200, r.text
        proc = cli.run("k8s-extension", "create", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n",
                       "broken", "--extension-type", broken, "-o", "json")  # fmt: skip
        assert proc.returncode != 0 and "a greeting is required" in proc.stderr, proc.stderr
        broken_path = path.rsplit("/", 1)[0] + "/broken"
        assert c.get(broken_path, params=EXT_API).json()["properties"]["provisioningState"] == "Failed"

        # Deleting it waits for extension-manager to report it uninstalled (nothing of it left on the cluster).
        cli.ok("k8s-extension", "delete", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n", "broken",
               "--yes")  # fmt: skip
        assert c.get(broken_path, params=EXT_API).status_code == 404
        assert not _releases(kube, "broken"), "the delete ended before the release was uninstalled"

        # The built-in microsoft.flux: its chart, made by the control plane, installs Flux's CRDs and controllers.
        cli.ok("k8s-extension", "create", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n", "flux",
               "--extension-type", "microsoft.flux", "--config", "registry=mirror.example:5000")  # fmt: skip
        kube.get(CustomResourceDefinition, "gitrepositories.source.toolkit.fluxcd.io")
        kube.get(CustomResourceDefinition, "kustomizations.kustomize.toolkit.fluxcd.io")
        controllers = {d.metadata.name: d for d in kube.list(Deployment, namespace="flux-system") if d.metadata}
        assert set(controllers) == {"source-controller", "kustomize-controller"}
        image = controllers["source-controller"].spec.template.spec.containers[0].image  # type: ignore[union-attr]
        assert image == "mirror.example:5000/fluxcd/source-controller:v1.7.4"
        cli.ok("k8s-extension", "delete", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n", "flux",
               "--yes")  # fmt: skip
        assert not list(kube.list(Deployment, namespace="flux-system"))

        # Forced: the resource goes at once; the agents uninstall the release when they next converge.
        cli.ok("k8s-extension", "delete", "-g", group, "-c", "ext1", "-t", "connectedClusters", "-n", "hello",
               "--force", "--yes")  # fmt: skip
        assert c.get(path, params=EXT_API).status_code == 404
        _until("the release uninstalled", lambda: _settings(kube, "hello-ns") is None)
    # Nor through any log: the control plane's, the agents'.
    assert SECRET not in server.whole_log()
    logs = [d / "agent.log" for d in cli.state_dirs() if (d / "agent.log").exists()]
    assert logs and all(SECRET not in log.read_text() for log in logs)
