"""``halyard ad sp create/list/show/delete/credential reset``: service principals of the tenant.

``az ad sp`` talks to Microsoft Graph; Halyard's directory is served by the management API under
``/providers/Halyard.Directory/servicePrincipals``. A secret is shown once, when it is made.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.directory import API_VERSION, BASE
from halyard.cli.errors import UsageError

CREDENTIALS_WARNING = (
    "The output includes credentials that you must protect. Be sure that you do not include these credentials in "
    "your code or check the credentials into your source control."
)

app = typer.Typer(help="Manage the directory (service principals, users and groups).", no_args_is_help=True)
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


# Users and groups: ``az ad user`` and ``az ad group`` talk to Microsoft Graph; Halyard serves them beside service
# principals under Halyard.Directory, with Graph's property names.
USERS = "/providers/Halyard.Directory/users"
GROUPS = "/providers/Halyard.Directory/groups"
user = typer.Typer(help="Manage users (who sign in with a password).", no_args_is_help=True)
group = typer.Typer(help="Manage groups (role assignments to a group apply to its members).", no_args_is_help=True)
member = typer.Typer(help="Manage a group's members.", no_args_is_help=True)
app.add_typer(user, name="user")
app.add_typer(group, name="group")
group.add_typer(member, name="member")
USER_TABLE = (("DisplayName", "displayName"), ("UserPrincipalName", "userPrincipalName"), ("ObjectId", "id"))
GROUP_TABLE = (("DisplayName", "displayName"), ("ObjectId", "id"), ("Created", "createdDateTime"))
MEMBER_TABLE = (("DisplayName", "displayName"), ("ObjectId", "id"), ("Type", "@odata.type"))
UserId = Annotated[str, typer.Option("--id", help="Object id or user principal name of the user.")]
GroupId = Annotated[str, typer.Option("--group", "-g", help="Object id or display name of the group.")]
ForceChange = Annotated[
    bool,
    typer.Option(
        "--force-change-password-next-sign-in", help="The user must choose a new password when they next sign in."
    ),
]
MemberId = Annotated[
    str, typer.Option("--member-id", help="Object id of the member (user, group or service principal).")
]


def _password(password: str | None) -> str:
    if password is not None:
        return password
    if not sys.stdin.isatty():
        raise UsageError("--password is required when not running on a terminal.")
    return str(typer.prompt("Password", hide_input=True, confirmation_prompt=True))


@user.command("create")
def user_create(
    ctx: typer.Context,
    display_name: Annotated[str, typer.Option("--display-name", help="Display name.")],
    user_principal_name: Annotated[str, typer.Option("--user-principal-name", help="Sign-in name, as name@domain.")],
    password: Annotated[
        str | None, typer.Option("--password", help="At least 12 characters; asked for when omitted on a terminal.")
    ] = None,
    force_change: ForceChange = False,
) -> None:
    """Create a user who signs in with a password (halyard login --use-device-code, az login --use-device-code)."""
    inv = Invocation.of(ctx)
    body = {
        "userPrincipalName": user_principal_name,
        "displayName": display_name,
        "password": _password(password),
        "forceChangePasswordNextSignIn": force_change,
    }
    inv.emit(inv.arm.call("POST", USERS, API_VERSION, json=body))


@user.command("list")
def user_list(ctx: typer.Context) -> None:
    """List the users of the tenant."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(USERS, API_VERSION), USER_TABLE)


@user.command("show")
def user_show(ctx: typer.Context, id: UserId) -> None:
    """Show a user."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(f"{USERS}/{id}", API_VERSION), USER_TABLE)


@user.command("delete")
def user_delete(ctx: typer.Context, id: UserId) -> None:
    """Delete a user with their memberships and role assignments; their tokens stop working at once."""
    inv = Invocation.of(ctx)
    inv.arm.request("DELETE", f"{USERS}/{id}", params={"api-version": API_VERSION})


@user.command("reset-password")
def user_reset_password(
    ctx: typer.Context,
    id: UserId,
    password: Annotated[str | None, typer.Option("--password", help="The new password.")] = None,
    force_change: ForceChange = False,
) -> None:
    """Set a user's password; their sign-ins (refresh tokens) are revoked."""
    inv = Invocation.of(ctx)
    body = {"password": _password(password), "forceChangePasswordNextSignIn": force_change}
    inv.arm.request("POST", f"{USERS}/{id}/resetPassword", params={"api-version": API_VERSION}, json=body)


@group.command("create")
def group_create(
    ctx: typer.Context,
    display_name: Annotated[str, typer.Option("--display-name", help="Display name (unique in the tenant).")],
) -> None:
    """Create a group."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.call("POST", GROUPS, API_VERSION, json={"displayName": display_name}))


@group.command("list")
def group_list(ctx: typer.Context) -> None:
    """List the groups of the tenant."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(GROUPS, API_VERSION), GROUP_TABLE)


@group.command("show")
def group_show(ctx: typer.Context, group_id: GroupId) -> None:
    """Show a group."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(f"{GROUPS}/{group_id}", API_VERSION), GROUP_TABLE)


@group.command("delete")
def group_delete(ctx: typer.Context, group_id: GroupId) -> None:
    """Delete a group and its role assignments; its members lose what it gave them at once."""
    inv = Invocation.of(ctx)
    inv.arm.request("DELETE", f"{GROUPS}/{group_id}", params={"api-version": API_VERSION})


@member.command("add")
def member_add(ctx: typer.Context, group_id: GroupId, member_id: MemberId) -> None:
    """Add a member to a group."""
    inv = Invocation.of(ctx)
    inv.arm.request(
        "POST", f"{GROUPS}/{group_id}/members", params={"api-version": API_VERSION}, json={"memberId": member_id}
    )


@member.command("remove")
def member_remove(ctx: typer.Context, group_id: GroupId, member_id: MemberId) -> None:
    """Remove a member from a group (effective on the member's next request)."""
    inv = Invocation.of(ctx)
    inv.arm.request("DELETE", f"{GROUPS}/{group_id}/members/{member_id}", params={"api-version": API_VERSION})


@member.command("list")
def member_list(ctx: typer.Context, group_id: GroupId) -> None:
    """List a group's direct members."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(f"{GROUPS}/{group_id}/members", API_VERSION), MEMBER_TABLE)
