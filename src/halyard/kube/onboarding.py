"""What onboarding writes into a cluster and reads back: permission checks, the namespace, Secret and ConfigMap."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.authorization_v1 import ResourceAttributes, SelfSubjectAccessReviewSpec
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.authorization_v1 import SelfSubjectAccessReview
from lightkube.resources.core_v1 import ConfigMap, Namespace, Secret
from lightkube.types import PatchType

from halyard.api import cluster as names

if TYPE_CHECKING:  # an annotation only: readers of the onboarding (delete, upgrade) need not load the wire models
    from halyard.api.agents import EndpointMap

# (verb, group, resource, namespace): what installing the agents needs.
REQUIRED_ACCESS = (
    ("create", "", "namespaces", None),
    ("create", "rbac.authorization.k8s.io", "clusterrolebindings", None),
    ("create", "", "secrets", names.NAMESPACE),
    ("list", "", "nodes", None),
)


@dataclass(frozen=True)
class Onboarded:
    """The onboarding a cluster already carries (from its ConfigMap)."""

    resource_id: str
    onboarding_key_pem: bytes | None
    features: frozenset[str] = names.DEFAULT_FEATURES  # the optional agent features the cluster has on


async def missing_access(client: AsyncClient) -> list[str]:
    """The permissions the caller lacks, asked with SelfSubjectAccessReview (e.g. ``create clusterrolebindings``)."""
    missing = []
    for verb, group, resource, namespace in REQUIRED_ACCESS:
        review = SelfSubjectAccessReview(
            spec=SelfSubjectAccessReviewSpec(
                resourceAttributes=ResourceAttributes(verb=verb, group=group, resource=resource, namespace=namespace)
            )
        )
        answer = await client.create(review)
        if not (answer.status and answer.status.allowed):
            where = f" in namespace {namespace}" if namespace else ""
            missing.append(f"{verb} {resource}{where}")
    return missing


async def read_onboarding(client: AsyncClient) -> Onboarded | None:
    try:
        config = await client.get(ConfigMap, names.CLUSTER_CONFIGMAP, namespace=names.NAMESPACE)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    resource_id = (config.data or {}).get(names.KEY_RESOURCE_ID)
    if not resource_id:
        return None
    key: bytes | None = None
    try:
        secret = await client.get(Secret, names.ONBOARDING_SECRET, namespace=names.NAMESPACE)
        encoded = (secret.data or {}).get(names.KEY_ONBOARDING_KEY)
        key = base64.b64decode(encoded) if encoded else None
    except ApiError as exc:
        if exc.status.code != 404:
            raise
    features = names.parse_features((config.data or {}).get(names.KEY_FEATURES))
    return Onboarded(resource_id=resource_id, onboarding_key_pem=key, features=features)


async def read_features(client: AsyncClient) -> str | None:
    """The cluster ConfigMap's FEATURES value as written (None: absent, the defaults apply; see
    :func:`halyard.api.cluster.parse_features`)."""
    config = await client.get(ConfigMap, names.CLUSTER_CONFIGMAP, namespace=names.NAMESPACE)
    return (config.data or {}).get(names.KEY_FEATURES)


async def write_features(client: AsyncClient, features: frozenset[str]) -> None:
    """Set FEATURES (the rest of the ConfigMap is onboarding's)."""
    await write_settings(client, {names.KEY_FEATURES: names.format_features(features)})


async def write_settings(client: AsyncClient, data: dict[str, str]) -> None:
    """Set these keys of the cluster ConfigMap: a merge patch of them alone."""
    await client.patch(
        ConfigMap, names.CLUSTER_CONFIGMAP, {"data": data}, namespace=names.NAMESPACE, patch_type=PatchType.MERGE
    )


async def install(
    client: AsyncClient,
    *,
    resource_id: str,
    location: str,
    endpoints: EndpointMap,
    ca_bundle: str,
    onboarding_key_pem: bytes,
) -> None:
    """Create (or update) the namespace, the onboarding Secret and the cluster ConfigMap. Idempotent."""
    labels = dict(names.MANAGED_BY_LABEL)
    await client.apply(Namespace(metadata=ObjectMeta(name=names.NAMESPACE, labels=labels)), force=True)
    parts = resource_id.strip("/").split("/")
    # A re-run of connect keeps the features enable-features/disable-features chose (the apply owns the whole map).
    try:
        kept = await read_features(client)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
        kept = None
    await client.apply(
        Secret(
            metadata=ObjectMeta(name=names.ONBOARDING_SECRET, namespace=names.NAMESPACE, labels=labels),
            type="Opaque",
            data={names.KEY_ONBOARDING_KEY: base64.b64encode(onboarding_key_pem).decode()},
        ),
        force=True,
    )
    await client.apply(
        ConfigMap(
            metadata=ObjectMeta(name=names.CLUSTER_CONFIGMAP, namespace=names.NAMESPACE, labels=labels),
            data={
                names.KEY_RESOURCE_ID: resource_id,
                names.KEY_SUBSCRIPTION: parts[1],
                names.KEY_RESOURCE_GROUP: parts[3],
                names.KEY_RESOURCE_NAME: parts[-1],
                names.KEY_LOCATION: location,
                names.KEY_ENDPOINTS: endpoints.model_dump_json(),
                names.KEY_CA_BUNDLE: ca_bundle,
                **({names.KEY_FEATURES: kept} if kept is not None else {}),
            },
        ),
        force=True,
    )


async def uninstall(client: AsyncClient) -> bool:
    """Delete the namespace (its Secrets, ConfigMap and agents go with it). True if there was one."""
    try:
        await client.delete(Namespace, names.NAMESPACE)
    except ApiError as exc:
        if exc.status.code == 404:
            return False
        raise
    return True
