"""The connectedClusters resource type: validation, read-only fields, secrets, rendering per api-version."""

from __future__ import annotations

import base64
import binascii
import copy
import datetime as dt
import re
import textwrap
import uuid
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import BaseModel

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.resourcetypes import Desired, ResourceType
from halyard.controlplane.dataplane.status import connectivity_status
from halyard.controlplane.kubernetes.models import (
    ConnectedClusterOut,
    ConnectedClusterPatch,
    ConnectedClusterPut,
)
from halyard.core.errors import InvalidRequest
from halyard.store.models import Resource, Subscription

if TYPE_CHECKING:
    from halyard.controlplane.plane import ControlPlane

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
# Agent-reported or server-computed: never taken from a client's PUT.
READ_ONLY = (
    "kubernetesVersion",
    "totalNodeCount",
    "totalCoreCount",
    "agentVersion",
    "offering",
    "lastConnectivityTime",
    "managedIdentityCertificateExpirationTime",
    "connectivityStatus",
    "inboundConnectivityState",
    "miscellaneousProperties",
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
NAME_PATTERN = re.compile(r"^[a-zA-Z0-9]([-_.a-zA-Z0-9]{0,61}[a-zA-Z0-9])?$")
NAME_RULE = (
    "It must be 1-63 characters, start and end with a letter or digit, and contain only letters, digits, '-', '_' "
    "and '.'."
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


class ConnectedClusterBehaviour:
    def desired(self, body: BaseModel, existing: Resource | None, api_version: str, cp: ControlPlane) -> Desired:
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
        self._check_private_link(props)
        _check_agent_version(props, old, cp)
        stored = _unseal(existing, cp)
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
        for key in READ_ONLY:
            if key in old:
                props[key] = old[key]
        props.setdefault("connectivityStatus", "Connecting")
        if "arcAgentProfile" in old:
            merged = dict(props.get("arcAgentProfile", {}))
            for key in ("agentState", "agentErrors"):
                if key in old["arcAgentProfile"]:
                    merged[key] = old["arcAgentProfile"][key]
            props["arcAgentProfile"] = merged
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

    def patched(self, body: BaseModel, existing: Resource, api_version: str, cp: ControlPlane) -> Desired:
        assert isinstance(body, ConnectedClusterPatch)
        props = copy.deepcopy(existing.properties)
        if body.properties is not None:
            changes = body.properties.model_dump(exclude_none=True)
            if "gateway" in changes:
                props["gateway"] = {**props.get("gateway", {}), **changes.pop("gateway")}
            props.update(changes)
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=existing.location, tags=tags, properties=props, identity=existing.identity)

    def render_properties(self, resource: Resource, api_version: str, cp: ControlPlane) -> dict[str, Any]:
        props = copy.deepcopy(resource.properties)
        # Computed at read time from the last heartbeat and the certificate's expiry: exact, no scan needed.
        props["connectivityStatus"] = connectivity_status(
            props, cp.clock.now(), dt.timedelta(seconds=cp.settings.offline_threshold_seconds)
        )
        configs = props.get("arcAgentryConfigurations") or []
        stored = (_unseal(resource, cp) or {}) if configs else {}  # decrypted once, and only when there is any
        for config in configs:
            keys = stored.get(config["feature"], {}).keys()
            if keys:
                config["protectedSettings"] = {k: "" for k in keys}  # only the keys are ever returned
        if api_version < "2022":
            for key in NEWER_FIELDS:
                props.pop(key, None)
        return props

    async def provision(self, resource_id: str, cp: ControlPlane) -> None:
        """Give a SystemAssigned cluster its identity (principal and tenant ids)."""
        rid = ResourceId.parse(resource_id)
        async with cp.db.transaction() as session:
            resource = await session.get(Resource, rid.key)
            if resource is None:
                return
            sub = await session.get(Subscription, resource.subscription_id)
            identity = dict(resource.identity or {"type": "SystemAssigned"})
            if identity.get("type") == "SystemAssigned" and not identity.get("principalId"):
                identity["principalId"] = str(uuid.uuid4())
                identity["tenantId"] = sub.tenant_id if sub else None
            elif identity.get("type") == "None":
                identity = {"type": "None"}
            resource.identity = identity

    async def deprovision(self, resource: Resource, cp: ControlPlane) -> None:
        """Revoke the cluster identity: its certificates and agent tokens are refused from now on."""
        await cp.his.revoke(resource.id)

    @staticmethod
    def _check_private_link(props: dict[str, Any]) -> None:
        state = props.get("privateLinkState", "Disabled")
        scope = props.get("privateLinkScopeResourceId")
        if state == "Enabled" and not scope:
            raise InvalidRequest(
                "properties.privateLinkScopeResourceId is required when privateLinkState is Enabled.",
                target="properties.privateLinkScopeResourceId",
            )
        if state != "Enabled" and scope:
            raise InvalidRequest(
                "properties.privateLinkScopeResourceId may be set only when privateLinkState is Enabled.",
                target="properties.privateLinkScopeResourceId",
            )


def _check_agent_version(props: dict[str, Any], old: dict[str, Any], cp: ControlPlane) -> None:
    """A pinned ``desiredAgentVersion`` must be one this control plane offers (empty: no pin); it is stored in the
    offered spelling (``0.2`` as ``0.2.0``), so the image tag helm deploys and the one the agents roll to agree."""
    profile = props.get("arcAgentProfile") or {}
    desired = profile.get("desiredAgentVersion")
    if not desired:
        return
    catalog = cp.settings.agent_catalog
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


def _unseal(resource: Resource | None, cp: ControlPlane) -> dict[str, Any] | None:
    if resource is None or resource.sealed is None:
        return None
    value = cp.sealer.unseal_json(resource.sealed)
    return value if isinstance(value, dict) else None


def connected_cluster_type() -> ResourceType:
    return ResourceType(
        namespace=NAMESPACE,
        type_name="connectedClusters",
        api_versions=API_VERSIONS,
        put_model=ConnectedClusterPut,
        patch_model=ConnectedClusterPatch,
        response_model=ConnectedClusterOut,
        behaviour=ConnectedClusterBehaviour(),
        name_pattern=NAME_PATTERN,
        name_rule=NAME_RULE,
        display="connected cluster",
        sync_patch_versions=frozenset({"2021-03-01", "2021-10-01"}),
    )
