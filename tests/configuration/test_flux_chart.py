"""The built-in microsoft.flux extension's chart: made by the control plane (no outside registry), the same bytes
each time, Flux's two controllers from the operator's registry and Flux's CRDs, rendered by the real helm."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import yaml

from halyard.controlplane.configuration.builtincharts import builtin_chart
from tests.sim.conftest import helm_path


def _render(chart: bytes, tmp_path: Path, *args: str) -> list[dict[str, Any]]:
    package = tmp_path / "flux.tgz"
    package.write_bytes(chart)
    proc = subprocess.run(
        [str(helm_path()), "template", "flux", str(package), "--namespace", "flux-system", "--include-crds", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def test_the_flux_chart_installs_flux_controllers_and_crds_from_the_operators_registry(tmp_path: Path) -> None:
    chart = builtin_chart("microsoft.flux", "1.14.0", "mirror.example:5000")
    assert chart == builtin_chart("Microsoft.Flux", "1.14.0", "mirror.example:5000")  # cached, and stable
    with tarfile.open(fileobj=io.BytesIO(chart), mode="r:gz") as tar:
        meta = yaml.safe_load(tar.extractfile("microsoft-flux/Chart.yaml").read())  # type: ignore[union-attr]
    assert meta["version"] == "1.14.0"
    docs = _render(chart, tmp_path)
    crds = {d["metadata"]["name"] for d in docs if d["kind"] == "CustomResourceDefinition"}
    assert crds == {
        "gitrepositories.source.toolkit.fluxcd.io",
        "buckets.source.toolkit.fluxcd.io",
        "ocirepositories.source.toolkit.fluxcd.io",
        "kustomizations.kustomize.toolkit.fluxcd.io",
    }
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    images = {n: d["spec"]["template"]["spec"]["containers"][0]["image"] for n, d in deployments.items()}
    assert images == {
        "source-controller": "mirror.example:5000/fluxcd/source-controller:v1.7.4",
        "kustomize-controller": "mirror.example:5000/fluxcd/kustomize-controller:v1.7.3",
    }
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert "--watch-all-namespaces=true" in container["args"]
    services = [d for d in docs if d["kind"] == "Service"]
    assert [s["metadata"]["name"] for s in services] == ["source-controller"]
    admins = [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "cluster-admin"]
    assert [s["name"] for b in admins for s in b["subjects"]] == ["kustomize-controller"]
    # An extension's configuration settings choose another registry (settings become helm values).
    other = _render(chart, tmp_path, "--set", "registry=registry.internal")
    assert {c["image"].split("/")[0] for d in other if d["kind"] == "Deployment"
            for c in d["spec"]["template"]["spec"]["containers"]} == {"registry.internal"}  # fmt: skip
