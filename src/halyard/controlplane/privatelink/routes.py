"""A scope's private link resources (read-only): the one group id endpoints connect to, the services it serves
(``requiredMembers``) and the private zone their names live in (``requiredZoneNames``), as
``az network private-link-resource list --type Microsoft.HybridCompute/privateLinkScopes`` reads them. And a
cluster's recent private link refusals (a Halyard addition, for ``connectedk8s troubleshoot``)."""

from typing import Annotated, Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.agentfacing.enforcement import recent_refusals
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.kubernetes.connectedclusters import API_VERSIONS as CLUSTER_API_VERSIONS
from halyard.controlplane.privatelink import names
from halyard.controlplane.privatelink.scopes import API_VERSIONS, SCOPES
from halyard.core.errors import NotFound
from halyard.core.settings import Settings

router = APIRouter(tags=[SCOPES], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]
BASE = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.HybridCompute"
    "/privateLinkScopes/{scopeName}/privateLinkResources"
)


def link_resource(settings: Settings, scope_id: str) -> dict[str, Any]:
    return {
        "id": f"{scope_id}/privateLinkResources/{names.GROUP_ID}",
        "name": names.GROUP_ID,
        "type": f"{SCOPES}/privateLinkResources",
        "properties": {
            "groupId": names.GROUP_ID,
            "requiredMembers": list(names.MEMBERS),
            "requiredZoneNames": [names.zone(settings)],
        },
    }


async def _scope_id(request: Request, caller: Caller, cp: Plane) -> str:
    version = require_api_version(request, API_VERSIONS, f"{SCOPES}/privateLinkResources")
    rtype = cp.types.get(SCOPES)
    assert rtype is not None
    rid = rtype.resource_id(request.path_params)
    reply = await cp.pipeline.get(caller, rtype, rid, version)  # read access to the scope, 404 when it is missing
    assert reply.body is not None
    return str(reply.body["id"])


@router.get(BASE, operation_id="PrivateLinkResources_ListByPrivateLinkScope")
async def list_link_resources(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    scopeName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    scope_id = await _scope_id(request, caller, cp)
    return JSONResponse({"value": [link_resource(cp.settings, scope_id)]})


@router.get(BASE + "/{groupName}", operation_id="PrivateLinkResources_Get")
async def get_link_resource(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    scopeName: str,
    groupName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    scope_id = await _scope_id(request, caller, cp)
    if groupName.lower() != names.GROUP_ID:
        raise NotFound(f"Private link resource '{groupName[:100]}' was not found; the only one is '{names.GROUP_ID}'.")
    return JSONResponse(link_resource(cp.settings, scope_id))


CLUSTERS = "Microsoft.Kubernetes/connectedClusters"


@router.get(
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Kubernetes"
    "/connectedClusters/{resourceName}/privateLinkRefusals",
    tags=[CLUSTERS],
    operation_id="ConnectedClusters_ListPrivateLinkRefusals",
)
async def list_refusals(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    caller: Caller,
    cp: Plane,
    api_version: Annotated[str | None, api_version_query(CLUSTER_API_VERSIONS)] = None,
) -> JSONResponse:
    """The cluster's newest private link refusals (``RECENT_REFUSALS`` at most, newest first: time, rule, arrival),
    to whoever may read the cluster."""
    version = require_api_version(request, CLUSTER_API_VERSIONS, f"{CLUSTERS}/privateLinkRefusals")
    rtype = cp.types.get(CLUSTERS)
    assert rtype is not None
    rid = rtype.resource_id(request.path_params)
    await cp.pipeline.get(caller, rtype, rid, version)  # read access to the cluster, 404 when it is missing
    return JSONResponse({"value": await recent_refusals(cp.db, str(rid))})
