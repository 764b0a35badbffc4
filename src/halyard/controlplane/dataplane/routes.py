"""The data plane's HTTP face, under ``/dp``. Every call carries an agent token (agent audience, cluster caller)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from halyard.api.agents import DP_HEARTBEAT_PATH, Heartbeat, HeartbeatReply, endpoints_version
from halyard.controlplane.agentfacing.callers import AgentCaller
from halyard.controlplane.configuration import routes as configuration
from halyard.controlplane.configuration import typeroutes as extension_types
from halyard.controlplane.dataplane import checkaccess
from halyard.controlplane.plane import ControlPlane, plane

router = APIRouter(prefix="/dp", tags=["dp"])
Plane = Annotated[ControlPlane, Depends(plane)]
router.include_router(checkaccess.router)  # POST /dp/v1/checkaccess: guard's access checks (azure-rbac)
router.include_router(configuration.router)  # /dp/v1/configurations: desired configuration, long-polled; reports
router.include_router(extension_types.dp_router)  # /dp/v1/extensionTypes/T/versions/V/chart: published charts


@router.post(DP_HEARTBEAT_PATH, operation_id="Dp_Heartbeat")
async def heartbeat(body: Heartbeat, cp: Plane, agent: AgentCaller) -> HeartbeatReply:
    """Record the cluster's metadata and that it is alive now; tell the agents where to go when their map is not
    the cluster's (it joined or left a private link scope): the beat stays small otherwise."""
    reply = await cp.heartbeats.record(agent.caller, body)
    if body.endpointsVersion is None and agent.private_scope is None:
        return reply  # an older agent that cannot say which map it follows: told only of a private link map
    endpoints = cp.endpoints.for_cluster(agent.cluster_id, agent.arrival, agent.private_scope)
    version = endpoints_version(endpoints)
    if body.endpointsVersion == version:
        return reply
    return reply.model_copy(update={"endpoints": endpoints, "endpointsVersion": version})
