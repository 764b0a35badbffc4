"""Where ARM clients poll long-running operations: operation status and operation results."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.arm.routes.root import ApiVersion, resources_version
from halyard.controlplane.plane import ControlPlane
from halyard.core.errors import HalyardError, InvalidApiVersion, MissingApiVersion, NotFound
from halyard.store.models import Operation

router = APIRouter(tags=["Operations"], responses=ERRORS)
AnyVersion = Annotated[str | None, Query(alias="api-version", description="Any api-version the provider serves.")]


def _require_any_version(request: Request, cp: ControlPlane, namespace: str) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise MissingApiVersion("The api-version query parameter (?api-version=) is required for all requests.")
    provider = cp.types.provider(namespace)
    versions = {v.lower() for t in (provider.types if provider else []) for v in t.api_versions}
    if version.lower() not in versions:
        raise InvalidApiVersion(f"The api-version '{version}' is not served by '{namespace}'.")
    return version


async def _operation(cp: ControlPlane, caller: Caller, subscription_id: str, namespace: str, op_id: str) -> Operation:
    op = await cp.operations.get(op_id)
    if op is None or op.subscription_id != subscription_id.lower() or op.namespace.lower() != namespace.lower():
        raise NotFound(f"The operation '{op_id}' was not found.", code="OperationNotFound")
    # Whoever may read the target may follow its operations.
    caller.require(f"{op.namespace}/locations/operationStatuses/read", op.target_id)
    return op


def _progress_headers(cp: ControlPlane, op: Operation) -> dict[str, str]:
    return {"Retry-After": str(cp.operations.retry_after)} if op.status == "InProgress" else {}


@router.get(
    "/subscriptions/{subscriptionId}/providers/{providerNamespace}/locations/{location}/operationStatuses/{operationId}",
    operation_id="OperationStatuses_Get",
)
async def operation_status(
    request: Request,
    subscriptionId: str,
    providerNamespace: str,
    location: str,
    operationId: str,
    caller: Caller,
    cp: Plane,
    api_version: AnyVersion = None,
) -> JSONResponse:
    return await _status(request, caller, cp, subscriptionId, providerNamespace, operationId)


@router.get(
    "/providers/{providerNamespace}/locations/{location}/operationStatuses/{operationId}",
    operation_id="TenantOperationStatuses_Get",
)
async def tenant_operation_status(
    request: Request,
    providerNamespace: str,
    location: str,
    operationId: str,
    caller: Caller,
    cp: Plane,
    api_version: AnyVersion = None,
) -> JSONResponse:
    """A tenant resource's operation (it has no subscription to be followed under)."""
    return await _status(request, caller, cp, "", providerNamespace, operationId)


async def _status(
    request: Request, caller: Caller, cp: ControlPlane, subscription_id: str, namespace: str, op_id: str
) -> JSONResponse:
    _require_any_version(request, cp, namespace)
    op = await _operation(cp, caller, subscription_id, namespace, op_id)
    return JSONResponse(cp.operations.status_body(op), headers=_progress_headers(cp, op))


@router.get(
    "/subscriptions/{subscriptionId}/providers/{providerNamespace}/locations/{location}/operationResults/{operationId}",
    operation_id="OperationResults_Get",
)
async def operation_result(
    request: Request,
    subscriptionId: str,
    providerNamespace: str,
    location: str,
    operationId: str,
    caller: Caller,
    cp: Plane,
    api_version: AnyVersion = None,
) -> Response:
    return await _result(request, caller, cp, subscriptionId, providerNamespace, operationId)


@router.get(
    "/providers/{providerNamespace}/locations/{location}/operationResults/{operationId}",
    operation_id="TenantOperationResults_Get",
)
async def tenant_operation_result(
    request: Request,
    providerNamespace: str,
    location: str,
    operationId: str,
    caller: Caller,
    cp: Plane,
    api_version: AnyVersion = None,
) -> Response:
    return await _result(request, caller, cp, "", providerNamespace, operationId)


async def _result(
    request: Request, caller: Caller, cp: ControlPlane, subscription_id: str, namespace: str, op_id: str
) -> Response:
    version = _require_any_version(request, cp, namespace)
    op = await _operation(cp, caller, subscription_id, namespace, op_id)
    if op.status == "InProgress":
        return Response(status_code=202, headers={**_progress_headers(cp, op), "Location": _self_link(cp, request)})
    if op.status != "Succeeded":
        error = HalyardError(
            op.error.get("message", "The operation failed.") if op.error else "The operation failed.",
            code=op.error.get("code", "OperationFailed") if op.error else "OperationFailed",
        )
        return JSONResponse(error.body(), status_code=400)
    if op.action == "resource/delete":
        return Response(status_code=204)
    rid = ResourceId.parse(op.target_id)
    rtype = cp.types.get(rid.full_type)
    body = await cp.pipeline.render_stored(rtype, rid, version) if rtype is not None else None
    if body is None:
        return Response(status_code=204)
    return JSONResponse(body)


@router.get(
    "/subscriptions/{subscriptionId}/operationResults/{operationId}",
    operation_id="ResourceOperationResults_Get",
)
async def resources_operation_result(
    request: Request,
    subscriptionId: str,
    operationId: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> Response:
    resources_version(request)
    op = await cp.operations.get(operationId)
    if op is None or op.subscription_id != subscriptionId.lower() or op.namespace != "Microsoft.Resources":
        raise NotFound(f"The operation '{operationId}' was not found.", code="OperationNotFound")
    caller.require("Microsoft.Resources/subscriptions/operationresults/read", op.target_id)
    if op.status == "InProgress":
        return Response(status_code=202, headers={**_progress_headers(cp, op), "Location": _self_link(cp, request)})
    if op.status != "Succeeded":
        return JSONResponse(
            {"error": op.error or {"code": "OperationFailed", "message": "The operation failed."}},
            status_code=400,
        )
    return Response(status_code=200)


def _self_link(cp: ControlPlane, request: Request) -> str:
    """This request's URL on the configured base URL: never built from the request's Host header, which the
    client writes (a Location pointing at any host it likes would be a redirect it chose)."""
    query = f"?{request.url.query}" if request.url.query else ""
    return f"{cp.settings.base_url}{request.url.path}{query}"
