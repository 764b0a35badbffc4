"""Who is calling an agent-facing service: the connected cluster an agent token proves, and how it arrived.

One dependency for every agent-facing route that takes agent tokens (dp today; relay and gateway next): the token
is verified for the agent audience, the caller must be a cluster identity, and the cluster's resource id comes with
it. Whether the identity is still alive is checked where the request touches the store (dp checks a whole batch of
beats with one read), so a revoked cluster is refused there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from halyard.controlplane.agentfacing.arrival import Arrival, arrival_of
from halyard.controlplane.agentfacing.enforcement import Enforcement
from halyard.controlplane.his.identities import PRINCIPAL_KIND
from halyard.controlplane.identity.tokens import Caller
from halyard.controlplane.plane import ControlPlane, control_plane, plane
from halyard.core.errors import Unauthenticated

_bearer = HTTPBearer(auto_error=False, description="An agent token: the agent audience, a cluster identity.")


@dataclass(frozen=True)
class AgentRequest:
    caller: Caller
    cluster_id: str  # the connected cluster's resource id
    arrival: Arrival
    private_scope: str | None = None  # the privateLinkScopeId of the cluster's scope (private link), if any


async def agent_request(
    request: Request,
    cp: Annotated[ControlPlane, Depends(plane)],
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> AgentRequest:
    """The calling cluster (from its agent token) and how its connection arrived; 401 otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated("The 'Authorization' header is missing or not a Bearer token.")
    caller, cluster_id = await cluster_of_agent_token(cp, credentials.credentials)
    arrival = arrival_of(request)
    facts = await enforcement_of(request).enforce(cluster_id, arrival)  # private link: 403 naming the rule
    return AgentRequest(caller, cluster_id, arrival, facts.scope_uuid)


def enforcement_of(request: Request) -> Enforcement:
    """The process's private link enforcement, one of the control plane's services."""
    return control_plane(request).enforcement


async def cluster_of_agent_token(cp: ControlPlane, token: str) -> tuple[Caller, str]:
    """The cluster identity an agent token proves and its cluster's resource id; Unauthenticated otherwise."""
    caller = await cp.tokens.verify(token, audience=cp.settings.agent_audience)
    if caller.kind != PRINCIPAL_KIND:
        raise Unauthenticated("Only connected-cluster agents may call this service.", code="NotAClusterIdentity")
    # The token names its cluster (its xms_mirid claim); one minted before it did is looked up once.
    cluster_id = caller.resource_id or await cp.clusters_of_identities.resolve(caller.object_id)
    if cluster_id is None:
        raise Unauthenticated(
            "The cluster identity behind this token was revoked (the connected cluster was deleted).",
            code="ClusterIdentityRevoked",
        )
    return caller, cluster_id


AgentCaller = Annotated[AgentRequest, Depends(agent_request)]
