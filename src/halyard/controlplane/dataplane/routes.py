"""The data plane's HTTP face, under ``/dp``. Every call carries an agent token (agent audience, cluster caller)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from halyard.api.agents import DP_HEARTBEAT_PATH, Heartbeat, HeartbeatReply
from halyard.controlplane.his.identities import PRINCIPAL_KIND
from halyard.controlplane.identity.tokens import Caller
from halyard.controlplane.plane import ControlPlane, plane
from halyard.core.errors import Unauthenticated

router = APIRouter(prefix="/dp", tags=["dp"])
Plane = Annotated[ControlPlane, Depends(plane)]
_bearer = HTTPBearer(auto_error=False, description="An agent token: the agent audience, a cluster identity.")


async def agent_caller(
    cp: Plane, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Caller:
    """The cluster an agent token proves; the identity's liveness is checked where the request touches the store."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("The 'Authorization' header is missing or not a Bearer token.")
    caller = await cp.tokens.verify(credentials.credentials, audience=cp.settings.agent_audience)
    if caller.kind != PRINCIPAL_KIND:
        raise Unauthenticated("Only connected-cluster agents may call the data plane.", code="NotAClusterIdentity")
    return caller


@router.post(DP_HEARTBEAT_PATH, operation_id="Dp_Heartbeat")
async def heartbeat(body: Heartbeat, cp: Plane, caller: Annotated[Caller, Depends(agent_caller)]) -> HeartbeatReply:
    """Record the cluster's metadata and that it is alive now."""
    return await cp.heartbeats.record(caller, body)
