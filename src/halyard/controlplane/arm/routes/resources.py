"""The generic resource listing (``az resource list``) with ``$filter`` and ``$expand``: top-level resources, in
pages of at most ``page_size`` (``$top`` asks fewer) with a ``nextLink``.

Each row is checked for its own type's read action and for the parts of ``$filter`` the query cannot express, so a
page is filled by reading on in key order; a request reads at most ``SCAN_ROWS`` rows and then answers what it found
with a ``nextLink`` (a page may hold fewer than asked, even none), so one caller's list of a large subscription never
holds the server for long nor builds one huge answer.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from halyard.controlplane.arm.filters import parse_filter
from halyard.controlplane.arm.paging import decode_skip_token, next_link
from halyard.controlplane.arm.paths import subscription_scope
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.arm.routes.root import ApiVersion, resources_version
from halyard.controlplane.plane import ControlPlane
from halyard.core.clock import isoformat
from halyard.store.models import Resource

router = APIRouter(tags=["Microsoft.Resources"], responses=ERRORS)
EXPANDABLE = {"createdtime", "changedtime", "provisioningstate"}
SCAN_ROWS = 5_000  # rows one request reads at most, readable or not


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
    request: Request,
    cp: ControlPlane,
    caller: Caller,
    subscription_id: str,
    group: str | None,
    filter_: str | None,
    expand_: str | None,
    top: int | None,
    skip_token: str | None,
) -> JSONResponse:
    version = resources_version(request)
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
    query = select(Resource).where(Resource.subscription_id == sub.id, Resource.parent_key.is_(None))
    if criteria.resource_group:
        query = query.where(Resource.group_key == criteria.resource_group.lower())
    if criteria.resource_type:
        query = query.where(Resource.type_key == criteria.resource_type.lower())
    page = min(top or cp.settings.page_size, cp.settings.page_size)
    cursor = decode_skip_token(skip_token) or ""
    value: list[dict[str, Any]] = []
    scanned, more = 0, True
    async with cp.db.session() as session:
        while more and len(value) < page and scanned < SCAN_ROWS:
            batch = min(SCAN_ROWS - scanned, 2 * page)
            rows = (
                await session.scalars(query.where(Resource.id_key > cursor).order_by(Resource.id_key).limit(batch))
            ).all()
            more = len(rows) == batch
            for r in rows:
                scanned += 1
                cursor = r.id_key
                if criteria.matches(
                    group=r.group_key, type_=r.type, name=r.name, location=r.location, tags=r.tags or {}
                ) and caller.allowed(f"{r.type}/read", r.id):
                    value.append(generic_body(r, expand))
                    if len(value) == page:
                        break
        if len(value) == page:  # full (perhaps mid-batch): is anything left after its last row?
            left = await session.scalar(
                query.where(Resource.id_key > cursor).with_only_columns(Resource.id_key).limit(1)
            )
            more = left is not None
    body: dict[str, Any] = {"value": value}
    if more:
        body["nextLink"] = next_link(
            cp.settings.base_url, request.url.path, version, cursor, top, filter_, expand=expand_
        )
    return JSONResponse(body)


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
    skip_token: Annotated[str | None, Query(alias="$skipToken")] = None,
) -> JSONResponse:
    return await _list(request, cp, caller, subscriptionId, None, filter_, expand_, top, skip_token)


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
    skip_token: Annotated[str | None, Query(alias="$skipToken")] = None,
) -> JSONResponse:
    return await _list(request, cp, caller, subscriptionId, resourceGroupName, filter_, expand_, top, skip_token)
