"""What a cluster is, read from its nodes and version: counts, cores, distribution, infrastructure. Pure functions."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# providerID scheme → infrastructure (what az detects from the same field).
_INFRA_BY_SCHEME = {
    "azure": "azure",
    "aws": "aws",
    "gce": "gcp",
    "vsphere": "vsphere",
    "openstack": "openstack",
    "ibm": "ibm",
    "alicloud": "alibaba",
}
# Distribution hints: (where, needle) → distribution.
_DISTRO_BY_VERSION = (("+k3s", "k3s"), ("-eks-", "eks"), ("-gke.", "gke"), ("+rke2", "rke2"), ("+vmware", "tkg"))
_DISTRO_BY_LABEL = (
    ("kubernetes.azure.com/cluster", "aks"),
    ("eks.amazonaws.com/nodegroup", "eks"),
    ("cloud.google.com/gke-nodepool", "gke"),
    ("node.openshift.io/os_id", "openshift"),
    ("k3s.io/hostname", "k3s"),
    ("minikube.k8s.io/name", "minikube"),
)
# The annotation `halyard sim` puts on its nodes. The simulator otherwise looks like the distribution it plays;
# this tells the CLI that nothing can run in it, so connect defaults to local agents there.
SIMULATED_ANNOTATION = "sim.halyard.io/simulated"


@dataclass(frozen=True)
class ClusterFacts:
    kubernetes_version: str
    node_count: int
    core_count: int
    linux_nodes: int
    distribution: str
    infrastructure: str
    simulated: bool = False  # a `halyard sim` cluster: its pods run nothing, so agents cannot run in it


def parse_cpu(quantity: str) -> float:
    """A Kubernetes CPU quantity in cores: "4", "3500m", "0.5"."""
    text = quantity.strip()
    if text.endswith("m"):
        return float(text[:-1]) / 1000
    return float(text)


def total_cores(nodes: Iterable[Mapping[str, Any]]) -> int:
    """Sum of the nodes' CPU capacity, rounded down per node as az counts it (a 3500m node is 3 cores)."""
    return sum(math.floor(parse_cpu(str(_capacity(n).get("cpu", "0")))) for n in nodes)


def detect_distribution(nodes: Iterable[Mapping[str, Any]], version: str) -> str:
    nodes = list(nodes)
    for needle, distro in _DISTRO_BY_VERSION:
        if needle in version:
            return distro
    for node in nodes:
        labels = node.get("metadata", {}).get("labels") or {}
        for label, distro in _DISTRO_BY_LABEL:
            if label in labels:
                return distro
    for node in nodes:
        scheme = _scheme(node)
        if scheme in ("k3s", "kind", "aks", "eks", "gke", "k0s", "microk8s"):
            return scheme
    return "generic"


def detect_infrastructure(nodes: Iterable[Mapping[str, Any]]) -> str:
    for node in nodes:
        infra = _INFRA_BY_SCHEME.get(_scheme(node))
        if infra:
            return infra
    return "generic"


def cluster_facts(version: Mapping[str, Any], nodes: Sequence[Mapping[str, Any]]) -> ClusterFacts:
    git_version = str(version.get("gitVersion", ""))
    return ClusterFacts(
        kubernetes_version=git_version.lstrip("v") if git_version else "",
        node_count=len(nodes),
        core_count=total_cores(nodes),
        linux_nodes=sum(1 for n in nodes if _os(n) == "linux"),
        distribution=detect_distribution(nodes, git_version),
        infrastructure=detect_infrastructure(nodes),
        simulated=any(_annotations(n).get(SIMULATED_ANNOTATION) == "true" for n in nodes),
    )


def _annotations(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return (node.get("metadata") or {}).get("annotations") or {}


def _capacity(node: Mapping[str, Any]) -> Mapping[str, Any]:
    return (node.get("status") or {}).get("capacity") or {}


def _scheme(node: Mapping[str, Any]) -> str:
    provider = str((node.get("spec") or {}).get("providerID") or "")
    return provider.split("://", 1)[0].lower() if "://" in provider else ""


def _os(node: Mapping[str, Any]) -> str:
    labels = (node.get("metadata") or {}).get("labels") or {}
    return str(
        labels.get("kubernetes.io/os") or ((node.get("status") or {}).get("nodeInfo") or {}).get("operatingSystem", "")
    )
