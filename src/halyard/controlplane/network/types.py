"""Virtual networks and subnets (registered by the operator: Halyard creates no network), private endpoints (an
address of a subnet that reaches the control plane, asking a private link scope for a connection), private DNS
zones with their virtual network links and A record sets, and an endpoint's DNS zone groups (the endpoint's names
written into a zone as A records)."""

from __future__ import annotations

import ipaddress
import re
import uuid
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel
from sqlalchemy import select

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    Placement,
    PlainBehaviour,
    RenderContext,
    ResourceType,
    ResourceTypes,
    WriteContext,
    normalize_location,
)
from halyard.controlplane.network import addressing
from halyard.controlplane.network.models import (
    NetworkOut,
    PrivateDnsZonePut,
    PrivateEndpointPut,
    RecordSetPut,
    SubnetPut,
    TagsPatch,
    VirtualNetworkLinkPut,
    VirtualNetworkPut,
    ZoneGroupPut,
)
from halyard.controlplane.network.rows import linked, server_row
from halyard.controlplane.privatelink import names, revocation
from halyard.controlplane.privatelink.scopes import CONNECTIONS, SCOPES, connection_state, refresh_reports
from halyard.core.errors import AuthorizationFailed, Conflict, InvalidRequest
from halyard.store.models import Resource

NAMESPACE = "Microsoft.Network"
VNETS = f"{NAMESPACE}/virtualNetworks"
SUBNETS = f"{VNETS}/subnets"
ENDPOINTS = f"{NAMESPACE}/privateEndpoints"
ZONES = f"{NAMESPACE}/privateDnsZones"
RECORDS_A = f"{ZONES}/A"
# What az 2.9x sends (vnet 2025-07-01, subnet 2024-07-01, private-endpoint 2026-01-01, dns-zone-group 2022-01-01)
# and the versions between.
NETWORK_VERSIONS = (
    "2026-01-01",
    "2025-07-01",
    "2025-05-01",
    "2025-01-01",
    "2024-07-01",
    "2024-05-01",
    "2024-03-01",
    "2024-01-01",
    "2023-11-01",
    "2023-09-01",
    "2023-05-01",
    "2022-11-01",
    "2022-07-01",
    "2022-01-01",
)
DNS_VERSIONS = (
    "2024-06-01",
    "2020-06-01",
    "2020-01-01",
    "2018-09-01",
)  # az network private-dns: 2018-09-01, 2024-06-01
NAME = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,78}[A-Za-z0-9_])?$")
NAME_RULE = "It must be 1-80 letters, digits, '.', '_' and '-', starting with a letter or digit."
_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
ZONE_NAME = re.compile(rf"^(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})*$")
RECORD_NAME = re.compile(rf"^(?:@|(?:\*\.)?{_LABEL}(?:\.{_LABEL})*|\*)$")
DEFAULT_TTL = 3600
HIDDEN = "halyard"  # what the server keeps about an endpoint (its scope, subnet, network, address): never rendered


def _subnet_prefix(props: Mapping[str, Any], target: str) -> ipaddress.IPv4Network:
    prefix = props.get("addressPrefix") or (props.get("addressPrefixes") or [None])[0]
    if not prefix:
        raise InvalidRequest("A subnet needs properties.addressPrefix.", code="InvalidRequestFormat", target=target)
    return addressing.network(prefix, target)


