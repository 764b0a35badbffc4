"""The connectedClusters routes beyond the five verbs: provider operations and user credentials."""

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.kubernetes.connectedclusters import API_VERSIONS, NAMESPACE
from halyard.controlplane.kubernetes.models import CredentialRequest
from halyard.core.errors import HalyardError

router = APIRouter(tags=[f"{NAMESPACE}/connectedClusters"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]
TYPE = f"{NAMESPACE}/connectedClusters"

OPERATIONS = [
    ("connectedClusters/read", "Read connected cluster", "Read a connected cluster and its status."),
    (
        "connectedClusters/write",
        "Create or update connected cluster",
        "Onboard or update a connected cluster.",
    ),
    (
        "connectedClusters/delete",
        "Delete connected cluster",
        "Remove a connected cluster and revoke its identity.",
    ),
    (
        "connectedClusters/listClusterUserCredential/action",
        "List cluster user credential",
        "Get credentials to reach the cluster's API server through cluster connect.",
    ),
    ("locations/operationStatuses/read", "Read operation status", "Follow a long-running operation."),
    ("operations/read", "List operations", "List the operations of Microsoft.Kubernetes."),
]


@router.get(f"/providers/{NAMESPACE}/operations", operation_id="Operations_Get")
async def list_operations(request: Request, caller: Caller, cp: Plane, api_version: ApiVersion = None) -> JSONResponse:
    require_api_version(request, API_VERSIONS, f"{NAMESPACE}/operations")
    value = [
        {
            "name": f"{NAMESPACE}/{op}",
            "display": {
                "provider": "Halyard Kubernetes",
                "resource": op.split("/")[0],
                "operation": title,
                "description": description,
            },
        }
        for op, title, description in OPERATIONS
    ]
    return JSONResponse({"value": value})


@router.post(
    f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{NAMESPACE}/connectedClusters"
    "/{resourceName}/listClusterUserCredential",
    operation_id="connectedClusters_ListClusterUserCredential",
)
async def list_cluster_user_credential(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    resourceName: str,
    body: Annotated[CredentialRequest, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    version = require_api_version(request, API_VERSIONS, TYPE)
    rid = ResourceId(subscriptionId, resourceGroupName, NAMESPACE, "connectedClusters", resourceName)
    caller.require(f"{TYPE}/listClusterUserCredential/action", str(rid))
    rtype = cp.types.get(TYPE)
    assert rtype is not None
    await cp.pipeline.get(caller, rtype, rid, version)  # 404 for a cluster that does not exist
    raise HalyardError(
        "Cluster connect is not available in this Halyard release: listClusterUserCredential has no relay to "
        "issue credentials for yet. Reach the cluster's API server directly until cluster connect ships.",
        code="ClusterConnectNotAvailable",
    )


@router.get(f"/subscriptions/{{subscriptionId}}/providers/{NAMESPACE}/agentVersions", operation_id="AgentVersions_List")
async def list_agent_versions(
    request: Request, subscriptionId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    """The agent versions this control plane offers (a Halyard addition; Azure's CLI asks its data plane for the
    chart instead): what ``arcAgentProfile.desiredAgentVersion`` accepts, highest first, so a client can check a
    version before it changes anything. Readable by whoever may read connected clusters in the subscription."""
    require_api_version(request, API_VERSIONS, f"{NAMESPACE}/agentVersions")
    caller.require_at_or_below(f"{TYPE}/read", f"/subscriptions/{subscriptionId}")
    catalog = cp.settings.agent_catalog
    value = [{"name": v, "properties": {"latest": v == catalog.latest}} for v in catalog.versions]
    return JSONResponse({"value": value})
