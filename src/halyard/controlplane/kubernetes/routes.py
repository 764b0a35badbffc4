"""The connectedClusters routes beyond the generated verbs: user credentials (cluster connect)."""

from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.kubernetes.connectedclusters import API_VERSIONS, LIST_USER_CREDENTIAL, NAMESPACE
from halyard.controlplane.kubernetes.models import CredentialRequest
from halyard.core.errors import HalyardError

router = APIRouter(tags=[f"{NAMESPACE}/connectedClusters"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]
TYPE = f"{NAMESPACE}/connectedClusters"


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
    rtype = cp.types.get(TYPE)
    assert rtype is not None
    rid = rtype.resource_id(request.path_params)
    caller.require(rtype.action(f"{LIST_USER_CREDENTIAL.name}/action"), str(rid))
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
