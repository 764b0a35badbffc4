"""Routes for one resource type, generated from its ResourceType: the same verbs for every type and placement.

The path parameters differ by placement (a child's route names its parent too), so each endpoint's signature is
built from the type's route: FastAPI then documents every parameter in the OpenAPI document as usual.
"""

import inspect
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Path, Query, Request
from fastapi.responses import Response

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.auth import authenticated
from halyard.controlplane.arm.resourcetypes import Placement, ResourceType
from halyard.controlplane.arm.routes.common import ERRORS, reply
from halyard.controlplane.plane import ControlPlane, plane

Handler = Callable[..., Awaitable[Response]]
_KW = inspect.Parameter.KEYWORD_ONLY


def _param(name: str, annotation: Any, default: Any = inspect.Parameter.empty) -> inspect.Parameter:
    return inspect.Parameter(name, _KW, annotation=annotation, default=default)


def _endpoint(handler: Handler, path: str, extra: list[inspect.Parameter]) -> Handler:
    """An endpoint whose signature declares the path's parameters, then ``extra``; it calls ``handler``."""

    async def endpoint(**kwargs: Any) -> Response:
        return await handler(**kwargs)

    names = [seg[1:-1] for seg in path.split("/") if seg.startswith("{")]
    params = [_param("request", Request)]
    params += [_param(name, Annotated[str, Path()]) for name in names]
    params += [
        _param("caller", Annotated[AuthorizedCaller, Depends(authenticated)]),
        _param("cp", Annotated[ControlPlane, Depends(plane)]),
        *extra,
    ]
    endpoint.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    endpoint.__name__ = handler.__name__
    return endpoint


def resource_type_router(rtype: ResourceType) -> APIRouter:
    router = APIRouter(tags=[rtype.full_type], responses=ERRORS)
    # The namespace's last part keeps two providers' same-named types apart (HybridCompute's and another's settings).
    op_prefix = f"{rtype.namespace.rsplit('.', 1)[-1]}_{rtype.type_path.replace('/', '_')}"
    versions = rtype.api_versions
    api_version = _param("api_version_", Annotated[str | None, api_version_query(versions)], None)
    if_match = _param("if_match", Annotated[str | None, Header(alias="If-Match")], None)
    if_none_match = _param("if_none_match", Annotated[str | None, Header(alias="If-None-Match")], None)
    # Only types that filter document $filter (a stray one elsewhere is ignored, as before).
    filtering = (
        [_param("filter_", Annotated[str | None, Query(alias="$filter", max_length=512)], None)]
        if rtype.list_filter is not None
        else []
    )
    ordering = (
        [_param("orderby", Annotated[str | None, Query(alias="$orderby", max_length=256)], None)]
        if rtype.list_order is not None
        else []
    )
    paging = [
        _param("skip_token", Annotated[str | None, Query(alias="$skipToken")], None),
        _param("top", Annotated[int | None, Query(alias="$top", ge=1, le=1000)], None),
    ]
    ok: dict[int | str, dict[str, Any]] = {200: {"model": rtype.response_model}}
    # Only types that take it document it; others ignore a stray forceDelete as ARM ignores unknown parameters.
    force = [_param("force_delete", Annotated[bool, Query(alias="forceDelete")], False)] if rtype.force_delete else []

    def version(request: Request) -> str:
        return require_api_version(request, versions, rtype.full_type)

    async def get_item(request: Request, caller: AuthorizedCaller, cp: ControlPlane, **_: Any) -> Response:
        v = version(request)
        return reply(await cp.pipeline.get(caller, rtype, rtype.resource_id(request.path_params), v))

    async def put_item(
        request: Request,
        caller: AuthorizedCaller,
        cp: ControlPlane,
        body: Any,
        if_match: str | None,
        if_none_match: str | None,
        **_: Any,
    ) -> Response:
        v = version(request)
        target = rtype.resource_id(request.path_params)
        r = await cp.pipeline.put(caller, rtype, target, v, body, if_match=if_match, if_none_match=if_none_match)
        return reply(r)

    async def patch_item(
        request: Request, caller: AuthorizedCaller, cp: ControlPlane, body: Any, if_match: str | None, **_: Any
    ) -> Response:
        v = version(request)
        target = rtype.resource_id(request.path_params)
        return reply(await cp.pipeline.patch(caller, rtype, target, v, body, if_match=if_match))

    async def delete_item(
        request: Request,
        caller: AuthorizedCaller,
        cp: ControlPlane,
        if_match: str | None,
        force_delete: bool = False,
        **_: Any,
    ) -> Response:
        v = version(request)
        target = rtype.resource_id(request.path_params)
        return reply(await cp.pipeline.delete(caller, rtype, target, v, if_match=if_match, force=force_delete))

    async def list_items(
        request: Request,
        caller: AuthorizedCaller,
        cp: ControlPlane,
        skip_token: str | None,
        top: int | None,
        filter_: str | None = None,
        orderby: str | None = None,
        **_: Any,
    ) -> Response:
        v = version(request)
        params = request.path_params
        r = await cp.pipeline.list(
            caller,
            rtype,
            v,
            subscription_id=params.get("subscriptionId") if rtype.parent is None else None,
            group=params.get("resourceGroupName") if rtype.parent is None else None,
            parent=rtype.container_id(params),
            skip_token=skip_token,
            top=top,
            base_path=request.url.path,
            filter_=filter_,
            orderby=orderby,
        )
        return reply(r)

    item = rtype.item_path
    router.add_api_route(
        item,
        _endpoint(get_item, item, [api_version]),
        methods=["GET"],
        responses=ok,
        operation_id=f"{op_prefix}_Get",
    )
    router.add_api_route(
        item,
        _endpoint(
            put_item,
            item,
            [_param("body", Annotated[rtype.put_model, Body()]), api_version, if_match, if_none_match],
        ),
        methods=["PUT"],
        responses={**ok, 201: {"model": rtype.response_model}},
        operation_id=f"{op_prefix}_Put",
    )
    router.add_api_route(
        item,
        _endpoint(patch_item, item, [_param("body", Annotated[rtype.patch_model, Body()]), api_version, if_match]),
        methods=["PATCH"],
        responses={**ok, 202: {"description": "Accepted"}},
        operation_id=f"{op_prefix}_Update",
    )
    router.add_api_route(
        item,
        _endpoint(delete_item, item, [api_version, if_match, *force]),
        methods=["DELETE"],
        responses={202: {"description": "Accepted"}, 204: {"description": "No content"}},
        operation_id=f"{op_prefix}_Delete",
    )
    collections = [(rtype.collection_path, "List")]
    if rtype.placement is Placement.GROUP:
        collections = [
            (rtype.collection_path, "ListByResourceGroup"),
            (f"/subscriptions/{{subscriptionId}}/providers/{rtype.namespace}/{rtype.type_name}", "ListBySubscription"),
        ]
    for path, name in collections:
        router.add_api_route(
            path,
            _endpoint(list_items, path, [api_version, *paging, *filtering, *ordering]),
            methods=["GET"],
            operation_id=f"{op_prefix}_{name}",
        )
    return router
