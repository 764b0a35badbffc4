"""``halyard group create/list/show/exists/delete``: resource groups, as ``az group``."""

from __future__ import annotations

from typing import Annotated

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.keyvalues import parse_tags
from halyard.cli.odata import odata_quote
from halyard.cli.resourceids import group_scope, groups_collection

API_VERSION = "2024-11-01"  # what az group sends
app = typer.Typer(help="Manage resource groups.", no_args_is_help=True)
TABLE = (("Name", "name"), ("Location", "location"), ("Status", "properties.provisioningState"))
Name = Annotated[str, typer.Option("--name", "-n", "--resource-group", "-g", help="Name of the resource group.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")]


def _path(inv: Invocation, name: str) -> str:
    return group_scope(inv.subscription_id, name)


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    location: Annotated[str, typer.Option("--location", "-l", help="Location, e.g. westus.")],
    tags: Annotated[list[str] | None, typer.Option(help="Space-separated tags: key[=value] [key[=value] ...].")] = None,
) -> None:
    """Create a resource group (or update its tags)."""
    inv = Invocation.of(ctx)
    body: dict[str, object] = {"location": location}
    parsed = parse_tags(tags)
    if parsed is not None:
        body["tags"] = parsed
    inv.emit(inv.arm.call("PUT", _path(inv, name), API_VERSION, json=body))


@app.command("list")
def list_groups(
    ctx: typer.Context,
    tag: Annotated[str | None, typer.Option(help="Only groups with this tag: key[=value].")] = None,
) -> None:
    """List the resource groups of the subscription."""
    inv = Invocation.of(ctx)
    params = {}
    if tag:
        key, sep, value = tag.partition("=")
        params["$filter"] = f"tagName eq {odata_quote(key)}" + (f" and tagValue eq {odata_quote(value)}" if sep else "")
    inv.emit(inv.arm.list(groups_collection(inv.subscription_id), API_VERSION, params), TABLE)


@app.command("show")
def show(ctx: typer.Context, name: Name) -> None:
    """Show a resource group."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(_path(inv, name), API_VERSION), TABLE)


@app.command("exists")
def exists(ctx: typer.Context, name: Name) -> None:
    """Print true if the resource group exists, false if not."""
    inv = Invocation.of(ctx)
    response = inv.arm.send("HEAD", _path(inv, name), params={"api-version": API_VERSION})
    if response.status_code in (401, 403):
        raise CliError(
            f"The client '{inv.profile.clientId}' does not have authorization to read resource group '{name}'.",
            "AuthorizationFailed",
        )
    if response.status_code not in (204, 200, 404):
        raise CliError(f"Unexpected answer HTTP {response.status_code} to the existence check.", "HttpError")
    inv.emit(response.status_code != 404)


@app.command("delete")
def delete(ctx: typer.Context, name: Name, yes: Yes = False, no_wait: NoWait = False) -> None:
    """Delete a resource group and everything in it."""
    inv = Invocation.of(ctx)
    path = _path(inv, name)
    inv.confirm("Are you sure you want to perform this operation?", yes)
    first = inv.arm.request("DELETE", path, params={"api-version": API_VERSION})
    if no_wait:
        return
    with inv.progress("Running"):
        inv.arm.wait("DELETE", inv.arm.resource_url(path, API_VERSION), first)
