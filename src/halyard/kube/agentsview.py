"""What ``connectedk8s troubleshoot`` reads of a cluster: whom it is onboarded as, the agents' Deployments and
stuck pods, and the view the agents recorded from where they run (``api/diagnostics.py``). Read only; the
onboarding Secret (the key) is not read."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap
from pydantic import ValidationError

from halyard.api import cluster as names
from halyard.api import diagnostics
from halyard.api.diagnostics import Diagnostics
from halyard.kube.agentpods import Stuck, agent_pod_problems
from halyard.kube.client import data_of


@dataclass(frozen=True)
class AgentDeployment:
    name: str
    ready: int
    wanted: int


@dataclass(frozen=True)
class AgentsInCluster:
    resource_id: str | None  # the resource the cluster is onboarded as (None: not onboarded)
    deployments: list[AgentDeployment] = field(default_factory=list)  # none: local agents (or none installed)
    stuck: list[Stuck] = field(default_factory=list)
    record: Diagnostics | None = None
    record_error: str | None = None  # the record is there but cannot be read


async def _configmap(client: AsyncClient, name: str) -> dict[str, str] | None:
    return await data_of(client, ConfigMap, name, names.NAMESPACE)


async def read_agents(client: AsyncClient) -> AgentsInCluster:
    """The cluster's side of troubleshooting; ``resource_id`` None (and nothing else read) when not onboarded."""
    config = await _configmap(client, names.CLUSTER_CONFIGMAP)
    resource_id = (config or {}).get(names.KEY_RESOURCE_ID)
    if not resource_id:
        return AgentsInCluster(resource_id=None)
    labels: dict[str, Any] = dict(names.AGENT_WORKLOAD_LABEL)
    deployments = [
        AgentDeployment(
            name=d.metadata.name if d.metadata and d.metadata.name else "?",
            ready=(d.status.readyReplicas or 0) if d.status else 0,
            wanted=d.spec.replicas if d.spec and d.spec.replicas is not None else 1,
        )
        async for d in client.list(Deployment, namespace=names.NAMESPACE, labels=labels)
    ]
    stuck = await agent_pod_problems(client) if deployments else []
    raw = (await _configmap(client, diagnostics.CONFIGMAP) or {}).get(diagnostics.KEY)
    record, error = None, None
    if raw is not None:
        try:
            record = Diagnostics.model_validate_json(raw)
        except ValidationError as exc:
            error = f"{diagnostics.CONFIGMAP} cannot be read: {str(exc)[:200]}"
    return AgentsInCluster(resource_id, sorted(deployments, key=lambda d: d.name), stuck, record, error)
