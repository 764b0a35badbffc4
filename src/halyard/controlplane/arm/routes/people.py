"""Users and groups of the caller's tenant, beside service principals under ``Halyard.Directory``.

``az ad user``/``az ad group`` talk to Microsoft Graph (graph.microsoft.com), a separate service with its own
audience and paging; Halyard's directory is part of the management API instead (docs/security.md). The bodies keep
Graph's property names (``userPrincipalName``, ``displayName``, ``id``) so scripts that read them carry over.
Passwords are accepted, hashed, and never returned or logged.
"""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.identity.people import GROUP, USER
from halyard.core.clock import isoformat
from halyard.store.models import Principal

API_VERSIONS = ("2026-01-01",)
NS = "Microsoft.Authorization"
USERS = "/providers/Halyard.Directory/users"
GROUPS = "/providers/Halyard.Directory/groups"
router = APIRouter(tags=["Halyard.Directory"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)
    userPrincipalName: str = Field(min_length=3, max_length=256)
    displayName: str = Field(min_length=1, max_length=120, pattern=r"^[\w .@()'-]+$")
    password: str = Field(min_length=1, max_length=1024)
    forceChangePasswordNextSignIn: bool = False


class PasswordReset(BaseModel):
    model_config = ConfigDict(extra="ignore", hide_input_in_errors=True)
    password: str = Field(min_length=1, max_length=1024)
    forceChangePasswordNextSignIn: bool = False


class GroupCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    displayName: str = Field(min_length=1, max_length=120, pattern=r"^[\w .@()-]+$")


class MemberAdd(BaseModel):
    model_config = ConfigDict(extra="ignore")
    memberId: str = Field(min_length=1, max_length=64)


def user_body(p: Principal) -> dict[str, Any]:
    return {
        "id": p.id,
        "userPrincipalName": p.user_name,
        "displayName": p.display_name,
        "tenantId": p.tenant_id,
        "createdDateTime": isoformat(p.created_at),
    }


def group_body(p: Principal) -> dict[str, Any]:
    return {
        "id": p.id,
        "displayName": p.display_name,
        "tenantId": p.tenant_id,
        "createdDateTime": isoformat(p.created_at),
    }


def member_body(p: Principal) -> dict[str, Any]:
    kind = {USER: "#microsoft.graph.user", GROUP: "#microsoft.graph.group"}.get(
        p.kind, "#microsoft.graph.servicePrincipal"
    )
    body: dict[str, Any] = {"@odata.type": kind, "id": p.id, "displayName": p.display_name}
    if p.user_name:
        body["userPrincipalName"] = p.user_name
    return body


def _version(request: Request, what: str) -> None:
    require_api_version(request, API_VERSIONS, f"Halyard.Directory/{what}")


def _list_get_delete(path: str, what: str, kind: str, render: Callable[[Principal], dict[str, Any]]) -> None:
    """The three routes users and groups share: list the tenant's, get one, delete one (by id or name)."""
    title = what.capitalize()

    async def list_all(request: Request, caller: Caller, cp: Plane, api_version: ApiVersion = None) -> JSONResponse:
        _version(request, what)
        caller.require(f"{NS}/{what}/read", "/")
        return JSONResponse(
            {"value": [render(p) for p in await cp.principals.people.list_of(caller.caller.tenant_id, kind)]}
        )

    async def get_one(
        request: Request, name: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
    ) -> JSONResponse:
        _version(request, what)
        caller.require(f"{NS}/{what}/read", "/")
        return JSONResponse(render(await cp.principals.people.find(caller.caller.tenant_id, name, kind)))

    async def delete_one(
        request: Request, name: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
    ) -> Response:
        _version(request, what)
        caller.require(f"{NS}/{what}/delete", "/")
        await cp.principals.people.delete(caller.caller.tenant_id, name, kind)
        return Response(status_code=204)

    router.add_api_route(path, list_all, methods=["GET"], operation_id=f"{title}_List")
    router.add_api_route(path + "/{name}", get_one, methods=["GET"], operation_id=f"{title}_Get")
    router.add_api_route(path + "/{name}", delete_one, methods=["DELETE"], operation_id=f"{title}_Delete")


_list_get_delete(USERS, "users", USER, user_body)
_list_get_delete(GROUPS, "groups", GROUP, group_body)


@router.post(USERS, status_code=201, operation_id="Users_Create")
async def create_user(
    request: Request, body: Annotated[UserCreate, Body()], caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    _version(request, "users")
    caller.require(f"{NS}/users/write", "/")
    user = await cp.principals.people.create_user(
        caller.caller.tenant_id,
        body.userPrincipalName,
        body.displayName,
        body.password,
        force_change=body.forceChangePasswordNextSignIn,
    )
    return JSONResponse(user_body(user), status_code=201)


@router.post(USERS + "/{user}/resetPassword", status_code=204, operation_id="Users_ResetPassword")
async def reset_password(
    request: Request,
    user: str,
    body: Annotated[PasswordReset, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> Response:
    _version(request, "users")
    caller.require(f"{NS}/users/password/action", "/")
    found = await cp.principals.people.find(caller.caller.tenant_id, user, USER)
    await cp.principals.people.set_password(found.id, body.password, force_change=body.forceChangePasswordNextSignIn)
    return Response(status_code=204)


@router.post(GROUPS, status_code=201, operation_id="Groups_Create")
async def create_group(
    request: Request, body: Annotated[GroupCreate, Body()], caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    _version(request, "groups")
    caller.require(f"{NS}/groups/write", "/")
    group = await cp.principals.people.create_group(caller.caller.tenant_id, body.displayName)
    return JSONResponse(group_body(group), status_code=201)


@router.get(GROUPS + "/{group}/members", operation_id="Groups_ListMembers")
async def list_members(
    request: Request, group: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    _version(request, "groups")
    caller.require(f"{NS}/groups/read", "/")
    members = await cp.principals.people.members(caller.caller.tenant_id, group)
    return JSONResponse({"value": [member_body(p) for p in members]})


@router.post(GROUPS + "/{group}/members", status_code=204, operation_id="Groups_AddMember")
async def add_member(
    request: Request,
    group: str,
    body: Annotated[MemberAdd, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> Response:
    _version(request, "groups")
    caller.require(f"{NS}/groups/members/write", "/")
    await cp.principals.people.add_member(caller.caller.tenant_id, group, body.memberId)
    return Response(status_code=204)


@router.delete(GROUPS + "/{group}/members/{member}", operation_id="Groups_RemoveMember")
async def remove_member(
    request: Request, group: str, member: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> Response:
    _version(request, "groups")
    caller.require(f"{NS}/groups/members/delete", "/")
    await cp.principals.people.remove_member(caller.caller.tenant_id, group, member)
    return Response(status_code=204)
