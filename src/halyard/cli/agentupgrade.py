"""Pin a connected cluster's agents to one version and roll them to it (what ``connectedk8s upgrade`` runs).

The server decides which versions exist: it is asked first (``GET …/providers/Microsoft.Kubernetes/agentVersions``),
so a version it does not offer is refused as such, before anything else is said or changed. Then the agents'
placement (:mod:`halyard.cli.agentplacement`) checks the version can be applied where they run, the resource is
pinned to it, and the placement applies it.
"""

from __future__ import annotations

import time
from typing import Any

from halyard.cli.agentplacement import Agents, locate
from halyard.cli.connectedclusters import API_VERSION, NAMESPACE, cluster_id
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.kubesession import KubeSession
from halyard.cli.resourceids import provider_id
from halyard.core.agentversions import same_version


def offered_versions(inv: Invocation) -> list[str]:
    """The agent versions the control plane offers, highest first."""
    path = f"{provider_id(inv.subscription_id, NAMESPACE)}/agentVersions"
    return [str(item["name"]) for item in inv.arm.list(path, API_VERSION)]


def upgrade_agents(
    inv: Invocation,
    kube: KubeSession,
    group: str,
    name: str,
    version: str,
    timeout: int,
    wait: bool,
) -> dict[str, Any]:
    """Pin the cluster to agent ``version`` and apply it; the cluster resource as it ends."""
    path = cluster_id(inv.subscription_id, group, name)
    cluster: dict[str, Any] = inv.arm.get(path, API_VERSION)
    properties = cluster.setdefault("properties", {})
    profile = dict(properties.get("arcAgentProfile") or {})
    if profile.get("agentAutoUpgrade", "Enabled") != "Disabled":  # absent means the default, Enabled
        raise CliError(
            f"Auto-upgrade is enabled for '{name}', so its agents follow the newest version by themselves. To pin "
            f"version {version}, turn it off first: halyard connectedk8s update -g {group} -n {name} "
            "--auto-upgrade false",
            "AutoUpgradeEnabled",
        )
    offered = offered_versions(inv)
    match = next((v for v in offered if same_version(v, version)), None)
    if match is None:
        raise CliError(
            f"Agent version {version} is not offered by this control plane; offered versions: {', '.join(offered)}. "
            "The server's operator adds versions with halyard server --agent-versions.",
            "InvalidAgentVersion",
        )
    version = match  # the offered spelling (0.2 as 0.2.0): the image tag to deploy and the version to wait for
    agents = locate(path, kube)
    agents.check(version)
    deadline = time.monotonic() + timeout
    with inv.progress("Setting the desired agent version"):
        properties["arcAgentProfile"] = {**profile, "desiredAgentVersion": version}
        first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=cluster)
        updated: dict[str, Any] = inv.arm.wait("PUT", inv.arm.resource_url(path, API_VERSION), first) or cluster
    # The pin as the server stored it: the image tag to deploy and the version the agents are to report.
    version = str(
        ((updated.get("properties") or {}).get("arcAgentProfile") or {}).get("desiredAgentVersion") or version
    )
    with inv.progress(f"Upgrading the agents to {version}"):
        agents.apply(version, max(1, int(deadline - time.monotonic())) if wait else None)
    if not wait:
        return updated
    return _wait_for_version(inv, path, version, agents, deadline, timeout)


def _wait_for_version(
    inv: Invocation, path: str, version: str, agents: Agents, deadline: float, timeout: int
) -> dict[str, Any]:
    resource: dict[str, Any] = {}
    with inv.progress(f"Waiting for the agents to report {version}"):
        while True:
            resource = inv.arm.get(path, API_VERSION)
            properties = resource.get("properties") or {}
            status = properties.get("connectivityStatus")
            if same_version(str(properties.get("agentVersion")), version) and status == "Connected":
                return resource
            if status == "Expired":
                raise CliError(
                    "The cluster's identity has expired, so its agents cannot report any more: delete the connected "
                    "cluster and connect it again.",
                    "ClusterExpired",
                )
            if time.monotonic() >= deadline:
                break
            agents.check_alive()
            time.sleep(0.5)
    raise CliError(
        f"The agents did not report version {version} within {timeout} s: the cluster last reported agentVersion "
        f"{properties.get('agentVersion') or '(none)'}, connectivityStatus {status}.",
        "UpgradeTimeout",
    )
