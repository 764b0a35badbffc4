"""Private link scopes and their private endpoint connections.

A scope says which clusters (those naming it) may come through which endpoints (those whose connection on it is
Approved), and whether they may also come publicly (``publicNetworkAccess``). Its connections are made when an
endpoint asks for the scope (``network/endpoints.py``) and approved or rejected here; what the scope embeds and
what the endpoint shows of its connection are reports the connection's provisioning writes (a GET stays pure).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.proxytypes import ResourceOut, hybrid_type
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    Placement,
    PlainBehaviour,
    RenderContext,
    ResourceType,
    WriteContext,
)
from halyard.controlplane.privatelink.models import ConnectionPatch, ConnectionPut, ScopePatch, ScopePut
from halyard.controlplane.privatelink.names import GROUP_ID
from halyard.core.errors import Conflict, InvalidRequest
from halyard.store.models import Resource
from halyard.store.reports import Report, put_reports

NAMESPACE = "Microsoft.HybridCompute"
SCOPES = f"{NAMESPACE}/privateLinkScopes"
CONNECTIONS = f"{SCOPES}/privateEndpointConnections"
ENDPOINTS = "Microsoft.Network/privateEndpoints"
CLUSTERS = "Microsoft.Kubernetes/connectedClusters"
MEMBERS_NAMED = 10  # clusters a refused scope deletion names (the count says how many more)
REPORTER = "privatelink"  # the scope's embedded connections, an endpoint's connection state
# What azure-mgmt-hybridcompute 10.x (2026-07-15), the CLI's private-link commands (2021-05-20) and the arcgateway
# extension (2024-07-31-preview) send, with the stable versions between.
API_VERSIONS = (
    "2026-09-01",
    "2026-07-15",
    "2026-06-16-preview",
    "2025-01-13",
    "2024-07-31-preview",
    "2024-07-10",
    "2023-10-03-preview",
    "2022-12-27",
    "2022-11-10",
    "2021-05-20",
)
SCOPE_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,62}[A-Za-z0-9_])?$")
CONNECTION_NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,126}[A-Za-z0-9_])?$")


def connection_state(status: str, description: str | None = None) -> dict[str, Any]:
    return {"status": status, "description": description or _DESCRIPTIONS[status], "actionsRequired": "None"}


_DESCRIPTIONS = {
    "Pending": "Awaiting approval by the scope's owner.",
    "Approved": "Approved.",
    "Rejected": "Rejected.",
    "Disconnected": "The private endpoint was deleted.",
}


class ScopeBehaviour(PlainBehaviour):
    """``publicNetworkAccess`` (Disabled unless said), a ``privateLinkScopeId`` fixed at creation, the embedded
    connections from the ``privatelink`` report."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, ScopePut)
        props = dict(existing.properties) if existing is not None else {}
        props["publicNetworkAccess"] = body.properties.publicNetworkAccess or "Disabled"
        props.setdefault("privateLinkScopeId", str(uuid.uuid4()))
        return Desired(location=body.location, tags=body.tags or {}, properties=props)

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, ScopePatch)
        props = dict(existing.properties)
        if body.properties is not None and body.properties.publicNetworkAccess is not None:
            props["publicNetworkAccess"] = body.properties.publicNetworkAccess
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=existing.location, tags=tags, properties=props)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        return {**resource.properties, "privateEndpointConnections": list(reported.get("connections") or [])}

    async def check_delete(self, resource: Resource, ctx: WriteContext) -> None:
        """A scope that clusters still name is not deleted (their agents would be refused everywhere): 409 naming
        them. Clusters are in their scope's subscription, so only that subscription's clusters are read."""
        members = await clusters_in(ctx.session, resource)
        if members:
            shown = ", ".join(f"'{name}'" for name in members[:MEMBERS_NAMED])
            more = f" and {len(members) - MEMBERS_NAMED} more" if len(members) > MEMBERS_NAMED else ""
            raise Conflict(
                f"Private link scope '{resource.name}' is used by {len(members)} connected cluster(s): {shown}{more}. "
                "Remove them from the scope first (`halyard connectedk8s update --enable-private-link false`).",
                code="PrivateLinkScopeInUse",
            )


async def clusters_in(session: AsyncSession, scope: Resource) -> list[str]:
    """The resource ids of the connected clusters whose private link scope is ``scope``."""
    rows = await session.execute(
        select(Resource.id, Resource.properties).where(
            Resource.type_key == CLUSTERS.lower(), Resource.subscription_id == scope.subscription_id
        )
    )
    return sorted(
        rid for rid, props in rows if str(props.get("privateLinkScopeResourceId") or "").lower() == scope.id_key
    )


