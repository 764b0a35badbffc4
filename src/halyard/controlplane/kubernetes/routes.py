"""The connectedClusters routes beyond the generated verbs: user credentials (cluster connect) and counts by status."""

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse

from halyard.api.cluster import FEATURE_CLUSTER_CONNECT
from halyard.controlplane.activity.events import record_answered
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.arm.visibility import permitted
from halyard.controlplane.kubernetes.connectedclusters import API_VERSIONS, LIST_USER_CREDENTIAL, NAMESPACE
from halyard.controlplane.kubernetes.models import CredentialRequest
from halyard.controlplane.kubernetes.statuscounts import count_by_status
from halyard.controlplane.relay.credentials import user_credential
from halyard.core.errors import HalyardError
from halyard.store.models import ResourceReport

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
    token_mode = body.authenticationMethod == "Token"
    if token_mode and not body.clientProxy:
        raise HalyardError(
            "authenticationMethod 'Token' needs clientProxy true: kubectl's bearer token is then the service-account "
            "token for the API server and cannot also prove who you are to the relay. Use `halyard connectedk8s "
            "proxy --token SA_TOKEN`, or authenticationMethod 'AAD'.",
            code="InvalidRequestContent",
        )
    async with cp.db.session() as session:
        report = await session.get(ResourceReport, (str(rid).lower(), "dp"))
    features = (report.properties if report is not None else {}).get("features")
    if isinstance(features, list) and FEATURE_CLUSTER_CONNECT not in features:
        raise HalyardError(
            f"Cluster connect is disabled on '{resourceName}'. Enable it with `halyard connectedk8s enable-features "
            f"-g {resourceGroupName} -n {resourceName} --features cluster-connect`.",
            code="ClusterConnectDisabled",
        )
    cluster_id = str(rid)
    answer = user_credential(cp.settings, cp.tokens, caller, cluster_id, token_mode=token_mode, now=cp.clock.now())
    # Who was handed a way into the cluster is in the activity log, as on Azure (never the credential itself).
    await record_answered(
        cp.db, at=cp.clock.now(), caller=caller.caller, resource_id=cluster_id,
        operation_name=rtype.action(f"{LIST_USER_CREDENTIAL.name}/action"), http_method="POST",
    )  # fmt: skip
    return JSONResponse(answer)


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


_COUNTS = f"/providers/{NAMESPACE}/connectedClusters/statusCounts"


@router.post(f"/subscriptions/{{subscriptionId}}{_COUNTS}", operation_id="connectedClusters_StatusCountsBySubscription")
async def status_counts_in_subscription(
    request: Request, subscriptionId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    """Halyard's addition: the caller's clusters in the subscription counted by connectivityStatus."""
    return await _status_counts(request, cp, caller, subscriptionId, None)


@router.post(
    f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}{_COUNTS}",
    operation_id="connectedClusters_StatusCountsByResourceGroup",
)
async def status_counts_in_group(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """Halyard's addition: the caller's clusters in the resource group counted by connectivityStatus."""
    return await _status_counts(request, cp, caller, subscriptionId, resourceGroupName)


async def _status_counts(
    request: Request, cp: Plane, caller: Caller, subscription_id: str, group: str | None
) -> JSONResponse:
    """Authorized as the list is (a read role at or below the scope, checked before anything is looked up), counted
    over exactly the clusters that list would show the caller."""
    require_api_version(request, API_VERSIONS, TYPE)
    rtype = cp.types.get(TYPE)
    assert rtype is not None
    read = rtype.action("read")
    scope = f"/subscriptions/{subscription_id}" + (f"/resourceGroups/{group}" if group else "")
    caller.require_at_or_below(read, scope)
    if group:
        await cp.directory.group(subscription_id, group)
    else:
        await cp.directory.subscription(subscription_id)
    counts = await count_by_status(
        cp.db,
        type_key=rtype.key,
        subscription_id=subscription_id,
        group=group,
        visible=permitted(caller, read, scope),
        now=cp.clock.now(),
        offline_after=dt.timedelta(seconds=cp.settings.offline_threshold_seconds),
    )
    return JSONResponse({"total": sum(counts.values()), "byConnectivityStatus": counts})
