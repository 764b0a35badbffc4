"""The generic resource listing (``az resource list``) with ``$filter`` and ``$expand``: top-level resources."""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from halyard.controlplane.arm.filters import parse_filter
from halyard.controlplane.arm.paths import subscription_scope
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.arm.routes.root import ApiVersion, resources_version
from halyard.controlplane.plane import ControlPlane
from halyard.core.clock import isoformat
from halyard.store.models import Resource

router = APIRouter(tags=["Microsoft.Resources"], responses=ERRORS)
EXPANDABLE = {"createdtime", "changedtime", "provisioningstate"}


def generic_body(resource: Resource, expand: set[str]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": resource.id,
        "name": resource.name,
        "type": resource.type,
        "location": resource.location,
        "tags": resource.tags or {},
    }
    if resource.identity:
        body["identity"] = resource.identity
    if resource.kind:
        body["kind"] = resource.kind
    if "createdtime" in expand:
        body["createdTime"] = isoformat(resource.created_at)
    if "changedtime" in expand:
        body["changedTime"] = isoformat(resource.changed_at)
    if "provisioningstate" in expand:
        body["provisioningState"] = resource.provisioning_state
    return body


async def _list(
    cp: ControlPlane,
    caller: Caller,
    subscription_id: str,
    group: str | None,
    filter_: str | None,
    expand_: str | None,
    top: int | None,
) -> JSONResponse:
    read = "Microsoft.Resources/subscriptions/resources/read"
    # Authorized before the group is looked up: a caller without access there gets 403 whether or not it exists
    # (a 404 for a missing group and an empty list for an existing one told a Reader elsewhere which groups exist).
    scope = subscription_scope(subscription_id) + (f"/resourceGroups/{group}" if group else "")
    caller.require_at_or_below(read, scope)
    sub = await cp.directory.subscription(subscription_id)
    if group:
        await cp.directory.group(sub.id, group)
    criteria = parse_filter(filter_)
    if group:
        criteria.resource_group = group
    expand = {e.strip().lower() for e in (expand_ or "").split(",") if e.strip()} & EXPANDABLE
    # Top-level resources only, as ARM lists them: children and extension resources are listed under their parent.
    query = (
        select(Resource)
        .where(Resource.subscription_id == sub.id, Resource.parent_key.is_(None))
        .order_by(Resource.id_key)
    )
    if criteria.resource_group:
        query = query.where(Resource.group_key == criteria.resource_group.lower())
    if criteria.resource_type:
        query = query.where(Resource.type_key == criteria.resource_type.lower())
    async with cp.db.session() as session:
        rows = (await session.scalars(query)).all()
    value = [
        generic_body(r, expand)
        for r in rows
        if criteria.matches(group=r.group_key, type_=r.type, name=r.name, location=r.location, tags=r.tags or {})
        and caller.allowed(f"{r.type}/read", r.id)
    ]
    return JSONResponse({"value": value[: top or None]})


@router.get("/subscriptions/{subscriptionId}/resources", operation_id="Resources_List")
async def list_resources(
    request: Request,
    subscriptionId: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
    expand_: Annotated[str | None, Query(alias="$expand")] = None,
    top: Annotated[int | None, Query(alias="$top", ge=1, le=1000)] = None,
) -> JSONResponse:
    resources_version(request)
    return await _list(cp, caller, subscriptionId, None, filter_, expand_, top)


@router.get(
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/resources",
    operation_id="Resources_ListByResourceGroup",
)
async def list_group_resources(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
    expand_: Annotated[str | None, Query(alias="$expand")] = None,
    top: Annotated[int | None, Query(alias="$top", ge=1, le=1000)] = None,
) -> JSONResponse:
    resources_version(request)
    return await _list(cp, caller, subscriptionId, resourceGroupName, filter_, expand_, top)
