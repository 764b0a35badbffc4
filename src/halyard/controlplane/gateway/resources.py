"""``Microsoft.HybridCompute/gateways`` and the cluster extension ``settings/default`` that links a cluster to one.

A gateway is ready when its row is (no infrastructure to build per gateway: the control plane serves every
gateway's endpoint), so creation is an operation that ends in a second, not Arc's ten minutes.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.proxytypes import hybrid_type
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    Placement,
    PlainBehaviour,
    RenderContext,
    ResourceType,
    WriteContext,
)
from halyard.controlplane.gateway import features
from halyard.controlplane.gateway.links import write_link
from halyard.controlplane.gateway.models import (
    GatewayPatch,
    GatewayPut,
    SettingsPatch,
    SettingsPut,
)
from halyard.core.errors import Conflict, InvalidRequest
from halyard.core.settings import Settings
from halyard.store.database import lock_key
from halyard.store.models import Resource, Subscription

NAMESPACE = "Microsoft.HybridCompute"
# az arcgateway (2024-07-31-preview), azure-mgmt-hybridcompute 10.0.0 (2026-07-15), the spec's newest.
API_VERSIONS = ("2026-09-01", "2026-07-15", "2026-06-16-preview", "2024-07-31-preview")
GATEWAYS_PER_SUBSCRIPTION = 5
GATEWAY_NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9_-]{0,63}$")
GATEWAY_NAME_RULE = "It must be 1-64 letters, digits, '_' and '-', starting with a letter or digit."
SETTINGS_NAME = re.compile(r"^default$", re.IGNORECASE)


def gateway_endpoint(gateway_id: str, settings: Settings) -> str:
    """``<prefix>.gw.<domain>``: the one name an enterprise proxy must allow (Arc's ``<prefix>.gw.arc.azure.com``)."""
    return f"{gateway_id.replace('-', '')[:16]}.gw.{settings.domain or 'halyard.local'}"


def quota_key(subscription_id: str) -> str:
    """The lock creates of one subscription's gateways take while they count them."""
    return f"gateway-quota:{subscription_id.lower()}"


def _features(value: list[str] | None, old: list[str] | None) -> list[str]:
    chosen = list(value) if value is not None else (old or [features.ALL])
    unknown = features.unknown_features(chosen)
    if unknown or not chosen:
        raise InvalidRequest(
            f"properties.allowedFeatures may hold {', '.join(repr(k) for k in features.KNOWN)}; "
            f"not {', '.join(repr(u) for u in unknown) or 'an empty list'}.",
            code="InvalidAllowedFeatures",
            target="properties.allowedFeatures",
        )
    return sorted(set(chosen))


class GatewayBehaviour(PlainBehaviour):
    """At most five per subscription (counted in the write's transaction, under the subscription's quota lock), an
    id and endpoint fixed at creation."""

    def __init__(self) -> None:
        self.rtype: ResourceType | None = None

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, GatewayPut) and self.rtype is not None
        old = existing.properties if existing is not None else {}
        if existing is None:
            # Two creates in one subscription would both count 4 on PostgreSQL: the second waits for the first here.
            await lock_key(ctx.session, quota_key(ctx.resource_id.subscription_id or ""))
            count = await ctx.count(self.rtype, subscription_id=ctx.resource_id.subscription_id)
            if count >= GATEWAYS_PER_SUBSCRIPTION:
                raise Conflict(
                    f"A subscription holds at most {GATEWAYS_PER_SUBSCRIPTION} gateways ({count} exist): delete one "
                    "or use another subscription (every cluster of the tenant may use any of its gateways).",
                    code="GatewayQuotaExceeded",
                )
        given = body.properties.model_dump(exclude_none=True) if body.properties else {}
        gateway_id = old.get("gatewayId") or str(uuid.uuid4())
        props = {
            "gatewayType": given.get("gatewayType", "Public"),
            "allowedFeatures": _features(given.get("allowedFeatures"), old.get("allowedFeatures")),
            "gatewayId": gateway_id,
            "gatewayEndpoint": old.get("gatewayEndpoint") or gateway_endpoint(gateway_id, ctx.settings),
        }
        return Desired(location=body.location, tags=body.tags or {}, properties=props)

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, GatewayPatch)
        props = dict(existing.properties)
        if body.properties is not None and body.properties.allowedFeatures is not None:
            props["allowedFeatures"] = _features(body.properties.allowedFeatures, None)
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=existing.location, tags=tags, properties=props)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = {**resource.properties, **reported}
        port = ctx.settings.gateway_port
        if port is not None and props.get("gatewayEndpoint"):
            # A Halyard addition: where agents dial, the port included (Arc's endpoint is a name on 443).
            props["gatewayUrl"] = f"https://{props['gatewayEndpoint']}" + ("" if port == 443 else f":{port}")
        return props


