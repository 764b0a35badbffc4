"""The extensions routes beyond the generated verbs: the per-resource status monitor the SDKs poll
(``…/extensions/{name}/operations/{operationId}``), answering from the same operation rows as
``operationStatuses``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.configuration.extensions import API_VERSIONS, NAMESPACE
from halyard.controlplane.plane import ControlPlane
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
    return await operation_status(request, caller, cp, TYPE, API_VERSIONS, operationId, f"extension '{extensionName}'")


async def operation_status(
    request: Request, caller: AuthorizedCaller, cp: ControlPlane, full_type: str, versions: Sequence[str],
    operation_id: str, described: str,
) -> JSONResponse:  # fmt: skip
    """The per-resource status monitor of a configuration type (extensions, Flux configurations): the operation of
    the resource the path names, from the same rows as ``operationStatuses``."""
    require_api_version(request, versions, full_type)
    rtype = cp.types.get(full_type)
    if rtype is None:
        raise NotFound(f"The resource type '{full_type}' is not served here.", code="ResourceTypeNotFound")
    rid = rtype.resource_id(request.path_params)
    caller.require(rtype.action("read"), str(rid))
    op = await cp.operations.get(operation_id)
    if op is None or op.target_id.lower() != str(rid).lower():
        raise NotFound(f"Operation '{operation_id}' of {described} was not found.")
    body = cp.operations.status_body(op)
    body["id"] = f"{rid}/operations/{op.id}"
    body["properties"] = {}
    return JSONResponse(body)
