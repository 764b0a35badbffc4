"""Service principals of the caller's tenant (what ``az ad sp`` does against Microsoft Graph)."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.identity.principals import NewCredential
from halyard.controlplane.plane import ControlPlane
from halyard.core.clock import isoformat
from halyard.core.errors import NotFound
from halyard.store.models import Principal

API_VERSIONS = ("2026-01-01",)
NS = "Microsoft.Authorization"
BASE = "/providers/Halyard.Directory/servicePrincipals"
router = APIRouter(tags=["Halyard.Directory"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]


class PrincipalCreate(BaseModel):
    model_config = ConfigDict(extra="ignore")
    displayName: str = Field(min_length=1, max_length=120, pattern=r"^[\w .@()-]+$")


class CredentialReset(BaseModel):
    model_config = ConfigDict(extra="ignore")
    append: bool = False


def principal_body(p: Principal) -> dict[str, Any]:
    return {
        "id": p.id,
        "appId": p.app_id,
        "displayName": p.display_name,
        "tenantId": p.tenant_id,
        "servicePrincipalType": "Application",
        "createdDateTime": isoformat(p.created_at),
    }


def credential_body(new: NewCredential) -> dict[str, Any]:
    return {
        "appId": new.principal.app_id,
        "id": new.principal.id,
        "displayName": new.principal.display_name,
        "password": new.secret,
        "tenant": new.principal.tenant_id,
        "endDateTime": isoformat(new.expires_at),
    }


def _version(request: Request) -> None:
    require_api_version(request, API_VERSIONS, "Halyard.Directory/servicePrincipals")


@router.get(BASE, operation_id="ServicePrincipals_List")
async def list_principals(request: Request, caller: Caller, cp: Plane, api_version: ApiVersion = None) -> JSONResponse:
    _version(request)
    caller.require(f"{NS}/servicePrincipals/read", "/")
    return JSONResponse(
        {"value": [principal_body(p) for p in await cp.principals.list_service_principals(caller.caller.tenant_id)]}
    )


@router.post(BASE, status_code=201, operation_id="ServicePrincipals_Create")
async def create_principal(
    request: Request,
    body: Annotated[PrincipalCreate, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    _version(request)
    caller.require(f"{NS}/servicePrincipals/write", "/")
    new = await cp.principals.create_service_principal(caller.caller.tenant_id, body.displayName)
    return JSONResponse(credential_body(new), status_code=201, headers={"Cache-Control": "no-store"})


async def _own(cp: ControlPlane, caller: AuthorizedCaller, app_id: str) -> Principal:
    try:
        principal = await cp.principals.find(app_id)
    except NotFound:
        principal = None
    if principal is None or principal.tenant_id != caller.caller.tenant_id or principal.kind != "ServicePrincipal":
        raise NotFound(f"Service principal '{app_id}' does not exist.", code="PrincipalNotFound")
    return principal


@router.get(BASE + "/{appId}", operation_id="ServicePrincipals_Get")
async def get_principal(
    request: Request, appId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    _version(request)
    caller.require(f"{NS}/servicePrincipals/read", "/")
    return JSONResponse(principal_body(await _own(cp, caller, appId)))


@router.delete(BASE + "/{appId}", operation_id="ServicePrincipals_Delete")
async def delete_principal(
    request: Request, appId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> Response:
    _version(request)
    caller.require(f"{NS}/servicePrincipals/delete", "/")
    principal = await _own(cp, caller, appId)
    await cp.principals.delete(principal.id)
    return Response(status_code=204)


@router.post(BASE + "/{appId}/resetCredential", operation_id="ServicePrincipals_ResetCredential")
async def reset_credential(
    request: Request,
    appId: str,
    caller: Caller,
    cp: Plane,
    body: Annotated[CredentialReset | None, Body()] = None,
    api_version: ApiVersion = None,
) -> JSONResponse:
    _version(request)
    caller.require(f"{NS}/servicePrincipals/credentials/action", "/")
    principal = await _own(cp, caller, appId)
    new = await cp.principals.reset_secret(principal.app_id, append=bool(body and body.append))
    return JSONResponse(credential_body(new), headers={"Cache-Control": "no-store"})
