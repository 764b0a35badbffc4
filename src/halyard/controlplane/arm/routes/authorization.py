"""Microsoft.Authorization: role definitions and role assignments at any scope, as ARM serves them."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from halyard.controlplane.activity.events import record_answered
from halyard.controlplane.arm import rbac
from halyard.controlplane.arm.access import role_of
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.identity.people import PRINCIPAL_TYPES, principal_type
from halyard.controlplane.plane import ControlPlane
from halyard.core.clock import isoformat
from halyard.core.errors import InvalidRequest, NotFound
from halyard.store.models import RoleAssignment, RoleDefinition

API_VERSIONS = (
    "2022-04-01",
    "2022-01-01-preview",
    "2020-10-01-preview",
    "2020-04-01-preview",
    "2018-09-01-preview",
    "2018-01-01-preview",
    "2015-07-01",
)
NS = "Microsoft.Authorization"
router = APIRouter(tags=[NS], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]


def _version(request: Request) -> str:
    return require_api_version(request, API_VERSIONS, NS)


def _scope(scope: str) -> str:
    """The scope of the request path in its one spelling (400 ``InvalidScope`` for ``..`` and other forms)."""
    try:
        return rbac.canonical_scope(scope)
    except ValueError as exc:
        raise InvalidRequest(str(exc), code="InvalidScope") from None


def definition_body(defn: RoleDefinition, scope: str = "/") -> dict[str, Any]:
    prefix = "" if scope == "/" else scope
    role = role_of(defn)
    return {
        "id": f"{prefix}/providers/{NS}/roleDefinitions/{defn.id}",
        "name": defn.id,
        "type": f"{NS}/roleDefinitions",
        "properties": {
            "roleName": defn.role_name,
            "type": "BuiltInRole" if defn.builtin else "CustomRole",
            "description": defn.description,
            "assignableScopes": ["/"],
            "permissions": [
                {
                    "actions": defn.actions,
                    "notActions": defn.not_actions,
                    "dataActions": list(role.data_actions),
                    "notDataActions": list(role.not_data_actions),
                }
            ],
        },
    }


def assignment_body(row: RoleAssignment, kind: str) -> dict[str, Any]:
    """An assignment as ARM shows it; ``kind``: its principal's kind (ARM's ``principalType`` follows from it)."""
    prefix = "" if row.scope == "/" else row.scope
    return {
        "id": f"{prefix}/providers/{NS}/roleAssignments/{row.id}",
        "name": row.id,
        "type": f"{NS}/roleAssignments",
        "properties": {
            "roleDefinitionId": f"/providers/{NS}/roleDefinitions/{row.role_definition_id}",
            "principalId": row.principal_id,
            "principalType": principal_type(kind),
            "scope": row.scope,
            "createdOn": isoformat(row.created_at),
        },
    }


class AssignmentProperties(BaseModel):
    model_config = ConfigDict(extra="ignore")
    roleDefinitionId: str = Field(min_length=1, max_length=1024)
    principalId: str = Field(min_length=1, max_length=64)
    # Optional, as in ARM; when sent it must be the principal's real kind (ARM: 400 UnmatchedPrincipalType).
    principalType: str | None = Field(default=None, max_length=32)


class AssignmentPut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    properties: AssignmentProperties


@router.get("/{scope:path}/providers/Microsoft.Authorization/roleDefinitions", operation_id="RoleDefinitions_List")
async def list_definitions(
    request: Request,
    scope: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
) -> JSONResponse:
    _version(request)
    s = _scope(scope)
    caller.require(f"{NS}/roleDefinitions/read", s)
    rows = await cp.access.role_definitions()
    if filter_ and "rolename eq" in filter_.lower():
        wanted = filter_.split("'")[1] if "'" in filter_ else ""
        rows = [r for r in rows if r.role_name.lower() == wanted.lower()]
    return JSONResponse({"value": [definition_body(r, s) for r in rows]})


@router.get(
    "/{scope:path}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}",
    operation_id="RoleDefinitions_Get",
)
async def get_definition(
    request: Request,
    scope: str,
    roleDefinitionId: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    _version(request)
    s = _scope(scope)
    caller.require(f"{NS}/roleDefinitions/read", s)
    return JSONResponse(definition_body(await cp.access.find_role(roleDefinitionId), s))


@router.get("/{scope:path}/providers/Microsoft.Authorization/roleAssignments", operation_id="RoleAssignments_List")
async def list_assignments(
    request: Request,
    scope: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
) -> JSONResponse:
    _version(request)
    s = _scope(scope)
    caller.require(f"{NS}/roleAssignments/read", s)
    principal = None
    if filter_ and "principalid eq" in filter_.lower():
        principal = filter_.split("'")[1] if "'" in filter_ else None
    rows = [
        r
        for r in await cp.access.assignments(scope=s, principal_id=principal)
        if caller.allowed(f"{NS}/roleAssignments/read", r.scope)
    ]
    kinds = await cp.principals.kinds(r.principal_id for r in rows)
    return JSONResponse({"value": [assignment_body(r, kinds.get(r.principal_id, "")) for r in rows]})


@router.put(
    "/{scope:path}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
    status_code=201,
    operation_id="RoleAssignments_Create",
)
async def put_assignment(
    request: Request,
    scope: str,
    roleAssignmentName: str,
    body: Annotated[AssignmentPut, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    _version(request)
    s = _scope(scope)
    caller.require(f"{NS}/roleAssignments/write", s)
    if len(roleAssignmentName) != 36:
        raise InvalidRequest("The role assignment name must be a GUID.", code="InvalidRoleAssignmentId")
    s = await _check_scope_exists(cp, s)
    role = await cp.access.find_role(body.properties.roleDefinitionId)
    try:
        principal = await cp.principals.find(body.properties.principalId)  # object id or app id
    except NotFound:
        raise InvalidRequest(
            f"Principal {body.properties.principalId} does not exist in the directory.", code="PrincipalNotFound"
        ) from None
    _check_principal_type(body.properties.principalType, principal.id, principal.kind)
    row = await cp.access.assign(scope=s, role_id=role.id, principal_id=principal.id, assignment_id=roleAssignmentName)
    await record_answered(
        cp.db, at=cp.clock.now(), caller=caller.caller, resource_id=_assignment_id(s, roleAssignmentName),
        operation_name=f"{NS}/roleAssignments/write", http_method="PUT", status_code=201,
    )  # fmt: skip
    return JSONResponse(assignment_body(row, principal.kind), status_code=201)


def _assignment_id(scope: str, name: str) -> str:
    return f"{scope.rstrip('/')}/providers/{NS}/roleAssignments/{name}"


def _check_principal_type(given: str | None, principal_id: str, kind: str) -> None:
    """ARM's answers for a ``principalType`` that is not one of its values, or not the principal's own."""
    if given is None:
        return
    known = {t.lower(): t for t in PRINCIPAL_TYPES}
    if given.lower() not in known:
        raise InvalidRequest(
            f"The principal type '{given[:32]}' is not valid; use one of {', '.join(PRINCIPAL_TYPES)}.",
            code="InvalidPrincipalType",
        )
    actual = principal_type(kind)
    if known[given.lower()] != actual:
        raise InvalidRequest(
            f"The PrincipalId '{principal_id}' has type '{actual}' , which is different from specified "
            f"PrincipalType '{known[given.lower()]}'.",
            code="UnmatchedPrincipalType",
        )


@router.get(
    "/{scope:path}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
    operation_id="RoleAssignments_Get",
)
async def get_assignment(
    request: Request,
    scope: str,
    roleAssignmentName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    _version(request)
    s = _scope(scope)
    caller.require(f"{NS}/roleAssignments/read", s)
    row = await _assignment_at(cp, s, roleAssignmentName)
    if row is None:
        raise NotFound(f"Role assignment '{roleAssignmentName}' does not exist.", code="RoleAssignmentNotFound")
    return JSONResponse(assignment_body(row, await _kind_of(cp, row.principal_id)))


@router.delete(
    "/{scope:path}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}",
    operation_id="RoleAssignments_Delete",
)
async def delete_assignment(
    request: Request,
    scope: str,
    roleAssignmentName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> Response:
    _version(request)
    s = _scope(scope)
    caller.require(f"{NS}/roleAssignments/delete", s)
    row = await _assignment_at(cp, s, roleAssignmentName)
    if row is None:
        return Response(status_code=204)
    kind = await _kind_of(cp, row.principal_id)
    await cp.access.unassign(row.id)
    await record_answered(
        cp.db, at=cp.clock.now(), caller=caller.caller, resource_id=_assignment_id(s, roleAssignmentName),
        operation_name=f"{NS}/roleAssignments/delete", http_method="DELETE",
    )  # fmt: skip
    return JSONResponse(assignment_body(row, kind))


async def _kind_of(cp: ControlPlane, principal_id: str) -> str:
    return (await cp.principals.kinds([principal_id])).get(principal_id, "")


async def _assignment_at(cp: ControlPlane, scope: str, name: str) -> RoleAssignment | None:
    """The assignment ``name`` if it is at ``scope`` (one at another scope is not found here, as in ARM)."""
    row = await cp.access.get_assignment(name)
    return row if row is not None and row.scope_key == scope.lower() else None


async def _check_scope_exists(cp: ControlPlane, scope: str) -> str:
    """``scope`` with the subscription and group as the directory spells them, once both are known to exist."""
    parts = [p for p in scope.split("/") if p]
    if not parts:
        return "/"
    if parts[0].lower() != "subscriptions" or len(parts) < 2:
        raise InvalidRequest(f"The scope '{scope}' is not valid.", code="InvalidScope")
    parts[1] = (await cp.directory.subscription(parts[1])).id
    if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
        parts[3] = (await cp.directory.group(parts[1], parts[3])).name
    return "/" + "/".join(parts)
