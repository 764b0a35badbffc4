"""The Flux configurations' routes beyond the generated verbs: the per-resource status monitor the SDKs poll
(``…/fluxConfigurations/{name}/operations/{operationId}``) and the events flux-logs-agent shipped
(``…/fluxConfigurations/{name}/events``, Halyard's own: what ``halyard k8s-configuration flux logs`` reads)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.configuration.armroutes import operation_status
from halyard.controlplane.configuration.fluxconfigs import FLUX_API_VERSIONS, FLUX_TYPE, LOGS_REPORTER, NAMESPACE
from halyard.core.errors import NotFound
from halyard.store.models import Resource, ResourceReport

TYPE = f"{NAMESPACE}/{FLUX_TYPE}"
ITEM = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Kubernetes"
    f"/connectedClusters/{{resourceName}}/providers/{NAMESPACE}/{FLUX_TYPE}/{{fluxConfigurationName}}"
)
router = APIRouter(tags=[TYPE], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(FLUX_API_VERSIONS)]


@router.get(ITEM + "/operations/{operationId}", operation_id="FluxConfigOperationStatus_Get")
async def flux_operation_status(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    fluxConfigurationName: str,
    operationId: Annotated[str, Path(max_length=64)],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """A Flux configuration operation's status (``{id, name, status, properties, error}``)."""
    described = f"Flux configuration '{fluxConfigurationName}'"
    return await operation_status(request, caller, cp, TYPE, FLUX_API_VERSIONS, operationId, described)


@router.get(ITEM + "/events", operation_id="FluxConfigurations_ListEvents")
async def flux_events(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    fluxConfigurationName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """The newest events of the configuration's Flux objects, oldest first (``{value: [...]}``)."""
    require_api_version(request, FLUX_API_VERSIONS, TYPE)
    rtype = cp.types.get(TYPE)
    if rtype is None:
        raise NotFound(f"The resource type '{TYPE}' is not served here.", code="ResourceTypeNotFound")
    rid = rtype.resource_id(request.path_params)
    caller.require(rtype.action("read"), str(rid))
    async with cp.db.session() as session:
        if await session.get(Resource, rid.key) is None:
            raise NotFound(f"The Flux configuration '{fluxConfigurationName}' was not found.", code="ResourceNotFound")
        row = await session.get(ResourceReport, (rid.key, LOGS_REPORTER))
    events = list((row.properties or {}).get("events") or []) if row is not None else []
    return JSONResponse({"value": events})
