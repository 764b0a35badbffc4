"""``halyard ad sp create/list/show/delete/credential reset``: service principals of the tenant.

``az ad sp`` talks to Microsoft Graph; Halyard's directory is served by the management API under
``/providers/Halyard.Directory/servicePrincipals``. A secret is shown once, when it is made.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.directory import API_VERSION, BASE

CREDENTIALS_WARNING = (
    "The output includes credentials that you must protect. Be sure that you do not include these credentials in "
    "your code or check the credentials into your source control."
)

app = typer.Typer(help="Manage the directory (service principals).", no_args_is_help=True)
sp = typer.Typer(help="Manage service principals.", no_args_is_help=True)
credential = typer.Typer(help="Manage a service principal's secrets.", no_args_is_help=True)
app.add_typer(sp, name="sp")
sp.add_typer(credential, name="credential")

TABLE = (("DisplayName", "displayName"), ("AppId", "appId"), ("ObjectId", "id"), ("Created", "createdDateTime"))
Id = Annotated[str, typer.Option("--id", help="App id or object id of the service principal.")]


def _secret(body: dict[str, Any], *, with_name: bool) -> dict[str, Any]:
    shown = {"appId": body["appId"], "password": body["password"], "tenant": body["tenant"]}
    if with_name:
        shown["displayName"] = body.get("displayName")
    return shown


@sp.command("create")
def create(
    ctx: typer.Context,
    display_name: Annotated[str, typer.Option("--display-name", "--name", "-n", help="Display name.")],
) -> None:
    """Create a service principal with a secret; prints appId, password and tenant (once)."""
    inv = Invocation.of(ctx)
    body = inv.arm.call("POST", BASE, API_VERSION, json={"displayName": display_name})
    inv.warn(CREDENTIALS_WARNING)
    inv.emit(_secret(body, with_name=True))


@sp.command("list")
def list_principals(ctx: typer.Context) -> None:
    """List the service principals of the tenant."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(BASE, API_VERSION), TABLE)


@sp.command("show")
def show(ctx: typer.Context, id: Id) -> None:
    """Show a service principal."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(f"{BASE}/{id}", API_VERSION), TABLE)


@sp.command("delete")
def delete(ctx: typer.Context, id: Id) -> None:
    """Delete a service principal, its secrets and its role assignments; its tokens stop working."""
    inv = Invocation.of(ctx)
    inv.arm.request("DELETE", f"{BASE}/{id}", params={"api-version": API_VERSION})


@credential.command("reset")
def reset(
    ctx: typer.Context,
    id: Id,
    append: Annotated[
        bool, typer.Option("--append", help="Keep the existing secrets (default: replace them).")
    ] = False,
) -> None:
    """Issue a new secret; the old ones stop working unless --append."""
    inv = Invocation.of(ctx)
    body = inv.arm.call("POST", f"{BASE}/{id}/resetCredential", API_VERSION, json={"append": append})
    inv.warn(CREDENTIALS_WARNING)
    inv.emit(_secret(body, with_name=False))
