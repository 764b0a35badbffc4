"""The connectedClusters resource type: validation, read-only fields, secrets, rendering per api-version."""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import textwrap
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import BaseModel

from halyard.api.cluster import CLUSTER_NAME_PATTERN, CLUSTER_NAME_RULE
from halyard.controlplane.arm.resourcetypes import (
    Action,
    Desired,
    PlainBehaviour,
    RenderContext,
    ResourceType,
    WriteContext,
)
from halyard.controlplane.dataplane.status import cluster_sort_keys, connectivity_status, status_filter
from halyard.controlplane.gateway.links import gateway_of, linked_gateway, write_link
from halyard.controlplane.kubernetes.models import (
    ConnectedClusterOut,
    ConnectedClusterPatch,
    ConnectedClusterPut,
)
from halyard.controlplane.privatelink.membership import check_cluster_scope
from halyard.core.agentversions import AgentCatalog
from halyard.core.errors import InvalidRequest
from halyard.core.sealing import Sealer
from halyard.store.models import Resource, Subscription

if TYPE_CHECKING:
    from halyard.controlplane.his.identities import ClusterIdentities
    from halyard.controlplane.plane import TypeServices

NAMESPACE = "Microsoft.Kubernetes"
API_VERSIONS = (
    "2026-05-01",
    "2026-03-01",
    "2026-02-01-preview",
    "2024-12-01-preview",
    "2024-07-01-preview",
    "2024-01-01",
    "2023-11-01-preview",
    "2022-10-01-preview",
    "2021-10-01",
    "2021-03-01",
)
# What the agents (dp) and the identity service (his) report: rendered from their reports, never from a PUT.
REPORTED = (
    "kubernetesVersion",
    "totalNodeCount",
    "totalCoreCount",
    "agentVersion",
    "lastConnectivityTime",
    "managedIdentityCertificateExpirationTime",
)
LIST_USER_CREDENTIAL = Action(
    "listClusterUserCredential",
    "List cluster user credential",
    "Get credentials to reach the cluster's API server through cluster connect.",
)
# Halyard's region move (controlplane/configuration/snapshots.py): its configuration saved, then recreated elsewhere.
SNAPSHOT_CONFIGURATION = Action(
    "snapshotConfiguration",
    "Snapshot configuration",
    "Save the cluster's configuration resources, protected settings sealed, for a region move (Halyard).",
)
RESTORE_CONFIGURATION = Action(
    "restoreConfiguration",
    "Restore configuration",
    "Recreate another cluster's saved configuration resources under this cluster (Halyard).",
)
# Fields the 2021 api-versions do not know; older clients are not sent what they cannot model.
NEWER_FIELDS = (
    "distributionVersion",
    "azureHybridBenefit",
    "aadProfile",
    "arcAgentProfile",
    "gateway",
    "arcAgentryConfigurations",
    "oidcIssuerProfile",
    "securityProfile",
    "inboundConnectivityState",
    "miscellaneousProperties",
)


def parse_agent_public_key(value: str) -> rsa.RSAPublicKey | ec.EllipticCurvePublicKey:
    """The onboarding key: base64 DER, either PKCS#1 RSAPublicKey (what az sends) or SubjectPublicKeyInfo."""
    bad = InvalidRequest(
        "properties.agentPublicKeyCertificate must be the base64-encoded DER of an RSA (2048 bits or more) or "
        "EC P-256/P-384 public key.",
        code="InvalidAgentPublicKeyCertificate",
        target="properties.agentPublicKeyCertificate",
    )
    try:
        der = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad from None
    key: Any = None
    try:
        key = serialization.load_der_public_key(der)
    except ValueError:
        pem = (
            "-----BEGIN RSA PUBLIC KEY-----\n"
            + "\n".join(textwrap.wrap(value, 64))
            + "\n-----END RSA PUBLIC KEY-----\n"
        )
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except ValueError:
            raise bad from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return key
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return key
    raise bad


