"""Resource groups: PUT/GET/HEAD/PATCH/DELETE and list; deleting a group deletes its resources asynchronously."""

from typing import Annotated

from fastapi import APIRouter, Body, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select

from halyard.api.text import Text
from halyard.controlplane.activity.events import actor_of, record_request
from halyard.controlplane.arm.filters import parse_filter
from halyard.controlplane.arm.names import check_group_name
from halyard.controlplane.arm.paging import decode_skip_token, next_link
from halyard.controlplane.arm.paths import group_scope, subscription_scope
from halyard.controlplane.arm.resourcetypes import normalize_location
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.arm.routes.root import ApiVersion, resources_version
from halyard.controlplane.arm.tags import Tags
from halyard.controlplane.directory import group_body, new_etag
from halyard.controlplane.plane import ControlPlane
from halyard.core.errors import Conflict, InvalidRequest, ResourceGroupNotFound
from halyard.store.models import Operation, Resource, ResourceGroup

router = APIRouter(tags=["Microsoft.Resources"], responses=ERRORS)
GROUP = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
READ, WRITE, DELETE = (f"Microsoft.Resources/subscriptions/resourceGroups/{v}" for v in ("read", "write", "delete"))


class GroupPut(BaseModel):
    model_config = ConfigDict(extra="ignore")
    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    managedBy: Text | None = Field(default=None, max_length=1024)


class GroupPatch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tags: Tags | None = None
    managedBy: Text | None = Field(default=None, max_length=1024)


class GroupOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    location: str
    tags: dict[str, str]
    properties: dict[str, str]


