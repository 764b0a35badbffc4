"""The extensions routes beyond the generated verbs: the per-resource status monitor the SDKs poll
(``…/extensions/{name}/operations/{operationId}``), answering from the same operation rows as
``operationStatuses``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.configuration.extensions import API_VERSIONS, NAMESPACE
from halyard.core.errors import NotFound

TYPE = f"{NAMESPACE}/extensions"
ITEM = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Kubernetes"
    f"/connectedClusters/{{resourceName}}/providers/{NAMESPACE}/extensions/{{extensionName}}"
)
router = APIRouter(tags=[TYPE], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]


@router.get(ITEM + "/operations/{operationId}", operation_id="Extensions_OperationStatus")
async def extension_operation_status(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    extensionName: str,
    operationId: Annotated[str, Path(max_length=64)],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """An extension operation's status (``{id, name, status, properties, error}``), as the SDKs' monitor reads it."""
    require_api_version(request, API_VERSIONS, TYPE)
    rtype = cp.types.get(TYPE)
    if rtype is None:
        raise NotFound(f"The resource type '{TYPE}' is not served here.", code="ResourceTypeNotFound")
    rid = rtype.resource_id(request.path_params)
    caller.require(rtype.action("read"), str(rid))
    op = await cp.operations.get(operationId)
    if op is None or op.target_id.lower() != str(rid).lower():
        raise NotFound(f"Operation '{operationId}' of extension '{extensionName}' was not found.")
    body = cp.operations.status_body(op)
    body["id"] = f"{rid}/operations/{op.id}"
    body["properties"] = {}
    return JSONResponse(body)