class ConnectedClusterBehaviour(PlainBehaviour):
    """Onboarding keys, protected settings sealed, the agents' reports merged and connectivity computed when read."""

    def __init__(self, sealer: Sealer, catalog: AgentCatalog, his: ClusterIdentities) -> None:
        self._sealer = sealer
        self._catalog = catalog
        self._his = his

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, ConnectedClusterPut)
        props = body.properties.model_dump(exclude_none=True)
        parse_agent_public_key(props["agentPublicKeyCertificate"])
        old = existing.properties if existing else {}
        if existing is not None and old.get("agentPublicKeyCertificate") != props["agentPublicKeyCertificate"]:
            raise InvalidRequest(
                "properties.agentPublicKeyCertificate cannot change: the cluster's identity is bound to it. Delete "
                "the connected cluster and onboard again to use a new key.",
                code="PropertyChangeNotAllowed",
                target="properties.agentPublicKeyCertificate",
            )
        await _check_private_link(props, body.location, ctx)
        await _link_gateway(props, existing, ctx)
        _check_agent_version(props, old, self._catalog)
        stored = self._unseal(existing)
        sealed = stored
        configs = props.get("arcAgentryConfigurations")
        if configs is not None:
            sealed = {}
            for config in configs:
                secret = config.pop("protectedSettings", None) or {}
                previous = (stored or {}).get(config["feature"], {})
                # A client echoing a GET back sends the redacted "" values: keep what was stored.
                sealed[config["feature"]] = {k: (previous.get(k, v) if v == "" else v) for k, v in secret.items()}
        props.setdefault("privateLinkState", "Disabled")
        props.setdefault("azureHybridBenefit", "NotApplicable")
        identity = {"type": body.identity.type}
        if body.identity.type == "SystemAssigned" and existing is not None and existing.identity:
            identity.update({k: v for k, v in existing.identity.items() if k in ("principalId", "tenantId")})
        return Desired(
            location=body.location,
            tags=body.tags or {},
            properties=props,
            identity=identity,
            kind=body.kind,
            sealed=sealed,
        )

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, ConnectedClusterPatch)
        props = copy.deepcopy(existing.properties)
        if body.properties is not None:
            changes = body.properties.model_dump(exclude_none=True)
            gateway = changes.pop("gateway", None)
            props.update(changes)
            if gateway is not None:
                props["gateway"] = gateway
                await _link_gateway(props, existing, ctx)
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=existing.location, tags=tags, properties=props, identity=existing.identity)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = with_reports(resource.properties, reported)
        # Computed at read time from the last heartbeat and the certificate's expiry: exact, no scan needed.
        props["connectivityStatus"] = connectivity_status(
            props, ctx.now, dt.timedelta(seconds=ctx.settings.offline_threshold_seconds)
        )
        configs = props.get("arcAgentryConfigurations") or []
        stored = (self._unseal(resource) or {}) if configs else {}  # decrypted once, and only when there is any
        for config in configs:
            keys = stored.get(config["feature"], {}).keys()
            if keys:
                config["protectedSettings"] = {k: "" for k in keys}  # only the keys are ever returned
        if ctx.api_version < "2022":
            for key in NEWER_FIELDS:
                props.pop(key, None)
        return props

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        """Give a SystemAssigned cluster its identity (principal and tenant ids)."""
        sub = await ctx.session.get(Subscription, resource.subscription_id)
        identity = dict(resource.identity or {"type": "SystemAssigned"})
        if identity.get("type") == "SystemAssigned" and not identity.get("principalId"):
            identity["principalId"] = str(uuid.uuid4())
            identity["tenantId"] = sub.tenant_id if sub else None
        elif identity.get("type") == "None":
            identity = {"type": "None"}
        resource.identity = identity

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        """Revoke the cluster identity: its certificates and agent tokens are refused from now on."""
        await self._his.revoke(ctx.session, resource.id)

    def _unseal(self, resource: Resource | None) -> dict[str, Any] | None:
        if resource is None or resource.sealed is None:
            return None
        value = self._sealer.unseal_json(resource.sealed)
        return value if isinstance(value, dict) else None


async def _check_private_link(props: dict[str, Any], location: str, ctx: WriteContext) -> None:
    """The scope id only with privateLinkState Enabled, and enabling needs it; the scope must exist, in the
    cluster's subscription and location (one scope per cluster: the property holds one id)."""
    state = props.get("privateLinkState", "Disabled")
    scope = props.get("privateLinkScopeResourceId")
    if state == "Enabled" and not scope:
        raise InvalidRequest(
            "properties.privateLinkScopeResourceId is required when privateLinkState is Enabled.",
            code="PrivateLinkScopeRequired",
            target="properties.privateLinkScopeResourceId",
        )
    if state != "Enabled" and scope:
        raise InvalidRequest(
            "properties.privateLinkScopeResourceId may be set only when privateLinkState is Enabled.",
            code="PrivateLinkScopeWithoutPrivateLink",
            target="properties.privateLinkScopeResourceId",
        )
    if scope:
        props["privateLinkScopeResourceId"] = await check_cluster_scope(ctx, scope, location)


