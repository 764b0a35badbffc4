"""controller-manager's upgrade duty: bring the agents to the version the control plane wants.

The control plane names the wanted version in every heartbeat reply (``targetAgentVersion``: the latest offered
while ``agentAutoUpgrade`` is Enabled, the pinned ``desiredAgentVersion`` while it is Disabled). This check acts on
it on an interval (hourly by default, as Arc polls) and promptly when the target changes:

- **in-cluster**, the agent Deployments' image tags are patched to the target (registry and repository kept) and
  annotated ``halyard.io/agent-version``; the kubelet rolls them. resource-sync, which sees the reply, hands the
  target over through a ConfigMap (``handoff.py``).
- **local mode** the agents are this machine's halyard, so they can only restart onto the halyard installed here:
  when that is the target they restart (the CLI re-executes ``halyard agent run``); otherwise they say, as a
  ``Warning`` in ``agentErrors``, what to install.

See docs/decisions/005-agent-upgrades.md.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from lightkube import AsyncClient
from lightkube.resources.apps_v1 import Deployment
from lightkube.types import PatchType

from halyard import __version__
from halyard.agent.metrics import AgentMetrics
from halyard.api import cluster as names
from halyard.core.agentversions import installed_version, same_version

log = logging.getLogger("halyard.agent")
Mode = Literal["local", "in-cluster"]
ANNOTATION = "halyard.io/agent-version"
DEFAULT_CHECK_SECONDS = 3600.0
TARGET_POLL = 3.0  # how soon a changed target is acted on (reading it is cheap: memory, or one ConfigMap GET)
# Set across a local restart to the version restarted for, so a restart that did not take cannot loop.
RESTARTED_FOR_ENV = "HALYARD_AGENT_RESTARTED_FOR"
WARNING_KEY = "agent-upgrade"
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")  # what an OCI image tag may be

Target = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Decision:
    action: Literal["none", "restart", "report", "patch"]
    version: str | None = None
    message: str | None = None  # the Warning to show, for "report"


def decide(
    running: str, target: str | None, mode: Mode, installed: str | None, *, restarted_for: str | None = None
) -> Decision:
    """What to do about the wanted agent version. ``installed`` is the halyard installed on this machine now
    (local mode); ``restarted_for`` the target a previous local restart was for."""
    if target is None or same_version(target, running):
        return Decision("none")
    if mode == "in-cluster":
        return Decision("patch", target)
    installed_is_target = installed is not None and same_version(installed, target)
    if installed_is_target and not (restarted_for and same_version(restarted_for, target)):
        return Decision("restart", target)
    if installed_is_target:
        message = (
            f"agent version {target} is wanted and halyard {target} is installed here, but the agents restarted onto "
            f"it still run {running}: check which halyard 'python -m halyard' imports in the agents' environment"
        )
    else:
        message = (
            f"agent version {target} is wanted; these local agents run this machine's halyard {installed or running} "
            f"and can only restart on the installed one: install halyard {target} (pip install 'halyard=={target}') "
            "to upgrade"
        )
    return Decision("report", target, message)


def with_tag(image: str, tag: str) -> str:
    """``image`` with its tag replaced by ``tag`` (registry, port and repository kept; a digest dropped, since a
    digest would pin the old image whatever the tag says)."""
    if not _TAG.match(tag):
        raise ValueError(f"agent version {tag!r} cannot be an image tag")
    name = image.split("@", 1)[0]
    if name.rfind(":") > name.rfind("/"):  # a colon before the last slash is a registry's port, not a tag
        name = name[: name.rfind(":")]
    return f"{name}:{tag}"


async def patch_deployments(kube: AsyncClient, version: str) -> list[str]:
    """Point every agent Deployment's containers at ``version``; the names of those that changed."""
    patched = []
    labels: dict[str, Any] = dict(names.AGENT_WORKLOAD_LABEL)
    async for deployment in kube.list(Deployment, namespace=names.NAMESPACE, labels=labels):
        name = deployment.metadata.name if deployment.metadata else None
        pod = deployment.spec.template.spec if deployment.spec else None
        if not name or pod is None:
            continue
        images = {c.name: with_tag(c.image, version) for c in pod.containers if c.image}
        current = {c.name: c.image for c in pod.containers}
        annotations = (deployment.metadata.annotations if deployment.metadata else None) or {}
        if all(current[n] == image for n, image in images.items()) and annotations.get(ANNOTATION) == version:
            continue
        body = {
            "metadata": {"annotations": {ANNOTATION: version}},
            "spec": {"template": {"spec": {"containers": [{"name": n, "image": i} for n, i in images.items()]}}},
        }
        await kube.patch(Deployment, name, body, namespace=names.NAMESPACE, patch_type=PatchType.STRATEGIC)
        patched.append(name)
    return patched


class UpgradeCheck:
    """Acts on the wanted agent version; supervised by the controller manager like every agent."""

    name = "agent-upgrade"

    def __init__(
        self,
        target: Target,
        metrics: AgentMetrics,
        warn: Callable[[str, str | None], None],
        *,
        mode: Mode,
        interval: float = DEFAULT_CHECK_SECONDS,
        kube: AsyncClient | None = None,
        restart: Callable[[str], None] | None = None,
        restarted_for: str | None = None,
        installed: Callable[[], str | None] = installed_version,
        running: str = __version__,
    ) -> None:
        if mode == "in-cluster" and kube is None:
            raise ValueError("the in-cluster upgrade check patches Deployments: it needs the Kubernetes client")
        if mode == "local" and restart is None:
            raise ValueError("the local upgrade check restarts the agents: it needs the restart hook")
        self._target = target
        self._metrics = metrics
        self._warn = warn
        self._mode: Mode = mode
        self._interval = interval
        self._kube = kube
        self._restart = restart
        self._restarted_for = restarted_for
        self._installed = installed
        self._running = running
        self._checked: object = object()  # the target of the last completed check (none yet)
        self._due = 0.0

    async def reconcile(self) -> float:
        target = await self._target()
        now = asyncio.get_running_loop().time()
        if target == self._checked and now < self._due:
            return min(TARGET_POLL, self._due - now)
        self._metrics.upgrade_checks.inc()
        installed = self._installed() if self._mode == "local" and target is not None else None
        decision = decide(self._running, target, self._mode, installed, restarted_for=self._restarted_for)
        self._warn(WARNING_KEY, decision.message)
        if decision.message:
            log.warning("agent upgrade not possible here", extra={"target": target, "reason": decision.message})
        if decision.action == "restart" and decision.version and self._restart is not None:
            log.warning("restarting the agents onto the installed halyard", extra={"version": decision.version})
            self._metrics.upgrades_started.inc()
            self._restart(decision.version)
        elif decision.action == "patch" and decision.version and self._kube is not None:
            patched = await patch_deployments(self._kube, decision.version)
            if patched:
                self._metrics.upgrades_started.inc()
                log.warning(
                    "agent Deployments set to a new version",
                    extra={"version": decision.version, "deployments": ",".join(patched)},
                )
        # Only a check that went through counts: a failed patch is retried (with backoff) by the manager.
        self._checked = target
        self._due = now + self._interval
        return min(TARGET_POLL, self._interval)