class VirtualNetworkBehaviour(PlainBehaviour):
    """A network's address space, and its inline subnets inside it and apart from each other (made child rows when
    provisioned, as ``az network vnet create --subnet-name`` expects)."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, VirtualNetworkPut)
        props = body.properties.model_dump(exclude_none=True)
        space = [
            addressing.network(p, "properties.addressSpace.addressPrefixes")
            for p in body.properties.addressSpace.addressPrefixes
        ]
        seen: list[ipaddress.IPv4Network] = []
        for subnet in props.get("subnets") or []:
            prefix = _subnet_prefix(subnet["properties"], "properties.subnets")
            if not addressing.within(prefix, space):
                raise InvalidRequest(
                    f"Subnet '{subnet['name']}' ({prefix}) is not inside the network's address space.",
                    code="NetcfgSubnetRangeOutsideVnet",
                    target="properties.subnets",
                )
            if any(prefix.overlaps(s) for s in seen):
                raise InvalidRequest(
                    f"Subnet '{subnet['name']}' ({prefix}) overlaps another subnet.",
                    code="NetcfgSubnetRangesOverlap",
                    target="properties.subnets",
                )
            seen.append(prefix)
        return Desired(location=body.location, tags=body.tags or {}, properties=props)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = dict(resource.properties)
        props["subnets"] = [
            {**s, "id": f"{resource.id}/subnets/{s['name']}", "type": SUBNETS} for s in props.get("subnets") or []
        ]
        return props

    async def check_delete(self, resource: Resource, ctx: WriteContext) -> None:
        """A network whose subnets hold private endpoints is not deleted (its subnets would go with it): Azure's
        400 ``InUseSubnetCannotBeDeleted``, naming an endpoint in the way."""
        _refuse_in_use(resource.name, await _endpoint_ids_in(ctx, vnet_key=resource.id_key))

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        rid = ResourceId.parse(resource.id)
        for subnet in resource.properties.get("subnets") or []:
            child = rid.child("subnets", subnet["name"])
            if await ctx.session.get(Resource, child.key) is None:
                ctx.session.add(
                    server_row(child, SUBNETS, dict(subnet["properties"]), ctx.now, resource.changed_by, "Application")
                )


class SubnetBehaviour(PlainBehaviour):
    """Inside its network's address space, apart from its sibling subnets."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, SubnetPut)
        props = body.properties.model_dump(exclude_none=True)
        prefix = _subnet_prefix(props, "properties.addressPrefix")
        vnet_id = ctx.resource_id.parent
        assert vnet_id is not None
        vnet = await ctx.session.get(Resource, vnet_id.key)
        assert vnet is not None  # the pipeline checked the parent under its lock
        space = [addressing.network(p, "addressSpace") for p in vnet.properties["addressSpace"]["addressPrefixes"]]
        if not addressing.within(prefix, space):
            raise InvalidRequest(
                f"Subnet prefix {prefix} is not inside the network's address space.",
                code="NetcfgSubnetRangeOutsideVnet",
                target="properties.addressPrefix",
            )
        siblings = (
            await ctx.session.scalars(
                select(Resource).where(Resource.parent_key == vnet_id.key, Resource.type_key == SUBNETS.lower())
            )
        ).all()
        for sibling in siblings:
            if sibling.id_key != ctx.resource_id.key and prefix.overlaps(_subnet_prefix(sibling.properties, "")):
                raise InvalidRequest(
                    f"Subnet prefix {prefix} overlaps subnet '{sibling.name}'.",
                    code="NetcfgSubnetRangesOverlap",
                    target="properties.addressPrefix",
                )
        if existing is not None and _subnet_prefix(existing.properties, "") != prefix:
            used = await _endpoints_in(ctx, subnet_key=ctx.resource_id.key)
            if used:
                raise Conflict(
                    f"Subnet '{ctx.resource_id.name}' holds {len(used)} private endpoint(s); its prefix cannot change.",
                    code="InUseSubnetCannotBeUpdated",
                )
        return Desired(location=None, tags=body.tags or {}, properties=props)

    async def check_delete(self, resource: Resource, ctx: WriteContext) -> None:
        """A subnet that holds private endpoints is not deleted (their addresses are in it): 400
        ``InUseSubnetCannotBeDeleted``, as Azure answers, naming an endpoint to delete first."""
        _refuse_in_use(resource.name, await _endpoint_ids_in(ctx, subnet_key=resource.id_key))


