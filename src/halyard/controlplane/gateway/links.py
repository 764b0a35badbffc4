"""A cluster's link to a gateway: validated, written as the cluster's ``gateway`` report, read back when rendered.

The link is written by ``settings/default`` (what ``az arcgateway settings update`` and ``az connectedk8s update
--gateway-resource-id`` send) and by a ``connectedClusters`` PUT/PATCH carrying ``properties.gateway`` (the newest
CLI's shape). Both write the one report, so the cluster's ``gateway`` and the gateway service agree whichever path
wrote last, and neither overwrites what users wrote on the cluster (decision 006: reports apart from spec).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.paths import ResourceId
from halyard.core.errors import InvalidRequest, NotFound
from halyard.store.models import Resource, ResourceReport, Subscription
from halyard.store.reports import Report, put_reports

REPORTER = "gateway"
GATEWAY_TYPE_KEY = "microsoft.hybridcompute/gateways"
# As the Azure CLI validates --gateway-resource-id (AZK8S0106), case-insensitive like every ARM id.
GATEWAY_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/resourceGroups/"
    r"[a-zA-Z0-9_.()-]+/providers/Microsoft\.HybridCompute/gateways/[a-zA-Z0-9_-]+$",
    re.IGNORECASE,
)
DISABLED: dict[str, Any] = {"enabled": False}


def check_gateway_id(value: str, target: str) -> ResourceId:
    if not GATEWAY_ID.match(value):
        raise InvalidRequest(
            f"{target} must be a gateway's resource id: /subscriptions/<guid>/resourceGroups/<group>/providers/"
            "Microsoft.HybridCompute/gateways/<name>.",
            code="InvalidGatewayResourceId",
            target=target,
        )
    return ResourceId.parse(value)


def gateway_of(properties: Mapping[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
    """The cluster's effective gateway: the last written link (the report), else what its properties say."""
    linked = reported.get("gateway")
    if isinstance(linked, dict):
        return dict(linked)
    own = properties.get("gateway")
    return dict(own) if isinstance(own, dict) else dict(DISABLED)


async def linked_gateway(session: AsyncSession, cluster_key: str) -> dict[str, Any] | None:
    """The cluster's current link report, if any link was ever written."""
    report = await session.get(ResourceReport, (cluster_key, REPORTER))
    return dict(report.properties.get("gateway") or DISABLED) if report is not None else None


async def write_link(
    session: AsyncSession,
    cluster: Resource,
    gateway_id: str | None,
    now: dt.datetime,
    *,
    target: str,
    properties: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Link ``cluster`` (with ``properties`` about to be written, else its stored ones) to a gateway (None: unlink), in the caller's transaction. Refused: a malformed id, a gateway
    that does not exist or belongs to another tenant, a cluster using private link (Arc's limits)."""
    if gateway_id:
        rid = check_gateway_id(gateway_id, target)
        gateway = await session.get(Resource, rid.key)
        if gateway is None or gateway.type_key != GATEWAY_TYPE_KEY:
            raise NotFound(f"The gateway '{gateway_id}' was not found.", code="GatewayNotFound")
        tenants = set(
            (
                await session.scalars(
                    select(Subscription.tenant_id).where(
                        Subscription.id.in_({gateway.subscription_id or "", cluster.subscription_id or ""})
                    )
                )
            ).all()
        )
        if len(tenants) != 1:
            raise InvalidRequest(
                "A gateway may be used only by clusters of its own tenant.", code="GatewayInAnotherTenant"
            )
        props = properties if properties is not None else (cluster.properties or {})
        if props.get("privateLinkState") == "Enabled":
            raise InvalidRequest(
                "A cluster using private link cannot use a gateway (Arc gateway limits): disable private link first.",
                code="GatewayWithPrivateLink",
                target=target,
            )
        link: dict[str, Any] = {"enabled": True, "resourceId": gateway.id}
    else:
        link = dict(DISABLED)
    await put_reports(session, [Report(cluster.id_key, REPORTER, {"gateway": link}, now)])
    return link
