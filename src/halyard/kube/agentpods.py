"""Why the agents' pods are not running, read from their container states: what ``connect`` reports at once instead
of waiting out its timeout (an image the cluster cannot pull, a container that keeps crashing)."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from typing import Any

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import Pod

from halyard.api import cluster as names

# Waiting reasons a kubelet does not get out of by itself: each needs the user (a registry, an image, a config).
# ContainerCreating and PodInitializing are the normal way up, so they are not here.
PULL_FAILURES = frozenset({"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"})
STUCK = PULL_FAILURES | {"CrashLoopBackOff", "CreateContainerConfigError", "CreateContainerError", "RunContainerError"}


def pod_problems(pods: Iterable[Mapping[str, Any]], current_images: Collection[str] | None = None) -> list[str]:
    """One line per container that is stuck, e.g. ``pod p: container c: ImagePullBackOff (Back-off pulling image
    "x")``, in pod and container order. With ``current_images`` (what the Deployments ask for now), a container of
    another image is ignored: it belongs to a pod of the previous rollout, on its way out (a re-run that fixed the
    registry must not fail on the pods it replaces)."""
    problems = []
    for pod in pods:
        name = (pod.get("metadata") or {}).get("name", "?")
        wanted = {c.get("name"): c.get("image") for c in (pod.get("spec") or {}).get("containers") or []}
        statuses = (pod.get("status") or {}).get("containerStatuses") or []
        for status in statuses:
            waiting = (status.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if current_images is not None and wanted.get(status.get("name")) not in current_images:
                continue
            if reason in STUCK:
                detail = f" ({waiting['message']})" if waiting.get("message") else ""
                problems.append(f"pod {name}: container {status.get('name', '?')}: {reason}{detail}")
    return problems


def cannot_pull(problems: Iterable[str]) -> bool:
    """Whether any of ``pod_problems``' lines is an image that could not be pulled."""
    return any(f": {reason}" in line for line in problems for reason in PULL_FAILURES)


async def agent_pod_problems(client: AsyncClient) -> list[str]:
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
