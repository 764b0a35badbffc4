"""``halyard role definition list`` and ``halyard role assignment create/list/delete``, as ``az role``.

Results are flattened the way az prints them (``properties`` lifted), and assignments carry ``roleDefinitionName``.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.directory import resolve_object_id
from halyard.cli.errors import CliError, UsageError
from halyard.cli.resourceids import extension_id, group_scope, subscription_scope

API_VERSION = "2022-04-01"
AUTHORIZATION = "Microsoft.Authorization"

app = typer.Typer(help="Manage role definitions and assignments.", no_args_is_help=True)
definition = typer.Typer(help="Role definitions.", no_args_is_help=True)
assignment = typer.Typer(help="Role assignments.", no_args_is_help=True)
app.add_typer(definition, name="definition")
app.add_typer(assignment, name="assignment")

DEFINITION_TABLE = (("Name", "roleName"), ("Type", "roleType"), ("Description", "description"))
ASSIGNMENT_TABLE = (("Principal", "principalId"), ("Role", "roleDefinitionName"), ("Scope", "scope"))
Scope = Annotated[
    str | None, typer.Option(help="Scope: /subscriptions/S[/resourceGroups/G[/providers/...]] (default: subscription).")
]
Group = Annotated[str | None, typer.Option("--resource-group", "-g", help="Scope to this resource group.")]
Assignee = Annotated[str | None, typer.Option(help="App id or object id of the service principal.")]
AssigneeObjectId = Annotated[str | None, typer.Option(help="Object id of the principal (skips the directory lookup).")]


def _scope(inv: Invocation, scope: str | None, resource_group: str | None) -> str:
    if scope and resource_group:
        raise UsageError("give --scope or --resource-group, not both.")
    if resource_group:
        return group_scope(inv.subscription_id, resource_group)
    if scope:
        return "/" + scope.strip("/") if scope.strip("/") else "/"
    return subscription_scope(inv.subscription_id)


def _flatten_definition(item: dict[str, Any]) -> dict[str, Any]:
    props = dict(item.get("properties") or {})
    props["roleType"] = props.pop("type", None)
    return {**{k: v for k, v in item.items() if k != "properties"}, **props}


def _flatten_assignment(item: dict[str, Any], role_names: dict[str, str]) -> dict[str, Any]:
    flat = {**{k: v for k, v in item.items() if k != "properties"}, **(item.get("properties") or {})}
    role_id = str(flat.get("roleDefinitionId", "")).rstrip("/").split("/")[-1].lower()
    flat["roleDefinitionName"] = role_names.get(role_id)
    return flat


def _definitions(inv: Invocation, scope: str) -> list[dict[str, Any]]:
    return [
        _flatten_definition(d) for d in inv.arm.list(extension_id(scope, AUTHORIZATION, "roleDefinitions"), API_VERSION)
    ]


def _role_names(inv: Invocation, scope: str) -> dict[str, str]:
    return {str(d["name"]).lower(): str(d.get("roleName")) for d in _definitions(inv, scope)}


def _resolve_role(inv: Invocation, role: str, scope: str) -> str:
    """The id of the role definition named (``Reader``), or given by GUID or id."""
    wanted = role.rstrip("/").split("/")[-1].lower()
    for defn in _definitions(inv, scope):
        if wanted in (str(defn.get("roleName", "")).lower(), str(defn.get("name", "")).lower()):
            return str(defn["id"])
    raise CliError(f"Role '{role}' doesn't exist.", "RoleDefinitionDoesNotExist")


def _principal(inv: Invocation, assignee: str | None, object_id: str | None) -> str | None:
    if assignee and object_id:
        raise UsageError("give --assignee or --assignee-object-id, not both.")
    return object_id or (resolve_object_id(inv, assignee) if assignee else None)


@definition.command("list")
def list_definitions(
    ctx: typer.Context,
    name: Annotated[str | None, typer.Option("--name", "-n", help="Only the role of this name or id.")] = None,
    scope: Scope = None,
    custom_role_only: Annotated[bool, typer.Option(help="Only custom roles.")] = False,
) -> None:
    """List role definitions (built-in: Owner, Contributor, Reader, and the cluster-onboarding role)."""
    inv = Invocation.of(ctx)
    items = _definitions(inv, _scope(inv, scope, None))
    if name:
        items = [d for d in items if name.lower() in (str(d.get("roleName")).lower(), str(d.get("name")).lower())]
    if custom_role_only:
        items = [d for d in items if d.get("roleType") == "CustomRole"]
    inv.emit(items, DEFINITION_TABLE)


@assignment.command("create")
def create(
    ctx: typer.Context,
    role: Annotated[str, typer.Option(help="Role name (e.g. Reader) or role definition id.")],
    assignee: Assignee = None,
    assignee_object_id: AssigneeObjectId = None,
    scope: Scope = None,
    resource_group: Group = None,
) -> None:
    """Give a principal a role at a scope."""
    inv = Invocation.of(ctx)
    if not scope and not resource_group:
        raise UsageError("--scope is required for role assignment create command.")
    target = _scope(inv, scope, resource_group)
    principal = _principal(inv, assignee, assignee_object_id)
    if principal is None:
        raise UsageError("the following arguments are required: --assignee or --assignee-object-id")
    role_id = _resolve_role(inv, role, target)
    body = {"properties": {"roleDefinitionId": role_id, "principalId": principal}}
    path = extension_id(target, AUTHORIZATION, "roleAssignments", str(uuid.uuid4()))
    created = inv.arm.call("PUT", path, API_VERSION, json=body)
    inv.emit(_flatten_assignment(created, {role_id.rstrip("/").split("/")[-1].lower(): role}), ASSIGNMENT_TABLE)


def _assignments(
    inv: Invocation,
    scope: str,
    principal: str | None,
    role: str | None,
    *,
    exact_scope: bool,
) -> list[dict[str, Any]]:
    params = {"$filter": f"principalId eq '{principal}'"} if principal else None
    names = _role_names(inv, scope)
    items = [
        _flatten_assignment(a, names)
        for a in inv.arm.list(extension_id(scope, AUTHORIZATION, "roleAssignments"), API_VERSION, params)
    ]
    if exact_scope:
        items = [a for a in items if str(a.get("scope", "")).lower() == scope.lower()]
    if role:
        wanted = role.rstrip("/").split("/")[-1].lower()
        items = [
            a
            for a in items
            if wanted
            in (str(a.get("roleDefinitionName", "")).lower(), str(a["roleDefinitionId"]).split("/")[-1].lower())
        ]
    return items


@assignment.command("list")
def list_assignments(
    ctx: typer.Context,
    assignee: Assignee = None,
    assignee_object_id: AssigneeObjectId = None,
    role: Annotated[str | None, typer.Option(help="Only this role (name or id).")] = None,
    scope: Scope = None,
    resource_group: Group = None,
    include_inherited: Annotated[bool, typer.Option(help="Also those at scopes above.")] = False,
    all_: Annotated[bool, typer.Option("--all", help="Also those at scopes below.")] = False,
) -> None:
    """List role assignments at a scope (the subscription by default)."""
    inv = Invocation.of(ctx)
    target = _scope(inv, scope, resource_group)
    principal = _principal(inv, assignee, assignee_object_id)
    items = _assignments(inv, target, principal, role, exact_scope=not (all_ or include_inherited))
    if include_inherited and not all_:
        items = [a for a in items if _covers(str(a.get("scope", "")), target)]
    inv.emit(items, ASSIGNMENT_TABLE)


def _covers(assigned: str, target: str) -> bool:
    a, t = assigned.rstrip("/").lower() or "/", target.rstrip("/").lower() or "/"
    return a == "/" or t == a or t.startswith(a + "/")


@assignment.command("delete")
def delete(
    ctx: typer.Context,
    ids: Annotated[list[str] | None, typer.Option(help="Space-separated role assignment ids.")] = None,
    assignee: Assignee = None,
    assignee_object_id: AssigneeObjectId = None,
    role: Annotated[str | None, typer.Option(help="Only this role (name or id).")] = None,
    scope: Scope = None,
    resource_group: Group = None,
) -> None:
    """Delete role assignments: by --ids, or those matching --assignee/--role at --scope."""
    inv = Invocation.of(ctx)
    if ids:
        if assignee or assignee_object_id or role or scope or resource_group:
            raise UsageError("--ids cannot be combined with --assignee, --role or --scope.")
        targets = ids
    else:
        if not (assignee or assignee_object_id or role):
            raise UsageError("give --ids, or at least one of --assignee and --role (with --scope).")
        target = _scope(inv, scope, resource_group)
        principal = _principal(inv, assignee, assignee_object_id)
        targets = [str(a["id"]) for a in _assignments(inv, target, principal, role, exact_scope=True)]
        if not targets:
            inv.warn("No matched assignments were found to delete")
            return
    for assignment_id in targets:
        inv.arm.request("DELETE", assignment_id, params={"api-version": API_VERSION})