class ConnectionBehaviour(PlainBehaviour):
    """Approve, reject (as LROs, a PUT of the state); a rejected connection stays rejected (the endpoint is made
    again, as Azure's); the endpoint it serves cannot change."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, ConnectionPut)
        wanted = body.properties.privateLinkServiceConnectionState
        endpoint = body.properties.privateEndpoint.id if body.properties.privateEndpoint else None
        if existing is not None:
            old = existing.properties
            old_endpoint = (old.get("privateEndpoint") or {}).get("id")
            if endpoint and old_endpoint and endpoint.lower() != old_endpoint.lower():
                raise InvalidRequest(
                    "properties.privateEndpoint cannot change: a connection serves one private endpoint.",
                    code="PropertyChangeNotAllowed",
                    target="properties.privateEndpoint.id",
                )
            old_status = old["privateLinkServiceConnectionState"]["status"]
            if old_status in ("Rejected", "Disconnected") and wanted.status != old_status:
                raise Conflict(
                    f"The private endpoint connection '{ctx.resource_id.name}' is {old_status}; it cannot become "
                    f"{wanted.status}. Delete the private endpoint and create it again.",
                    code="PrivateEndpointConnectionStateFinal",
                )
            props = dict(old)
        else:
            if wanted.status == "Disconnected":
                raise InvalidRequest("A connection cannot be created Disconnected.", target="properties")
            props = {"groupIds": [GROUP_ID]}
            if endpoint:
                await _check_endpoint_targets(ctx.session, endpoint, ctx.resource_id.parent)
                props["privateEndpoint"] = {"id": endpoint}
        props["privateLinkServiceConnectionState"] = connection_state(wanted.status, wanted.description)
        return Desired(location=None, tags=body.tags or {}, properties=props)

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, ConnectionPatch)
        tags = body.tags if body.tags is not None else existing.tags
        if body.properties is not None:
            desired = await self.desired(ConnectionPut(properties=body.properties), existing, ctx)
            desired.tags = tags
            return desired
        return Desired(location=None, tags=tags, properties=dict(existing.properties))

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        await refresh_reports(ctx.session, ResourceId.parse(resource.id).parent, ctx)


async def _check_endpoint_targets(session: AsyncSession, endpoint: str, scope: ResourceId | None) -> None:
    row = await session.get(Resource, endpoint.lower())
    target = (row.properties.get("halyard") or {}).get("scope", "") if row is not None else ""
    if row is None or row.type_key != ENDPOINTS.lower() or scope is None or target.lower() != scope.key:
        raise InvalidRequest(
            f"'{endpoint[:300]}' is not a private endpoint asking for this private link scope.",
            code="LinkedInvalidPropertyId",
            target="properties.privateEndpoint.id",
        )


async def refresh_reports(session: AsyncSession, scope: ResourceId | None, ctx: WriteContext) -> None:
    """Rewrite what a scope embeds of its connections and what each endpoint shows of its own: in the transaction
    of the write that changed a connection."""
    if scope is None:
        return
    rows = (
        await session.scalars(
            select(Resource).where(Resource.parent_key == scope.key, Resource.type_key == CONNECTIONS.lower())
        )
    ).all()
    embedded = [{"id": r.id, "name": r.name, "type": CONNECTIONS, "properties": r.properties} for r in rows]
    reports = [Report(scope.key, REPORTER, {"connections": embedded}, ctx.now)]
    for r in rows:
        endpoint = (r.properties.get("privateEndpoint") or {}).get("id")
        if endpoint:
            state = r.properties["privateLinkServiceConnectionState"]
            reports.append(Report(endpoint.lower(), REPORTER, {"connectionState": state, "connection": r.id}, ctx.now))
    await put_reports(session, reports)


def scope_types() -> tuple[ResourceType, ResourceType]:
    scopes = hybrid_type(
        NAMESPACE,
        "privateLinkScopes",
        API_VERSIONS,
        put_model=ScopePut,
        patch_model=ScopePatch,
        behaviour=ScopeBehaviour(),
        name_pattern=SCOPE_NAME,
        name_rule="It must be 1-64 letters, digits, '.', '_' and '-', starting with a letter or digit and ending "
        "with a letter, digit or '_'.",
        display="private link scope",
        name_param="scopeName",
    )
    connections = ResourceType(
        namespace=NAMESPACE,
        type_name="privateEndpointConnections",
        api_versions=API_VERSIONS,
        put_model=ConnectionPut,
        patch_model=ConnectionPatch,
        response_model=ResourceOut,
        behaviour=ConnectionBehaviour(),
        name_pattern=CONNECTION_NAME,
        name_rule="It must be 1-128 letters, digits, '.', '_' and '-'.",
        display="private endpoint connection",
        placement=Placement.CHILD,
        parent=scopes,
        requires_location=False,
    )
    return scopes, connections
