"""``halyard connectedk8s show/list/delete/update/upgrade``: connected clusters, as ``az connectedk8s``.

``connect`` installs the agents into a cluster, so it arrives with them (``cli/onboarding.py``); ``upgrade`` moves
them to another version (``cli/agentupgrade.py``). Both modules are imported only when their command runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.keyvalues import parse_tags
from halyard.cli.resourceids import with_resource_group

API_VERSION = "2026-05-01"  # the newest stable, as the SDK sends
app = typer.Typer(help="Manage connected Kubernetes clusters.", no_args_is_help=True)
TABLE = (
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("Location", "location"),
    ("ConnectivityStatus", "connectivityStatus"),
    ("KubernetesVersion", "kubernetesVersion"),
    ("TotalNodeCount", "totalNodeCount"),
    ("ProvisioningState", "provisioningState"),
)
Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")]
KubeConfig = Annotated[Path | None, typer.Option("--kube-config", help="Path of the cluster's kubeconfig.")]
KubeContext = Annotated[str | None, typer.Option("--kube-context", help="The kubeconfig context.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")]
AUTO_UPGRADE = {"true": "Enabled", "false": "Disabled"}


def flatten(cluster: dict[str, Any]) -> dict[str, Any]:
    """The cluster as az prints it: ``properties`` lifted to the top level, plus ``resourceGroup``."""
    properties = cluster.get("properties") or {}
    flat = {k: v for k, v in cluster.items() if k != "properties"}
    flat.update(properties)
    return dict(with_resource_group(flat))


def cluster_path(inv: Invocation, group: str, name: str | None = None) -> str:
    base = (
        f"/subscriptions/{inv.subscription_id}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters"
    )
    return f"{base}/{name}" if name else base


@app.command("show")
def show(ctx: typer.Context, resource_group: Group, name: Name) -> None:
    """Show a connected cluster."""
    inv = Invocation.of(ctx)
    inv.emit(flatten(inv.arm.get(cluster_path(inv, resource_group, name), API_VERSION)), TABLE)


@app.command("list")
def list_clusters(
    ctx: typer.Context,
    resource_group: Annotated[
        str | None, typer.Option("--resource-group", "-g", help="Only this resource group.")
    ] = None,
) -> None:
    """List connected clusters of a resource group, or of the subscription."""
    inv = Invocation.of(ctx)
    path = (
        cluster_path(inv, resource_group)
        if resource_group
        else f"/subscriptions/{inv.subscription_id}/providers/Microsoft.Kubernetes/connectedClusters"
    )
    inv.emit([flatten(c) for c in inv.arm.list(path, API_VERSION)], TABLE)


@app.command("delete")
def delete(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    force: Annotated[
        bool, typer.Option("--force", help="Delete the resource even when the cluster cannot be cleaned up.")
    ] = False,
    yes: Yes = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")] = False,
) -> None:
    """Delete a connected cluster: the resource (its agent identity is revoked with it), then the agents, their
    Secrets, RBAC and namespace in the cluster (from --kube-config, or the kubeconfig its local agents use)."""
    from halyard.cli import agent as local_agents

    inv = Invocation.of(ctx)
    path = cluster_path(inv, resource_group, name)
    inv.confirm("Are you sure you want to perform this operation?", yes)
    resource_id = path
    started = local_agents.started_target(local_agents.state_dir_for(resource_id))
    if kube_config is None and started is not None:
        kube_config, kube_context = started[0], kube_context or started[1]
    first = inv.arm.request("DELETE", path, params={"api-version": API_VERSION})
    if not no_wait and first.status_code not in (200, 204):
        with inv.progress("Running"):
            inv.arm.wait("DELETE", inv.arm.resource_url(path, API_VERSION), first)
    _clean_cluster(inv, resource_id, kube_config, kube_context, force)


@app.command("update")
def update(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    tags: Annotated[
        list[str] | None, typer.Option("--tags", help='Space-separated tags: key[=value]; "" clears them.')
    ] = None,
    distribution: Annotated[str | None, typer.Option("--distribution", help="The Kubernetes distribution.")] = None,
    distribution_version: Annotated[
        str | None, typer.Option("--distribution-version", help="The distribution's version.")
    ] = None,
    auto_upgrade: Annotated[
        str | None,
        typer.Option(
            "--auto-upgrade",
            help="true: the agents follow the newest version by themselves; false: they "
            "stay at their version until connectedk8s upgrade.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accepted as az accepts it; update asks nothing.")] = False,
) -> None:
    """Update a connected cluster's tags, distribution and agent auto-upgrade (PATCH, then a full PUT for the
    agent profile, as az does)."""
    inv = Invocation.of(ctx)
    if auto_upgrade is not None and auto_upgrade.lower() not in AUTO_UPGRADE:
        raise UsageError(f"argument --auto-upgrade: '{auto_upgrade}' is not true or false.")
    patch: dict[str, Any] = {}
    new_tags = parse_tags(tags)
    if new_tags is not None:
        patch["tags"] = new_tags
    changes = {"distribution": distribution, "distributionVersion": distribution_version}
    if any(v is not None for v in changes.values()):
        patch["properties"] = {k: v for k, v in changes.items() if v is not None}
    if not patch and auto_upgrade is None:
        raise UsageError(
            "Nothing to update: give at least one of --tags, --distribution, --distribution-version, --auto-upgrade."
        )
    path = cluster_path(inv, resource_group, name)
    url = inv.arm.resource_url(path, API_VERSION)
    cluster: dict[str, Any] | None = None
    with inv.progress("Updating the connected cluster"):
        if patch:
            first = inv.arm.request("PATCH", path, params={"api-version": API_VERSION}, json=patch)
            cluster = inv.arm.wait("PATCH", url, first)
        if auto_upgrade is not None:
            # The patch body has no agent profile: the full resource goes back with it changed.
            cluster = inv.arm.get(path, API_VERSION)
            properties = cluster.setdefault("properties", {})
            profile = dict(properties.get("arcAgentProfile") or {})
            properties["arcAgentProfile"] = {**profile, "agentAutoUpgrade": AUTO_UPGRADE[auto_upgrade.lower()]}
            first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=cluster)
            cluster = inv.arm.wait("PUT", url, first)
    inv.emit(flatten(cluster or inv.arm.get(path, API_VERSION)), TABLE)


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    agent_version: Annotated[str, typer.Option("--agent-version", help="The agent version to move to.")],
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    upgrade_timeout: Annotated[
        int, typer.Option("--upgrade-timeout", min=1, help="Seconds to wait for the agents to report the version.")
    ] = 600,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once the version is set and the upgrade started.")
    ] = False,
) -> None:
    """Upgrade a connected cluster's agents to --agent-version (auto-upgrade must be off: see update). Local agents
    are restarted on this machine's halyard, which must be that version; in-cluster agents are upgraded with helm
    in the cluster of --kube-config/--kube-context."""
    from halyard.cli.agentupgrade import upgrade_agents

    inv = Invocation.of(ctx)
    kubeconfig = kube_config.expanduser() if kube_config else None
    cluster = upgrade_agents(
        inv, resource_group, name, agent_version, kubeconfig, kube_context, upgrade_timeout, wait=not no_wait
    )
    inv.emit(flatten(cluster), TABLE)


def _clean_cluster(
    inv: Invocation, resource_id: str, kube_config: Path | None, context: str | None, force: bool
) -> None:
    """Remove what onboarding installed. The identity is already revoked, so agents left behind can do nothing;
    still, a clean-up that fails is an error (``--force``: a warning), and running delete again retries it."""
    from halyard.cli import agent as local_agents
    from halyard.cli.onboarding import disconnect_cluster

    if kube_config is None:
        if local_agents.stop_detached(local_agents.state_dir_for(resource_id)):
            inv.note("Stopped the cluster's local agents.")
        return
    try:
        removed = disconnect_cluster(resource_id, kube_config, context)
    except Exception as exc:  # any failure to reach or clean the cluster is reported the same way
        message = (
            f"The resource is deleted, but the cluster's agents could not be removed ({type(exc).__name__}: {exc}). "
            "Run the same delete again with a working --kube-config to finish."
        )
        if force:
            inv.warn(message)
            return
        raise CliError(message, "ClusterCleanupFailed") from None
    if removed:
        inv.note("Removed: " + ", ".join(removed) + ".")
