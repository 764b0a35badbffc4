"""Routes for one resource type, generated from its ResourceType: the same five verbs for every type."""

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Query, Request
from fastapi.responses import Response

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.resourcetypes import ResourceType
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane, reply


def resource_type_router(rtype: ResourceType) -> APIRouter:
    router = APIRouter(tags=[rtype.full_type], responses=ERRORS)
    group_path = f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{rtype.namespace}/{rtype.type_name}"
    item_path = group_path + "/{resourceName}"
    sub_path = f"/subscriptions/{{subscriptionId}}/providers/{rtype.namespace}/{rtype.type_name}"
    api_version = api_version_query(rtype.api_versions)
    put_model: Any = rtype.put_model
    patch_model: Any = rtype.patch_model
    ok: dict[int | str, dict[str, Any]] = {200: {"model": rtype.response_model}}

    def rid(subscription_id: str, group: str, name: str) -> ResourceId:
        return ResourceId(subscription_id, group, rtype.namespace, rtype.type_name, name)

    def version(request: Request) -> str:
        return require_api_version(request, rtype.api_versions, rtype.full_type)

    @router.get(item_path, responses=ok, operation_id=f"{rtype.type_name}_Get")
    async def get_item(
        request: Request,
        subscriptionId: str,
        resourceGroupName: str,
        resourceName: str,
        caller: Caller,
        cp: Plane,
        api_version_: Annotated[str | None, api_version] = None,
    ) -> Response:
        v = version(request)
        return reply(await cp.pipeline.get(caller, rtype, rid(subscriptionId, resourceGroupName, resourceName), v))

    @router.put(
        item_path, responses={**ok, 201: {"model": rtype.response_model}}, operation_id=f"{rtype.type_name}_Put"
    )
    async def put_item(
        request: Request,
        subscriptionId: str,
        resourceGroupName: str,
        resourceName: str,
        body: Annotated[put_model, Body()],
        caller: Caller,
        cp: Plane,
        api_version_: Annotated[str | None, api_version] = None,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
        if_none_match: Annotated[str | None, Header(alias="If-None-Match")] = None,
    ) -> Response:
        v = version(request)
        target = rid(subscriptionId, resourceGroupName, resourceName)
        r = await cp.pipeline.put(caller, rtype, target, v, body, if_match=if_match, if_none_match=if_none_match)
        return reply(r)

    @router.patch(
        item_path, responses={**ok, 202: {"description": "Accepted"}}, operation_id=f"{rtype.type_name}_Update"
    )
    async def patch_item(
        request: Request,
        subscriptionId: str,
        resourceGroupName: str,
        resourceName: str,
        body: Annotated[patch_model, Body()],
        caller: Caller,
        cp: Plane,
        api_version_: Annotated[str | None, api_version] = None,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    ) -> Response:
        v = version(request)
        target = rid(subscriptionId, resourceGroupName, resourceName)
        return reply(await cp.pipeline.patch(caller, rtype, target, v, body, if_match=if_match))

    @router.delete(
        item_path,
        responses={202: {"description": "Accepted"}, 204: {"description": "No content"}},
        operation_id=f"{rtype.type_name}_Delete",
    )
    async def delete_item(
        request: Request,
        subscriptionId: str,
        resourceGroupName: str,
        resourceName: str,
        caller: Caller,
        cp: Plane,
        api_version_: Annotated[str | None, api_version] = None,
        if_match: Annotated[str | None, Header(alias="If-Match")] = None,
    ) -> Response:
        v = version(request)
        target = rid(subscriptionId, resourceGroupName, resourceName)
        return reply(await cp.pipeline.delete(caller, rtype, target, v, if_match=if_match))

    @router.get(group_path, operation_id=f"{rtype.type_name}_ListByResourceGroup")
    async def list_group(
        request: Request,
        subscriptionId: str,
        resourceGroupName: str,
        caller: Caller,
        cp: Plane,
        api_version_: Annotated[str | None, api_version] = None,
        skip_token: Annotated[str | None, Query(alias="$skipToken")] = None,
        top: Annotated[int | None, Query(alias="$top", ge=1, le=1000)] = None,
    ) -> Response:
        v = version(request)
        r = await cp.pipeline.list(
            caller,
            rtype,
            v,
            subscription_id=subscriptionId,
            group=resourceGroupName,
            skip_token=skip_token,
            top=top,
            base_path=request.url.path,
        )
        return reply(r)

    @router.get(sub_path, operation_id=f"{rtype.type_name}_ListBySubscription")
    async def list_subscription(
        request: Request,
        subscriptionId: str,
        caller: Caller,
        cp: Plane,
        api_version_: Annotated[str | None, api_version] = None,
        skip_token: Annotated[str | None, Query(alias="$skipToken")] = None,
        top: Annotated[int | None, Query(alias="$top", ge=1, le=1000)] = None,
    ) -> Response:
        v = version(request)
        r = await cp.pipeline.list(
            caller,
            rtype,
            v,
            subscription_id=subscriptionId,
            group=None,
            skip_token=skip_token,
            top=top,
            base_path=request.url.path,
        )
        return reply(r)

    return router
