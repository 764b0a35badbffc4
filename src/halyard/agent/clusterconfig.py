"""What onboarding left in the cluster for the agents: the resource identity, endpoint map, CA and onboarding key."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap, Secret

from halyard.api import cluster as names
from halyard.api.agents import EndpointMap


class NotOnboarded(Exception):
    """The cluster has no (or an incomplete) Halyard onboarding configuration."""


@dataclass(frozen=True)
class ClusterConfig:
    resource_id: str
    endpoints: EndpointMap
    ca_bundle: str  # PEM; empty means the system trust store
    onboarding_key: PrivateKeyTypes | None  # only the identity operator reads (and may read) it
    features: frozenset[str] = names.DEFAULT_FEATURES  # optional agent features turned on (read at start)


async def load_cluster_config(client: AsyncClient, *, onboarding_key: bool = True) -> ClusterConfig:
    """The onboarding configuration; ``onboarding_key`` also reads the onboarding Secret (identity-operator only)."""
    try:
        config = await client.get(ConfigMap, names.CLUSTER_CONFIGMAP, namespace=names.NAMESPACE)
        secret = (
            await client.get(Secret, names.ONBOARDING_SECRET, namespace=names.NAMESPACE) if onboarding_key else None
        )
    except ApiError as exc:
        if exc.status.code == 404:
            raise NotOnboarded(
                f"{names.NAMESPACE}/{names.CLUSTER_CONFIGMAP} or {names.ONBOARDING_SECRET} is missing: the cluster is "
                "not onboarded (run `halyard connectedk8s connect`)"
            ) from None
        raise
    data = config.data or {}
    try:
        endpoints = EndpointMap.model_validate_json(data[names.KEY_ENDPOINTS])
        key_pem = base64.b64decode((secret.data or {})[names.KEY_ONBOARDING_KEY]) if secret is not None else None
        return ClusterConfig(
            resource_id=data[names.KEY_RESOURCE_ID],
            endpoints=endpoints,
            ca_bundle=data.get(names.KEY_CA_BUNDLE, ""),
            onboarding_key=load_pem_private_key(key_pem, password=None) if key_pem else None,
            features=names.parse_features(data.get(names.KEY_FEATURES)),
        )
    except (KeyError, ValueError) as exc:
        raise NotOnboarded(f"the onboarding configuration is incomplete or corrupt ({exc})") from None