def _refuse_in_use(subnet: str, endpoints: list[str]) -> None:
    if endpoints:
        more = f" and {len(endpoints) - 1} more" if len(endpoints) > 1 else ""
        raise InvalidRequest(
            f"Subnet '{subnet}' is in use by {endpoints[0]}{more} and cannot be deleted. In order to delete the "
            "subnet, delete all the private endpoints within it.",
            code="InUseSubnetCannotBeDeleted",
        )


async def _subscription_endpoints(ctx: WriteContext) -> list[Resource]:
    """Every private endpoint of the subscription ``ctx`` writes in."""
    rows = await ctx.session.scalars(
        select(Resource).where(
            Resource.subscription_id == (ctx.resource_id.subscription_id or "").lower(),
            Resource.type_key == ENDPOINTS.lower(),
        )
    )
    return list(rows.all())


def _placed(kept: dict[str, Any], subnet_key: str | None, vnet_key: str | None) -> bool:
    return kept.get("subnet") == subnet_key if subnet_key is not None else kept.get("vnet") == vnet_key


async def _endpoint_ids_in(
    ctx: WriteContext, *, subnet_key: str | None = None, vnet_key: str | None = None
) -> list[str]:
    """The ids of the private endpoints in one subnet, or in any subnet of one network, sorted."""
    rows = await _subscription_endpoints(ctx)
    return sorted(r.id for r in rows if _placed(r.properties.get(HIDDEN) or {}, subnet_key, vnet_key))


async def _endpoints_in(ctx: WriteContext, *, subnet_key: str | None = None, vnet_key: str | None = None) -> list:
    """The private endpoints of a subscription in one subnet or network (their server-kept block), but the one
    being written."""
    rows = await _subscription_endpoints(ctx)
    kept = [r.properties.get(HIDDEN) or {} for r in rows if r.id_key != ctx.resource_id.key]
    return [k for k in kept if _placed(k, subnet_key, vnet_key)]


