"""``halyard connectedk8s show/list/delete``: connected clusters, as ``az connectedk8s``.

``connect`` installs the agents into a cluster, so it arrives with them; until then clusters are created with the
API (or an SDK).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
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
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")] = False,
) -> None:
    """Delete a connected cluster resource (its agent identity is revoked with it)."""
    inv = Invocation.of(ctx)
    path = _path(inv, resource_group, name)
    inv.confirm("Are you sure you want to perform this operation?", yes)
    first = inv.arm.request("DELETE", path, params={"api-version": API_VERSION})
    if no_wait or first.status_code in (200, 204):
        return
    with inv.progress("Running"):
        inv.arm.wait("DELETE", inv.arm.resource_url(path, API_VERSION), first)