def with_reports(properties: dict[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
    """A cluster's properties as users wrote them with what the agents and ``his`` reported merged in (a copy)."""
    props = copy.deepcopy(properties)
    for key in REPORTED:
        if key in reported:
            props[key] = reported[key]
    for key, value in (reported.get("detected") or {}).items():
        if not props.get(key):  # what the user wrote wins over what the agents detected
            props[key] = value
    if "gateway" in reported or "gateway" in props:
        props["gateway"] = gateway_of(properties, reported)  # the last link written, by settings/default or here
    agent_profile = reported.get("arcAgentProfile")
    if agent_profile:
        props["arcAgentProfile"] = {**props.get("arcAgentProfile", {}), **agent_profile}
    return props


async def _link_gateway(props: dict[str, Any], existing: Resource | None, ctx: WriteContext) -> None:
    """A ``properties.gateway`` in the body links or unlinks the cluster (the newest CLI's shape), written as the
    same report ``settings/default`` writes; gateway and private link together are refused either way round."""
    gateway = props.get("gateway")
    linked = await linked_gateway(ctx.session, ctx.resource_id.key) if existing is not None else None
    if isinstance(gateway, dict) and ("resourceId" in gateway or "enabled" in gateway):
        if existing is None:
            if gateway.get("resourceId") or gateway.get("enabled"):
                raise InvalidRequest(
                    "Link the gateway after the cluster is created: PUT its settings/default "
                    "(properties.gatewayProperties.gatewayResourceId), as az connectedk8s connect does.",
                    code="GatewayLinkAfterCreate",
                    target="properties.gateway",
                )
            return
        wanted = gateway.get("resourceId") if gateway.get("enabled", True) else None
        if wanted != (linked or {}).get("resourceId"):
            linked = await write_link(
                ctx.session, existing, wanted, ctx.now, target="properties.gateway.resourceId", properties=props
            )
        props.pop("gateway", None)  # the link lives in the report, not in what the user wrote
    if props.get("privateLinkState") == "Enabled" and (linked or {}).get("enabled"):
        raise InvalidRequest(
            "A cluster using a gateway cannot use private link (Arc gateway limits): disable the gateway first "
            "(az connectedk8s update --disable-gateway).",
            code="GatewayWithPrivateLink",
            target="properties.privateLinkState",
        )


def _check_agent_version(props: dict[str, Any], old: dict[str, Any], catalog: AgentCatalog) -> None:
    """A pinned ``desiredAgentVersion`` must be one this control plane offers (empty: no pin); it is stored in the
    offered spelling (``0.2`` as ``0.2.0``), so the image tag helm deploys and the one the agents roll to agree."""
    profile = props.get("arcAgentProfile") or {}
    desired = profile.get("desiredAgentVersion")
    if not desired:
        return
    offered = catalog.find(desired)
    if offered is not None:
        props["arcAgentProfile"] = {**profile, "desiredAgentVersion": offered}
        return
    # A client echoing a GET back keeps a pin the catalog has since withdrawn: the target rule then ignores it.
    if desired != (old.get("arcAgentProfile") or {}).get("desiredAgentVersion"):
        raise InvalidRequest(
            f"Agent version {desired!r} is not offered by this control plane; offered versions: "
            f"{', '.join(catalog.versions)}.",
            code="InvalidAgentVersion",
            target="properties.arcAgentProfile.desiredAgentVersion",
        )


def connected_cluster_type(services: TypeServices) -> ResourceType:
    return ResourceType(
        namespace=NAMESPACE,
        type_name="connectedClusters",
        api_versions=API_VERSIONS,
        put_model=ConnectedClusterPut,
        patch_model=ConnectedClusterPatch,
        response_model=ConnectedClusterOut,
        behaviour=ConnectedClusterBehaviour(services.sealer, services.settings.agent_catalog, services.his),
        name_pattern=CLUSTER_NAME_PATTERN,
        name_rule=CLUSTER_NAME_RULE,
        display="connected cluster",
        sync_patch_versions=frozenset({"2021-03-01", "2021-10-01"}),
        actions=(LIST_USER_CREDENTIAL, SNAPSHOT_CONFIGURATION, RESTORE_CONFIGURATION),
        list_filter=lambda text, ctx: status_filter(
            text, ctx.now, dt.timedelta(seconds=ctx.settings.offline_threshold_seconds)
        ),
        list_order=cluster_sort_keys(),
    )
