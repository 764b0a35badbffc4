"""``halyard resource list``: every resource of the subscription, filtered as ``az resource list`` filters."""

from __future__ import annotations

from typing import Annotated

import typer

from halyard.cli.context import Invocation
from halyard.cli.odata import odata_quote
from halyard.cli.resourceids import all_resources, with_resource_group

API_VERSION = "2024-11-01"
app = typer.Typer(help="Manage resources.", no_args_is_help=True)
TABLE = (
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("Location", "location"),
    ("Type", "type"),
    ("Status", "provisioningState"),
)


@app.command("list")
def list_resources(
    ctx: typer.Context,
    resource_group: Annotated[str | None, typer.Option("--resource-group", "-g", help="Only this group.")] = None,
    resource_type: Annotated[
        str | None, typer.Option("--resource-type", help="Only this type, e.g. Microsoft.Kubernetes/connectedClusters.")
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only resources of this name.")] = None,
    location: Annotated[str | None, typer.Option("--location", "-l", help="Only this location.")] = None,
) -> None:
    """List resources."""
    inv = Invocation.of(ctx)
    clauses = []
    if resource_group:
        clauses.append(f"resourceGroup eq {odata_quote(resource_group)}")
    if resource_type:
        clauses.append(f"resourceType eq {odata_quote(resource_type)}")
    if name:
        clauses.append(f"name eq {odata_quote(name)}")
    if location:
        clauses.append(f"location eq {odata_quote(location)}")
    params = {"$filter": " and ".join(clauses), "$expand": "createdTime,changedTime,provisioningState"}
    items = inv.arm.list(all_resources(inv.subscription_id), API_VERSION, params)
    inv.emit(with_resource_group(items), TABLE)