class PrivateEndpointBehaviour(PlainBehaviour):
    """An address from its subnet and one connection asking a private link scope: approved at once
    (``privateLinkServiceConnections``, for a caller who may approve on the scope), or Pending
    (``manualPrivateLinkServiceConnections``); the connection row is written with the endpoint, or neither is."""

    def __init__(self, settings_domain: Any) -> None:
        self._settings = settings_domain

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, PrivateEndpointPut)
        props = body.properties.model_dump(exclude_none=True)
        auto = props.get("privateLinkServiceConnections") or []
        manual = props.get("manualPrivateLinkServiceConnections") or []
        if len(auto) + len(manual) != 1:
            raise InvalidRequest(
                "A private endpoint has exactly one connection: one entry in privateLinkServiceConnections or in "
                "manualPrivateLinkServiceConnections.",
                code="InvalidPrivateEndpointConnections",
                target="properties.privateLinkServiceConnections",
            )
        request = (auto or manual)[0]
        target = request["properties"]["privateLinkServiceId"]
        if existing is not None:
            kept = existing.properties[HIDDEN]
            if body.properties.subnet.id.lower() != kept["subnet"] or target.lower() != kept["scope"].lower():
                raise InvalidRequest(
                    "A private endpoint's subnet and private link scope cannot change: create another endpoint.",
                    code="PropertyChangeNotAllowed",
                    target="properties.subnet.id",
                )
            return Desired(location=existing.location, tags=body.tags or {}, properties=dict(existing.properties))
        subnet_id, subnet = await linked(
            ctx.session, body.properties.subnet.id, SUBNETS, "properties.subnet.id", for_update=True
        )
        vnet_id = subnet_id.parent
        assert vnet_id is not None
        vnet = await ctx.session.get(Resource, vnet_id.key)
        assert vnet is not None
        sub = (ctx.resource_id.subscription_id or "").lower()
        if (subnet_id.subscription_id or "").lower() != sub:
            raise InvalidRequest(
                "The private endpoint and its virtual network must be in the same subscription.",
                code="CrossSubscriptionNotSupported",
                target="properties.subnet.id",
            )
        if normalize_location(body.location) != vnet.location:
            raise InvalidRequest(
                f"The private endpoint must be in its virtual network's region '{vnet.location}', not "
                f"'{body.location}'.",
                code="PrivateEndpointLocationMismatch",
                target="location",
            )
        scope_id, scope = await linked(
            ctx.session, target, SCOPES, "properties.privateLinkServiceConnections.privateLinkServiceId"
        )
        if (scope_id.subscription_id or "").lower() != sub:
            raise InvalidRequest(
                "The private link scope, the private endpoint and its virtual network must be in the same "
                "subscription.",
                code="CrossSubscriptionNotSupported",
                target="properties.privateLinkServiceConnections.privateLinkServiceId",
            )
        groups = [g.lower() for g in request["properties"].get("groupIds") or [names.GROUP_ID]]
        if groups != [names.GROUP_ID]:
            raise InvalidRequest(
                f"A private link scope's only group id is '{names.GROUP_ID}'.",
                code="InvalidGroupId",
                target="properties.privateLinkServiceConnections.groupIds",
            )
        others = {k.get("scope", "").lower() for k in await _endpoints_in(ctx, vnet_key=vnet_id.key)}
        if others - {scope_id.key}:
            raise Conflict(
                f"Virtual network '{vnet_id.name}' already has private endpoints to another private link scope; a "
                "network's endpoints connect to one scope at most (its DNS names could not tell the scopes apart).",
                code="VirtualNetworkHasAnotherScope",
            )
        if auto and ctx.caller is not None and not ctx.caller.allowed(f"{CONNECTIONS}/write", str(scope_id)):
            raise AuthorizationFailed(
                f"The client may not approve connections on private link scope '{scope_id.name}' (action "
                f"'{CONNECTIONS}/write'): ask for a manual connection (--manual-request) and its owner's approval.",
                code="LinkedAuthorizationFailed",
            )
        used = [k.get("ip", "") for k in await _endpoints_in(ctx, subnet_key=subnet_id.key)]
        address = addressing.next_free(_subnet_prefix(subnet.properties, ""), used)
        if address is None:
            raise Conflict(f"Subnet '{subnet_id.name}' has no free address left.", code="SubnetIsFull")
        status = "Approved" if auto else "Pending"
        connection_id = scope_id.child("privateEndpointConnections", f"{ctx.resource_id.name}.{uuid.uuid4()}")
        by = ctx.caller.caller.app_id if ctx.caller is not None else ""
        ctx.session.add(
            server_row(
                connection_id,
                CONNECTIONS,
                {
                    "privateEndpoint": {"id": str(ctx.resource_id)},
                    "privateLinkServiceConnectionState": connection_state(
                        status, request["properties"].get("requestMessage") if not auto else None
                    ),
                    "groupIds": [names.GROUP_ID],
                    "provisioningState": "Succeeded",
                },
                ctx.now,
                by,
                "Application",
            )
        )
        request["properties"]["groupIds"] = [names.GROUP_ID]
        request["properties"]["privateLinkServiceConnectionState"] = connection_state(status)
        request["id"] = f"{ctx.resource_id}/privateLinkServiceConnections/{request['name']}"
        scope_uuid = scope.properties["privateLinkScopeId"]
        props["customDnsConfigs"] = [
            {"fqdn": f, "ipAddresses": [address]} for f in names.fqdns(self._settings, scope_uuid)
        ]
        props["networkInterfaces"] = []
        props[HIDDEN] = {
            "scope": str(scope_id),
            "subnet": subnet_id.key,
            "vnet": vnet_id.key,
            "ip": address,
            "connection": str(connection_id),
        }
        await ctx.session.flush()
        await refresh_reports(ctx.session, scope_id, ctx)
        return Desired(location=body.location, tags=body.tags or {}, properties=props)

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        """Its connection leaves the scope with it and its forwarders' certificates are revoked (in the deleting
        transaction: all or nothing), and the scope's embedded connections are rewritten. Enforcement refuses the
        endpoint, and the endpoint ingress its certificates, from this commit on."""
        await revocation.revoke(ctx.session, resource.id, ctx.now)
        kept = resource.properties.get(HIDDEN) or {}
        if not kept.get("connection"):
            return
        connection = await ctx.session.get(Resource, kept["connection"].lower())
        if connection is not None:
            await ctx.session.delete(connection)
            await ctx.session.flush()
        await refresh_reports(ctx.session, ResourceId.parse(kept["scope"]), ctx)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = {k: v for k, v in resource.properties.items() if k != HIDDEN}
        state = reported.get("connectionState")
        for key in ("privateLinkServiceConnections", "manualPrivateLinkServiceConnections"):
            entries = [dict(e, properties=dict(e["properties"])) for e in props.get(key) or []]
            for entry in entries:
                if state:
                    entry["properties"]["privateLinkServiceConnectionState"] = state
            if key in props:
                props[key] = entries
        return props