@router.put(
    GROUP,
    responses={200: {"model": GroupOut}, 201: {"model": GroupOut}},
    operation_id="ResourceGroups_CreateOrUpdate",
)
async def put_group(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    body: Annotated[GroupPut, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    resources_version(request)
    caller.require(WRITE, group_scope(subscriptionId, resourceGroupName))
    check_group_name(resourceGroupName)
    sub = await cp.directory.subscription(subscriptionId)
    location = normalize_location(body.location)
    if location not in [normalize_location(x) for x in cp.settings.locations]:
        raise InvalidRequest(
            f"The provided location '{body.location}' is not available for resource group. List of available "
            f"regions is '{','.join(cp.settings.locations)}'.",
            code="LocationNotAvailableForResourceGroup",
        )
    now = cp.clock.now()
    async with cp.db.transaction() as session:
        await cp.db.lock(session, group_scope(sub.id, resourceGroupName).lower())
        group = await session.get(ResourceGroup, (sub.id, resourceGroupName.lower()))
        created = group is None
        if group is None:
            group = ResourceGroup(
                subscription_id=sub.id,
                name_key=resourceGroupName.lower(),
                name=resourceGroupName,
                location=location,
                created_at=now,
                created_by=caller.caller.app_id,
            )
            session.add(group)
        elif group.provisioning_state == "Deleting":
            raise Conflict(f"Resource group '{group.name}' is being deleted.", code="ResourceGroupBeingDeleted")
        elif group.location != location:
            raise Conflict(
                f"Invalid resource group location '{location}'. The Resource group already exists in location "
                f"'{group.location}'.",
                code="InvalidResourceGroupLocation",
            )
        group.tags = body.tags or {}
        group.managed_by = body.managedBy
        group.provisioning_state = "Succeeded"
        group.etag = new_etag()
        group.changed_at = now
        record_request(
            session, at=now, actor=actor_of(caller.caller), resource_id=group_scope(sub.id, group.name),
            operation_name=WRITE, http_method="PUT", status_code=201 if created else 200,
        )  # fmt: skip
    return JSONResponse(group_body(group), status_code=201 if created else 200)


@router.get(GROUP, responses={200: {"model": GroupOut}}, operation_id="ResourceGroups_Get")
async def get_group(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    resources_version(request)
    caller.require(READ, group_scope(subscriptionId, resourceGroupName))
    return JSONResponse(group_body(await cp.directory.group(subscriptionId, resourceGroupName)))


@router.head(
    GROUP,
    responses={204: {"description": "Exists"}, 404: {"description": "Does not exist"}},
    operation_id="ResourceGroups_CheckExistence",
)
async def head_group(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> Response:
    resources_version(request)
    caller.require(READ, group_scope(subscriptionId, resourceGroupName))
    try:
        await cp.directory.group(subscriptionId, resourceGroupName)
    except ResourceGroupNotFound:
        return Response(status_code=404)
    return Response(status_code=204)


@router.patch(GROUP, responses={200: {"model": GroupOut}}, operation_id="ResourceGroups_Update")
async def patch_group(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    body: Annotated[GroupPatch, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    resources_version(request)
    caller.require(WRITE, group_scope(subscriptionId, resourceGroupName))
    existing = await cp.directory.group(subscriptionId, resourceGroupName)
    async with cp.db.transaction() as session:
        await cp.db.lock(session, group_scope(existing.subscription_id, existing.name).lower())
        group = await session.get(ResourceGroup, (existing.subscription_id, existing.name_key))
        if group is None:
            raise ResourceGroupNotFound(f"Resource group '{resourceGroupName}' could not be found.")
        if body.tags is not None:
            group.tags = body.tags
        if body.managedBy is not None:
            group.managed_by = body.managedBy
        group.etag = new_etag()
        group.changed_at = cp.clock.now()
        record_request(
            session, at=group.changed_at, actor=actor_of(caller.caller),
            resource_id=group_scope(group.subscription_id, group.name), operation_name=WRITE, http_method="PATCH",
            status_code=200,
        )  # fmt: skip
    return JSONResponse(group_body(group))


@router.delete(
    GROUP,
    responses={200: {"description": "Deleted"}, 202: {"description": "Accepted"}},
    operation_id="ResourceGroups_Delete",
)
async def delete_group(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> Response:
    version = resources_version(request)
    caller.require(DELETE, group_scope(subscriptionId, resourceGroupName))
    existing = await cp.directory.group(subscriptionId, resourceGroupName)
    async with cp.db.transaction() as session:
        await cp.db.lock(session, group_scope(existing.subscription_id, existing.name).lower())
        group = await session.get(ResourceGroup, (existing.subscription_id, existing.name_key))
        if group is None:
            raise ResourceGroupNotFound(f"Resource group '{resourceGroupName}' could not be found.")
        group.provisioning_state = "Deleting"
        op = cp.operations.create(
            session,
            subscription_id=group.subscription_id,
            namespace="Microsoft.Resources",
            location=group.location,
            action="resourceGroups/delete",
            target_id=group_scope(group.subscription_id, group.name),
            actor=actor_of(caller.caller),
            operation_name=DELETE,
            http_method="DELETE",
        )
    cp.operations.kick()
    location = (
        f"{cp.settings.base_url}/subscriptions/{group.subscription_id}/operationResults/{op.id}?api-version={version}"
    )
    return Response(status_code=202, headers={"Location": location, "Retry-After": str(cp.operations.retry_after)})


@router.get("/subscriptions/{subscriptionId}/resourceGroups", operation_id="ResourceGroups_List")
async def list_groups(
    request: Request,
    subscriptionId: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
    top: Annotated[int | None, Query(alias="$top", ge=1, le=1000)] = None,
    skip_token: Annotated[str | None, Query(alias="$skipToken")] = None,
) -> JSONResponse:
    version = resources_version(request)
    groups = await cp.directory.groups(subscriptionId)
    scope = subscription_scope(subscriptionId)
    caller.require_at_or_below(READ, scope)
    visible = [g for g in groups if caller.allowed(READ, group_scope(g.subscription_id, g.name))]
    if filter_:
        f = parse_filter(filter_)
        visible = [
            g
            for g in visible
            if f.matches(
                group=g.name,
                type_="Microsoft.Resources/resourceGroups",
                name=g.name,
                location=g.location,
                tags=g.tags or {},
            )
        ]
    after = decode_skip_token(skip_token)
    if after:
        visible = [g for g in visible if g.name_key > after]
    page = min(top or cp.settings.page_size, cp.settings.page_size)
    body: dict[str, object] = {"value": [group_body(g) for g in visible[:page]]}
    if len(visible) > page:
        last = visible[page - 1].name_key
        body["nextLink"] = next_link(cp.settings.base_url, request.url.path, version, last, top, filter_)
    return JSONResponse(body)


async def delete_group_operation(cp: ControlPlane, op: Operation) -> None:
    """Delete every resource in the group (each deprovisioned), then the group itself. Resumable."""
    parts = op.target_id.split("/")
    subscription_id, group_name = parts[2].lower(), parts[4].lower()
    in_group = select(Resource.id).where(Resource.subscription_id == subscription_id, Resource.group_key == group_name)
    while True:
        async with cp.db.session() as session:
            ids = (await session.scalars(in_group)).all()
        for resource_id in ids:
            await cp.pipeline.delete_now(resource_id)
        async with cp.db.transaction() as session:
            # Writes check the group under its row lock, so once it is Deleting none can add to it; a write that
            # committed before that is in the group now, and is deleted on the next pass.
            group = await session.get(ResourceGroup, (subscription_id, group_name), with_for_update=True)
            if group is None:
                return
            if (await session.scalars(in_group.limit(1))).first() is None:
                await session.delete(group)
                return
