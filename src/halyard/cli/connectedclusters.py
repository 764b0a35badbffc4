"""The ``Microsoft.Kubernetes/connectedClusters`` resource as the CLI addresses, reads and prints it: what every
``connectedk8s`` command (and, later, ``proxy``, ``k8s-extension``, ``flux``) shares."""

from __future__ import annotations

from typing import Any

from halyard.cli.resourceids import resource_id, resources_collection, with_resource_group

NAMESPACE = "Microsoft.Kubernetes"
TYPE = "connectedClusters"
API_VERSION = "2026-05-01"  # the newest stable, as the SDK sends
TABLE = (
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("Location", "location"),
    ("ConnectivityStatus", "connectivityStatus"),
    ("KubernetesVersion", "kubernetesVersion"),
    ("TotalNodeCount", "totalNodeCount"),
    ("ProvisioningState", "provisioningState"),
)


def cluster_id(subscription_id: str, group: str, name: str) -> str:
    """``/subscriptions/S/resourceGroups/G/providers/Microsoft.Kubernetes/connectedClusters/N``."""
    return resource_id(subscription_id, group, NAMESPACE, TYPE, name)


def clusters_collection(subscription_id: str, group: str | None = None) -> str:
    """The connected clusters of resource group ``group``, or (None) of the whole subscription."""
    return resources_collection(subscription_id, NAMESPACE, TYPE, group)


def flatten(cluster: dict[str, Any]) -> dict[str, Any]:
    """The cluster as az prints it: ``properties`` lifted to the top level, plus ``resourceGroup``."""
    properties = cluster.get("properties") or {}
    flat = {k: v for k, v in cluster.items() if k != "properties"}
    flat.update(properties)
    return dict(with_resource_group(flat))


def prop(resource: dict[str, Any] | None, key: str) -> Any:
    """``properties[key]`` of a resource that may be missing."""
    return ((resource or {}).get("properties") or {}).get(key)


def pinned_version(resource: dict[str, Any]) -> str | None:
    """The agent version the resource pins (auto-upgrade off and a desired version), as the server stored it."""
    profile = prop(resource, "arcAgentProfile") or {}
    if profile.get("agentAutoUpgrade") == "Disabled" and profile.get("desiredAgentVersion"):
        return str(profile["desiredAgentVersion"])
    return None