class ZoneBehaviour(PlainBehaviour):
    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, PrivateDnsZonePut)
        return Desired(location=body.location or "global", tags=body.tags or {}, properties={})

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        return {
            "maxNumberOfRecordSets": 25000,
            "maxNumberOfVirtualNetworkLinks": 1000,
            "maxNumberOfVirtualNetworkLinksWithRegistration": 100,
            "internalId": resource.etag,
        }


class LinkBehaviour(PlainBehaviour):
    """A zone's link to a registered network (the network must exist)."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, VirtualNetworkLinkPut)
        vnet_id, _ = await linked(ctx.session, body.properties.virtualNetwork.id, VNETS, "properties.virtualNetwork.id")
        props = {
            "virtualNetwork": {"id": str(vnet_id)},
            "registrationEnabled": bool(body.properties.registrationEnabled),
            "virtualNetworkLinkState": "Completed",
        }
        return Desired(location=body.location or "global", tags=body.tags or {}, properties=props)


class RecordSetBehaviour(PlainBehaviour):
    """An A record set: IPv4 addresses, a TTL."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, RecordSetPut)
        records = []
        for record in body.properties.aRecords or []:
            try:
                records.append({"ipv4Address": str(ipaddress.IPv4Address(record.ipv4Address))})
            except ValueError:
                raise InvalidRequest(
                    f"'{record.ipv4Address[:64]}' is not an IPv4 address.",
                    code="InvalidARecord",
                    target="properties.aRecords",
                ) from None
        props: dict[str, Any] = {"ttl": DEFAULT_TTL if body.properties.ttl is None else body.properties.ttl}
        props["aRecords"] = records
        if body.properties.metadata:
            props["metadata"] = body.properties.metadata
        return Desired(location=None, tags=body.tags or {}, properties=props)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        zone = ResourceId.parse(resource.id).names[0]
        name = resource.name
        fqdn = f"{zone}." if name == "@" else f"{name}.{zone}."
        return {**resource.properties, "fqdn": fqdn, "isAutoRegistered": False}


