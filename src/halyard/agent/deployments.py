"""controller-manager's in-cluster duty: the health of the agent Deployments, published for resource-sync.

In local mode the manager sees its agents' reconciles directly; in-cluster each agent is a Deployment the kubelet
restarts, so the manager reads their availability from the API and publishes ``agentState``/``agentErrors``, together
with the health of its own duties in its pod (the upgrade check's failures and warnings).
"""

from __future__ import annotations

from collections.abc import Callable
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

    def __init__(
        self, kube: AsyncClient, clock: Clock, own: Callable[[], tuple[str | None, list[AgentError]]] | None = None
    ) -> None:
        self._kube = kube
        self._clock = clock
        self._own = own

    async def reconcile(self) -> float:
        errors: list[AgentError] = []
        selector: dict[str, Any] = dict(names.AGENT_WORKLOAD_LABEL)
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
        # This pod's other duties (the upgrade check); this reconcile's own past failure is over once it runs.
        errors += [e for e in (self._own()[1] if self._own else []) if e.component != self.name]
        failed = any(e.severity == "Error" for e in errors)  # a warning alone fails nothing
        await handoff.publish_health(self._kube, "Failed" if failed else "Succeeded", errors)
        return INTERVAL
