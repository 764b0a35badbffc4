"""Small helpers for API tests: names, keys, principals with roles."""

from __future__ import annotations

import base64
import uuid
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.support.processes import ServerProcess

RG_API = {"api-version": "2024-11-01"}
CC_API = {"api-version": "2026-05-01"}
SP_API = {"api-version": "2026-01-01"}
AUTHZ_API = {"api-version": "2022-04-01"}
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"

_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
AGENT_PUBLIC_KEY = base64.b64encode(
    _KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1)
).decode()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def cluster_body(location: str = "eastus", **properties: object) -> dict[str, object]:
    return {
        "location": location,
        "identity": {"type": "SystemAssigned"},
        "properties": {"agentPublicKeyCertificate": AGENT_PUBLIC_KEY, **properties},
    }


def group_path(server: ServerProcess, group: str) -> str:
    return f"/subscriptions/{server.admin['subscription']}/resourceGroups/{group}"


def cluster_path(server: ServerProcess, group: str, name: str) -> str:
    return f"{group_path(server, group)}/providers/Microsoft.Kubernetes/connectedClusters/{name}"


def make_group(server: ServerProcess, name: str | None = None) -> str:
    name = name or unique("rg")
    with server.client() as c:
        r = c.put(group_path(server, name), params=RG_API, json={"location": "eastus"})
        assert r.status_code in (200, 201), r.text
    return name


@dataclass
class Principal:
    app_id: str
    object_id: str
    secret: str


def make_principal(server: ServerProcess, role: str | None = None, scope: str | None = None) -> Principal:
    """A new service principal, with ``role`` at ``scope`` when given ("" is the tenant root)."""
    with server.client() as c:
        r = c.post("/providers/Halyard.Directory/servicePrincipals", params=SP_API, json={"displayName": unique("sp")})
        assert r.status_code == 201, r.text
        body = r.json()
        principal = Principal(body["appId"], body["id"], body["password"])
        if role and scope is not None:
            r = c.put(
                f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                params=AUTHZ_API,
                json={"properties": {"roleDefinitionId": role, "principalId": principal.object_id}},
            )
            assert r.status_code == 201, r.text
    return principal
