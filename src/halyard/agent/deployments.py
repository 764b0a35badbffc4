"""controller-manager's in-cluster duty: the health of the agent Deployments, published for resource-sync.

In local mode the manager sees its agents' reconciles directly; in-cluster each agent is a Deployment the kubelet
restarts, so the manager reads their availability from the API and publishes ``agentState``/``agentErrors``.
"""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment

from halyard.agent import handoff
from halyard.api import cluster as names
from halyard.api.agents import AgentError
from halyard.core.clock import Clock

INTERVAL = 15.0


class DeploymentHealth:
    name = "deployment-health"

    def __init__(self, kube: AsyncClient, clock: Clock) -> None:
        self._kube = kube
        self._clock = clock

    async def reconcile(self) -> float:
        errors = []
        selector: dict[str, Any] = dict(names.MANAGED_BY_LABEL)
        async for deployment in self._kube.list(Deployment, namespace=names.NAMESPACE, labels=selector):
            wanted = (deployment.spec.replicas if deployment.spec else None) or 0
            ready = (deployment.status.readyReplicas if deployment.status else None) or 0
            if ready < wanted:
                name = deployment.metadata.name if deployment.metadata else "?"
                errors.append(
                    AgentError(
                        message=f"{ready}/{wanted} replicas ready",
                        component=str(name),
                        time=self._clock.now(),
                    )
                )
        await handoff.publish_health(self._kube, "Failed" if errors else "Succeeded", errors)
        return INTERVAL
