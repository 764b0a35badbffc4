"""The gateway routes beyond the generated verbs: its audit (read-only: no route writes or erases a row) and the
clusters linked to it with when each was last seen through it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select

from halyard.api.agents import GATEWAY_NETWORK_PATH, AgentNetwork
from halyard.controlplane.agentfacing.callers import AgentCaller
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.gateway.audit import ALLOWED, DENIED, GatewayAudit
from halyard.controlplane.gateway.links import REPORTER
from halyard.controlplane.gateway.resources import API_VERSIONS, NAMESPACE
from halyard.core.errors import InvalidRequest, NotFound
from halyard.store.models import Resource, ResourceReport

PROXY_FEATURE = "proxy"  # the cluster's arcAgentryConfigurations entry `connectedk8s --proxy-*` writes
router = APIRouter(tags=[f"{NAMESPACE}/gateways"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]
TYPE = f"{NAMESPACE}/gateways"
GATEWAY = (
    f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{NAMESPACE}/gateways"
    "/{gatewayName}"
)
MAX_PAGE = 1000


async def _gateway(request: Request, caller: Caller, cp: Plane) -> str:
    version = require_api_version(request, API_VERSIONS, TYPE)
    rtype = cp.types.get(TYPE)
    assert rtype is not None
    rid = rtype.resource_id({**request.path_params, "resourceName": request.path_params["gatewayName"]})
    caller.require(rtype.action("read"), str(rid))
    reply = await cp.pipeline.get(caller, rtype, rid, version)  # 404 for a gateway that does not exist
    assert reply.body is not None
    return str(reply.body["id"])


def _since(value: str | None) -> dt.datetime | None:
    if value is None:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest("since must be an ISO 8601 time, as 2026-12-06T01:00:00Z.", target="since") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@router.get(f"{GATEWAY}/auditRecords", operation_id="gateways_ListAuditRecords")
async def list_audit_records(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    gatewayName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    clusterId: Annotated[str | None, Query(max_length=1024)] = None,
    since: Annotated[str | None, Query(max_length=64)] = None,
    verdict: Annotated[str | None, Query(max_length=16)] = None,
    after: Annotated[int, Query(ge=0, le=2**62, description="Only rows after this record id (to follow).")] = 0,
    top: Annotated[int, Query(alias="$top", ge=1, le=MAX_PAGE)] = MAX_PAGE,
) -> JSONResponse:
    """One row per connection through this gateway, oldest first; ``after`` the last id seen to follow."""
    gateway_id = await _gateway(request, caller, cp)
    if verdict is not None and verdict not in (ALLOWED, DENIED):
        raise InvalidRequest(f"verdict is {ALLOWED} or {DENIED}.", target="verdict")
    rows = await request.app.state.gateway.audit.read(
        gateway_id, cluster_id=clusterId, since=_since(since), verdict=verdict, after_id=after, limit=top
    )
    return JSONResponse({"value": [{"id": row_id, **record.body()} for row_id, record in rows]})


@router.get(f"{GATEWAY}/linkedClusters", operation_id="gateways_ListLinkedClusters")
async def list_linked_clusters(
    request: Request,
    subscriptionId: str,
    resourceGroupName: str,
    gatewayName: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """The clusters linked to this gateway and when each was last seen through it (None: not yet): once every one
    has been seen, the old firewall rules for the other names can go."""
    gateway_id = await _gateway(request, caller, cp)
    async with cp.db.session() as session:
        reports = (await session.scalars(select(ResourceReport).where(ResourceReport.reporter == REPORTER))).all()
        linked = [
            r.id_key
            for r in reports
            if str((r.properties.get("gateway") or {}).get("resourceId", "")).lower() == gateway_id.lower()
        ]
        seen = dict(
            (
                await session.execute(
                    select(GatewayAudit.cluster_id, func.max(GatewayAudit.at))
                    .where(GatewayAudit.gateway_key == gateway_id.lower(), GatewayAudit.verdict == ALLOWED)
                    .group_by(GatewayAudit.cluster_id)
                )
            ).all()
        )
    seen_lower = {str(k).lower(): v for k, v in seen.items() if k}
    value = [
        {
            "clusterId": key,
            "lastSeen": seen_lower[key].isoformat().replace("+00:00", "Z") if key in seen_lower else None,
        }
        for key in sorted(linked)
    ]
    return JSONResponse({"value": value})


@router.get(GATEWAY_NETWORK_PATH, operation_id="Gateway_AgentNetwork", response_model=AgentNetwork)
async def agent_network(agent: AgentCaller, cp: Plane) -> AgentNetwork:
    """Where this cluster's agents send their connections: its gateway and its proxy settings (agent token)."""
    async with cp.db.session() as session:
        cluster = await session.get(Resource, agent.cluster_id.lower())
        report = await session.get(ResourceReport, (agent.cluster_id.lower(), REPORTER))
        link = (report.properties.get("gateway") or {}) if report is not None else {}
        gateway = await session.get(Resource, str(link["resourceId"]).lower()) if link.get("enabled") else None
    if cluster is None:
        raise NotFound("The cluster was deleted.", code="ResourceNotFound")
    proxy: dict[str, Any] = next(
        (c for c in cluster.properties.get("arcAgentryConfigurations") or [] if c.get("feature") == PROXY_FEATURE),
        {},
    )
    sealed = cp.sealer.unseal_json(cluster.sealed) if cluster.sealed is not None else {}
    protected = (sealed or {}).get(PROXY_FEATURE, {}) if isinstance(sealed, dict) else {}
    settings = proxy.get("settings") or {}
    endpoint = None
    if gateway is not None and cp.settings.gateway_port is not None:
        endpoint = f"{gateway.properties.get('gatewayEndpoint')}:{cp.settings.gateway_port}"
    return AgentNetwork(
        gateway=endpoint,
        gatewayResourceId=gateway.id if gateway is not None else None,
        httpsProxy=protected.get("httpsProxy"),
        httpProxy=protected.get("httpProxy"),
        noProxy=settings.get("noProxy"),
        proxyCert=settings.get("proxyCert"),
    )