class ZoneGroupBehaviour(PlainBehaviour):
    """The endpoint's names written as A records into each named zone they fall in (made or updated)."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, ZoneGroupPut)
        configs = []
        for config in body.properties.privateDnsZoneConfigs:
            zone_id, _ = await linked(
                ctx.session, config.properties.privateDnsZoneId, ZONES, "properties.privateDnsZoneConfigs"
            )
            configs.append({"name": config.name, "properties": {"privateDnsZoneId": str(zone_id)}})
        return Desired(location=None, tags=body.tags or {}, properties={"privateDnsZoneConfigs": configs})

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        endpoint_id = ResourceId.parse(resource.id).parent
        assert endpoint_id is not None
        endpoint = await ctx.session.get(Resource, endpoint_id.key)
        if endpoint is None:
            return
        dns = endpoint.properties.get("customDnsConfigs") or []
        configs = []
        for config in resource.properties["privateDnsZoneConfigs"]:
            zone_id = ResourceId.parse(config["properties"]["privateDnsZoneId"])
            zone = zone_id.name.lower()
            record_sets = []
            for entry in dns:
                fqdn = entry["fqdn"].lower()
                if not fqdn.endswith("." + zone):
                    continue
                name = fqdn[: -len(zone) - 1]
                record_id = zone_id.child("A", name)
                row = await ctx.session.get(Resource, record_id.key)
                records = [{"ipv4Address": ip} for ip in entry["ipAddresses"]]
                if row is None:
                    ctx.session.add(
                        server_row(
                            record_id,
                            RECORDS_A,
                            {"ttl": 10, "aRecords": records},
                            ctx.now,
                            resource.changed_by,
                            "Application",
                        )
                    )
                else:
                    row.properties = {**row.properties, "aRecords": records}
                record_sets.append(
                    {
                        "recordType": "A",
                        "recordSetName": name,
                        "fqdn": f"{fqdn}.",
                        "ttl": 10,
                        "ipAddresses": entry["ipAddresses"],
                        "provisioningState": "Succeeded",
                    }
                )
            configs.append({**config, "properties": {**config["properties"], "recordSets": record_sets}})
        resource.properties = {"privateDnsZoneConfigs": configs}


def _type(name: str, versions: tuple[str, ...], put: type[BaseModel], behaviour: Any, **kwargs: Any) -> ResourceType:
    return ResourceType(
        namespace=NAMESPACE,
        type_name=name,
        api_versions=versions,
        put_model=put,
        patch_model=TagsPatch,
        response_model=NetworkOut,
        behaviour=behaviour,
        name_pattern=kwargs.pop("name_pattern", NAME),
        name_rule=kwargs.pop("name_rule", NAME_RULE),
        **kwargs,
    )


def declare_network_types(types: ResourceTypes, settings: Any) -> None:
    vnets = _type(
        "virtualNetworks",
        NETWORK_VERSIONS,
        VirtualNetworkPut,
        VirtualNetworkBehaviour(),
        display="virtual network",
        name_param="virtualNetworkName",
    )
    types.add(vnets)
    types.add(
        _type(
            "subnets",
            NETWORK_VERSIONS,
            SubnetPut,
            SubnetBehaviour(),
            display="subnet",
            placement=Placement.CHILD,
            parent=vnets,
            requires_location=False,
        )
    )
    endpoints = _type(
        "privateEndpoints",
        NETWORK_VERSIONS,
        PrivateEndpointPut,
        PrivateEndpointBehaviour(settings),
        display="private endpoint",
        name_param="privateEndpointName",
    )
    types.add(endpoints)
    types.add(
        _type(
            "privateDnsZoneGroups",
            NETWORK_VERSIONS,
            ZoneGroupPut,
            ZoneGroupBehaviour(),
            display="private DNS zone group",
            placement=Placement.CHILD,
            parent=endpoints,
            requires_location=False,
        )
    )
    zones = _type(
        "privateDnsZones",
        DNS_VERSIONS,
        PrivateDnsZonePut,
        ZoneBehaviour(),
        display="private DNS zone",
        name_pattern=ZONE_NAME,
        name_rule="It must be a DNS name (labels of letters, digits, '-', '_').",
        locations=("global",),
        name_param="privateZoneName",
    )
    types.add(zones)
    types.add(
        _type(
            "virtualNetworkLinks",
            DNS_VERSIONS,
            VirtualNetworkLinkPut,
            LinkBehaviour(),
            display="virtual network link",
            placement=Placement.CHILD,
            parent=zones,
            locations=("global",),
            requires_location=False,
        )
    )
    types.add(
        _type(
            "A",
            DNS_VERSIONS,
            RecordSetPut,
            RecordSetBehaviour(),
            display="A record set",
            placement=Placement.CHILD,
            parent=zones,
            requires_location=False,
            name_pattern=RECORD_NAME,
            name_rule="It must be '@' or a relative DNS name.",
            name_param="relativeRecordSetName",
        )
    )
