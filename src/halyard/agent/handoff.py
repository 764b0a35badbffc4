"""What agents in separate pods (in-cluster mode) hand each other through the Kubernetes API.

In local mode every agent runs in one process and hands things over in memory; in-cluster each agent is its own
Deployment with its own ServiceAccount, so the identity operator publishes a short-lived token (never the
certificate key) in a Secret only resource-sync may read, the metadata operator publishes the cluster's facts in a
ConfigMap, the controller manager publishes the agents' health in another, and resource-sync publishes the agent
version the control plane wants (``targetAgentVersion`` of the heartbeat reply) for the controller manager, and the
endpoint map the control plane last sent (private link) for every agent (``endpoints.py``).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import datetime as dt
import json
from typing import Any

from lightkube import AsyncClient
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Secret

from halyard.api import cluster as names
from halyard.api import diagnostics
from halyard.api.agents import AgentError, ServiceEndpoints
from halyard.api.diagnostics import Diagnostics
from halyard.kube.client import data_of
from halyard.kube.facts import ClusterFacts

TOKEN_SECRET = "halyard-agent-token"
METADATA_CONFIGMAP = "halyard-cluster-metadata"
HEALTH_CONFIGMAP = "halyard-agent-health"
TARGET_CONFIGMAP = "halyard-agent-target"
ENDPOINTS_CONFIGMAP = "halyard-agent-endpoints"


async def _get_data(kube: AsyncClient, kind: type[Secret] | type[ConfigMap], name: str) -> dict[str, str] | None:
    return await data_of(kube, kind, name, names.NAMESPACE)


async def publish_token(kube: AsyncClient, token: str, expires_at: dt.datetime) -> None:
    data = {"token": token, "expiresOn": expires_at.isoformat()}
    await kube.apply(
        Secret(
            metadata=ObjectMeta(name=TOKEN_SECRET, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)),
            type="Opaque",
            data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
        ),
        force=True,
    )


class PublishedToken:
    """resource-sync's token source in-cluster: the token the identity operator keeps fresh in a Secret."""

    def __init__(self, kube: AsyncClient) -> None:
        self._kube = kube

    async def token(self) -> str:
        data = await _get_data(self._kube, Secret, TOKEN_SECRET)
        if not data or "token" not in data:
            raise LookupError(f"{names.NAMESPACE}/{TOKEN_SECRET} is not published yet (identity-operator)")
        return base64.b64decode(data["token"]).decode()

    def forget_token(self) -> None:
        """Nothing cached here: the next call reads the Secret the identity operator refreshes."""

    async def wait_ready(self, timeout: float) -> None:
        await self.token()


async def publish_facts(kube: AsyncClient, facts: ClusterFacts) -> None:
    await kube.apply(
        ConfigMap(
            metadata=ObjectMeta(
                name=METADATA_CONFIGMAP, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)
            ),
            data={"facts": json.dumps(dataclasses.asdict(facts))},
        ),
        force=True,
    )


class PublishedFacts:
    """resource-sync's view of the cluster in-cluster: what the metadata operator published."""

    def __init__(self, kube: AsyncClient) -> None:
        self._kube = kube

    async def facts(self, timeout: float) -> ClusterFacts | None:
        data = await _get_data(self._kube, ConfigMap, METADATA_CONFIGMAP)
        if not data or "facts" not in data:
            return None
        return ClusterFacts(**json.loads(data["facts"]))


async def publish_health(kube: AsyncClient, state: str, errors: list[AgentError]) -> None:
    await kube.apply(
        ConfigMap(
            metadata=ObjectMeta(name=HEALTH_CONFIGMAP, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)),
            data={"state": state, "errors": json.dumps([e.model_dump(mode="json") for e in errors])},
        ),
        force=True,
    )


class PublishedHealth:
    """resource-sync's health report in-cluster: what the controller manager published."""

    def __init__(self, kube: AsyncClient) -> None:
        self._kube = kube

    async def __call__(self) -> tuple[str | None, list[AgentError]]:
        data = await _get_data(self._kube, ConfigMap, HEALTH_CONFIGMAP)
        if not data:
            return None, []
        raw: list[dict[str, Any]] = json.loads(data.get("errors", "[]"))
        return data.get("state"), [AgentError.model_validate(e) for e in raw]


async def publish_target(kube: AsyncClient, target: str | None) -> None:
    await kube.apply(
        ConfigMap(
            metadata=ObjectMeta(name=TARGET_CONFIGMAP, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)),
            data={"targetAgentVersion": target or ""},
        ),
        force=True,
    )


class PublishedTarget:
    """The controller manager's view in-cluster of the agent version wanted: what resource-sync published."""

    def __init__(self, kube: AsyncClient) -> None:
        self._kube = kube

    async def __call__(self) -> str | None:
        data = await _get_data(self._kube, ConfigMap, TARGET_CONFIGMAP)
        return (data or {}).get("targetAgentVersion") or None


async def publish_endpoints(kube: AsyncClient, endpoints: ServiceEndpoints, *, onboarding: str) -> None:
    """Publish the map the agents follow, with the version of the onboarding map it was followed from (a cluster
    onboarded again starts afresh: a map published for the previous onboarding is not followed)."""
    await kube.apply(
        ConfigMap(
            metadata=ObjectMeta(
                name=ENDPOINTS_CONFIGMAP, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)
            ),
            data={"endpoints": endpoints.model_dump_json(exclude_none=True), "onboarding": onboarding},
        ),
        force=True,
    )


async def published_endpoints(kube: AsyncClient, onboarding: str) -> ServiceEndpoints | None:
    """The map resource-sync last published from the onboarding map of version ``onboarding`` (None: none yet, or
    one published for another onboarding; the onboarding map holds). A map an older resource-sync published
    names no onboarding: it is followed, as it was before."""
    data = await _get_data(kube, ConfigMap, ENDPOINTS_CONFIGMAP)
    if not data or "endpoints" not in data or data.get("onboarding", onboarding) != onboarding:
        return None
    return ServiceEndpoints.model_validate_json(data["endpoints"])


async def publish_diagnostics(kube: AsyncClient, record: Diagnostics) -> None:
    """The agents' view, for ``connectedk8s troubleshoot`` (``agent/diagnostics.py``)."""
    await kube.apply(
        ConfigMap(
            metadata=ObjectMeta(
                name=diagnostics.CONFIGMAP, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)
            ),
            data={diagnostics.KEY: record.model_dump_json(exclude_none=True)},
        ),
        force=True,
    )


async def wait_for(check: Any, timeout: float, interval: float = 0.2) -> Any:
    """Poll an async ``check`` until it returns a value other than None, or ``timeout`` passes."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value is not None or loop.time() >= deadline:
            return value
        await asyncio.sleep(interval)
