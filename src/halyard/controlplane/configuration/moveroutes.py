"""The region move's two Halyard-only actions on a connected cluster (``snapshots.py``):

``POST …/connectedClusters/{name}/snapshotConfiguration`` saves its configuration resources, protected settings
sealed in the store; ``POST …/connectedClusters/{name}/restoreConfiguration`` with ``{"sourceClusterId": …}``
recreates them under this cluster (``"discardSnapshot": true``: deletes the snapshot once all are there).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.configuration.snapshots import CLUSTERS, ConfigurationSnapshots
from halyard.controlplane.plane import ControlPlane

API_VERSIONS = ("2026-01-01",)
ITEM = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Kubernetes"
    "/connectedClusters/{resourceName}"
)
router = APIRouter(tags=[f"{CLUSTERS} (Halyard)"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]


class RestoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    sourceClusterId: Annotated[str, Field(min_length=1, max_length=1024)]
    discardSnapshot: bool = False


def _snapshots(cp: ControlPlane) -> ConfigurationSnapshots:
    return ConfigurationSnapshots(cp.db, cp.types, cp.pipeline, cp.sealer, cp.clock)


def _cluster_id(request: Request, cp: ControlPlane) -> ResourceId:
    """The connected cluster the request names, its api-version checked."""
    require_api_version(request, API_VERSIONS, CLUSTERS)
    clusters = cp.types.get(CLUSTERS)
    assert clusters is not None  # declared by every control plane: the type these actions extend
    return clusters.resource_id(request.path_params)


@router.post(ITEM + "/snapshotConfiguration", operation_id="connectedClusters_SnapshotConfiguration")
async def snapshot_configuration(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """Save this cluster's configuration resources for a region move (what GET shows of them is answered)."""
    return JSONResponse(await _snapshots(cp).snapshot(caller, _cluster_id(request, cp)))


@router.post(ITEM + "/restoreConfiguration", operation_id="connectedClusters_RestoreConfiguration")
async def restore_configuration(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    body: Annotated[RestoreRequest, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """Recreate under this cluster what the source cluster's snapshot holds and it lacks."""
    target = _cluster_id(request, cp)
    answer = await _snapshots(cp).restore(caller, target, body.sourceClusterId, discard=body.discardSnapshot)
    if any(item["status"] == "Created" for item in answer.get("restored", ())):
        cp.operations.kick()
    return JSONResponse(answer)