class SettingsBehaviour(PlainBehaviour):
    """The cluster's gateway link: validated, and written as the cluster's ``gateway`` report in this write."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, (SettingsPut, SettingsPatch))
        data = body.model_dump(exclude_none=True)
        gateway_id = ((data.get("properties") or {}).get("gatewayProperties") or {}).get("gatewayResourceId")
        return await self._linked(gateway_id, data.get("tags") or {}, ctx)

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, SettingsPatch)
        data = body.model_dump(exclude_none=True)
        props = data.get("properties") or {}
        if "gatewayProperties" in props:
            gateway_id = props["gatewayProperties"].get("gatewayResourceId")
        else:
            gateway_id = (existing.properties.get("gatewayProperties") or {}).get("gatewayResourceId")
        return await self._linked(gateway_id, data.get("tags", existing.tags), ctx)

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        """Deleting ``settings/default`` takes the cluster off its gateway: the unlink report is written in the
        transaction that deletes the row, so the cluster's ``gateway.enabled`` and the settings' existence change
        together (a gateway keeps refusing the cluster from that commit on)."""
        cluster_id = ResourceId.parse(resource.id).parent
        cluster = await ctx.session.get(Resource, cluster_id.key) if cluster_id is not None else None
        if cluster is None:  # gone with the cluster: its reports go with it
            return
        await write_link(ctx.session, cluster, None, ctx.now, target="gatewayResourceId")

    async def _linked(self, gateway_id: str | None, tags: dict[str, str], ctx: WriteContext) -> Desired:
        cluster_id = ctx.resource_id.parent
        assert cluster_id is not None
        cluster = await ctx.session.get(Resource, cluster_id.key)
        assert cluster is not None  # the pipeline checked the parent exists, under a share lock
        link = await write_link(
            ctx.session, cluster, gateway_id, ctx.now, target="properties.gatewayProperties.gatewayResourceId"
        )
        sub = await ctx.session.get(Subscription, cluster.subscription_id)
        props = {
            "gatewayProperties": {"gatewayResourceId": link.get("resourceId")},
            "tenantId": sub.tenant_id if sub is not None else None,
        }
        return Desired(location=None, tags=tags, properties=props)


def gateway_type(parent_cluster_type: ResourceType) -> tuple[ResourceType, ResourceType]:
    """The gateways type and the clusters' ``settings`` extension (declared after connectedClusters)."""
    behaviour = GatewayBehaviour()
    gateways = hybrid_type(
        NAMESPACE, "gateways", API_VERSIONS, put_model=GatewayPut, patch_model=GatewayPatch, behaviour=behaviour,
        name_pattern=GATEWAY_NAME, name_rule=GATEWAY_NAME_RULE, display="gateway",
    )  # fmt: skip
    behaviour.rtype = gateways
    settings = hybrid_type(
        NAMESPACE, "settings", API_VERSIONS, put_model=SettingsPut, patch_model=SettingsPatch,
        behaviour=SettingsBehaviour(), name_pattern=SETTINGS_NAME,
        name_rule="A cluster has one settings resource, named 'default'.", display="settings",
        placement=Placement.EXTENSION, parent=parent_cluster_type, requires_location=False,
        rbac_type="Microsoft.Kubernetes/connectedClusters/settings/default", name_param="settingName",
    )  # fmt: skip
    return gateways, settings
