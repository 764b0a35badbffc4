"""Flux's CustomResourceDefinitions (``halyard/api/fluxcrds``, shared with the built-in flux chart), vendored verbatim from Flux v2.7 (source-controller v1.7.4, kustomize-controller
v1.7.3; Apache-2.0, https://github.com/fluxcd): GitRepository, Bucket and OCIRepository (``source.toolkit.fluxcd.io``
v1, and v1beta2 still served), Kustomization (``kustomize.toolkit.fluxcd.io`` v1, and v1beta2 still served).

One change when they are installed: a GitRepository's ``spec.url`` may also be a ``file://`` URL or an absolute local
path (Flux's pattern allows only http, https and ssh), so that tests and demos can use repositories on disk.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

import halyard.api.fluxcrds
from halyard.sim.cluster import SYSTEM, VirtualCluster

CRD_DIR = Path(halyard.api.fluxcrds.__file__).parent
FILES = (
    "source.toolkit.fluxcd.io_gitrepositories.yaml",
    "source.toolkit.fluxcd.io_buckets.yaml",
    "source.toolkit.fluxcd.io_ocirepositories.yaml",
    "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
)

FLUX_URL_PATTERN = "^(http|https|ssh)://.*$"
SIM_URL_PATTERN = "^((http|https|ssh|file)://|/).*$"


@functools.cache
def definitions() -> tuple[dict[str, Any], ...]:
    """The four CRDs, parsed once per process (each cluster's create copies them)."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    crds = tuple(yaml.load((CRD_DIR / f).read_text(), Loader=loader) for f in FILES)  # noqa: S506 (a safe loader)
    for version in crds[0]["spec"]["versions"]:
        url = version["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["url"]
        if url.get("pattern") == FLUX_URL_PATTERN:
            url["pattern"] = SIM_URL_PATTERN
    return crds


def install(cluster: VirtualCluster) -> None:
    """Create the Flux CRDs in ``cluster`` (those already there are left as they are)."""
    rt = cluster.registry.by_key("apiextensions.k8s.io/customresourcedefinitions")
    assert rt is not None
    for crd in definitions():
        if cluster.store.get(rt.key, "", crd["metadata"]["name"]) is None:
            cluster.create(rt, "", crd, SYSTEM)
