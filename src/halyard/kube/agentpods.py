"""Why the agents' pods are not running, read from their container states: what ``connect`` reports at once instead
of waiting out its timeout (an image the cluster cannot pull, a container that keeps crashing)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from halyard.api import cluster as names

# Waiting reasons a kubelet does not get out of by itself: each needs the user (a registry, an image, a config).
# ContainerCreating and PodInitializing are the normal way up, so they are not here.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
STUCK = PULL_FAILURES | {"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


@dataclass(frozen=True)
class Stuck:
    """A container waiting for a reason in :data:`STUCK`."""

    pod: str
    container: str
    reason: str
    message: str = ""

    @property
    def cannot_pull(self) -> bool:
        return self.reason in PULL_FAILURES

    def __str__(self) -> str:
        detail = f" ({self.message})" if self.message else ""
        return f"pod {self.pod}: container {self.container}: {self.reason}{detail}"


def pod_problems(pods: Iterable[Mapping[str, Any]], current_images: Collection[str] | None = None) -> list[Stuck]:
    """Every stuck container (shown as ``pod p: container c: ImagePullBackOff (Back-off pulling image "x")``), in
    pod and container order. With ``current_images`` (what the Deployments ask for now), a container of another
    image is ignored: it belongs to a pod of the previous rollout, on its way out (a re-run that fixed the registry
    must not fail on the pods it replaces)."""
    problems = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        wanted = {c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
        for status in (pod.get("status") or {}).get("containerStatuses") or []:
            if current_images is not None and wanted.get(status.get("name")) not in current_images:
                continue
            waiting = (status.get("state") or {}).get("waiting") or {}
            if waiting.get("reason") in STUCK:
                problems.append(Stuck(name, status.get("name", "?"), waiting["reason"], waiting.get("message", "")))
    return problems


async def agent_pod_problems(client: AsyncClient) -> list[Stuck]:
    """``pod_problems`` of the chart's pods in the agents' namespace, for the images its Deployments ask for now."""
    labels: dict[str, Any] = dict(names.AGENT_WORKLOAD_LABEL)
    current: set[str] = {
        container.image
        async for deployment in client.list(Deployment, namespace=names.NAMESPACE, labels=labels)
        if deployment.spec is not None and deployment.spec.template.spec is not None
        for container in deployment.spec.template.spec.containers
        if container.image
    }
    pods = [pod.to_dict() async for pod in client.list(Pod, namespace=names.NAMESPACE, labels=labels)]
    return pod_problems(sorted(pods, key=lambda p: p["metadata"]["name"]), current)
