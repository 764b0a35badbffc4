"""``GET /providers/{namespace}/operations`` for every provider served, listed from its types' declarations."""

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.resourcetypes import Provider, ResourceTypes
from halyard.controlplane.arm.routes.common import ERRORS, Caller


def provider_operations_router(types: ResourceTypes) -> APIRouter:
    router = APIRouter(tags=["Operations"], responses=ERRORS)
    for provider in types.providers.values():
        _add(router, provider)
    return router


def _add(router: APIRouter, provider: Provider) -> None:
    versions = provider.api_versions
    display = f"Halyard {provider.namespace.split('.')[-1]}"

    async def list_operations(
        request: Request, caller: Caller, api_version: Annotated[str | None, api_version_query(versions)] = None
    ) -> JSONResponse:
        # Any signed-in caller may read what a provider offers, as in ARM (no scope to authorize against).
        require_api_version(request, versions, f"{provider.namespace}/operations")
        return JSONResponse({"value": provider.operations(display)})

    router.add_api_route(
        f"/providers/{provider.namespace}/operations",
        list_operations,
        methods=["GET"],
        operation_id=f"{provider.namespace.replace('.', '')}_Operations_List",
    )
