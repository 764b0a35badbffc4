"""``halyard connectedk8s show/list/delete``: connected clusters, as ``az connectedk8s``.

``connect`` installs the agents into a cluster, so it arrives with them; until then clusters are created with the
API (or an SDK).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
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


def flatten(cluster: dict[str, Any]) -> dict[str, Any]:
    """The cluster as az prints it: ``properties`` lifted to the top level, plus ``resourceGroup``."""
    properties = cluster.get("properties") or {}
    flat = {k: v for k, v in cluster.items() if k != "properties"}
    flat.update(properties)
    return dict(with_resource_group(flat))


def _path(inv: Invocation, group: str, name: str | None = None) -> str:
    base = (
        f"/subscriptions/{inv.subscription_id}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters"
    )
    return f"{base}/{name}" if name else base


@app.command("show")
def show(ctx: typer.Context, resource_group: Group, name: Name) -> None:
    """Show a connected cluster."""
    inv = Invocation.of(ctx)
    inv.emit(flatten(inv.arm.get(_path(inv, resource_group, name), API_VERSION)), TABLE)


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
        _path(inv, resource_group)
        if resource_group
        else f"/subscriptions/{inv.subscription_id}/providers/Microsoft.Kubernetes/connectedClusters"
    )
    inv.emit([flatten(c) for c in inv.arm.list(path, API_VERSION)], TABLE)


@app.command("delete")
def delete(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    kube_config: Annotated[
        Path | None, typer.Option("--kube-config", help="Kubeconfig of the cluster to remove the agents from.")
    ] = None,
    kube_context: Annotated[str | None, typer.Option("--kube-context", help="The kubeconfig context.")] = None,
    force: Annotated[
        bool, typer.Option("--force", help="Delete the resource even when the cluster cannot be cleaned up.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")] = False,
) -> None:
    """Delete a connected cluster: the resource (its agent identity is revoked with it), then the agents, their
    Secrets, RBAC and namespace in the cluster (from --kube-config, or the kubeconfig its local agents use)."""
    from halyard.cli import agent as local_agents

    inv = Invocation.of(ctx)
    path = _path(inv, resource_group, name)
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
