"""``halyard connectedk8s upgrade``: pin a connected cluster's agents to one version and roll them to it.

The server decides which versions exist (a ``desiredAgentVersion`` it does not offer is ``InvalidAgentVersion``).
This side checks, before anything changes, that the version can be applied where the agents run, then applies it
there: local agents run this machine's installed halyard and are restarted onto it; in-cluster agents are the
``halyard-agent`` Helm release, whose ``image.tag`` ``helm upgrade`` sets.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import halyard
from halyard.agent.upgrade import installed_version, same_version
from halyard.cli import agent as local_agents
from halyard.cli.connectedk8s import API_VERSION, cluster_path
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.onboarding import find_helm, on_cluster
from halyard.kube import onboarding as kube_onboarding
from halyard.kube.helm import RELEASE, Helm, HelmError, agent_chart


def local_agent_version() -> str:
    """The version local agents run once (re)started: the halyard installed here (else, from a source tree, this)."""
    return installed_version() or halyard.__version__


class Agents(Protocol):
    """Where a cluster's agents run, and how they are moved onto a version."""

    def check(self, version: str) -> None:
        """Refuse, before anything changes, a version that cannot be applied here."""

    def apply(self, version: str, wait_seconds: int | None) -> None:
        """Move the agents onto ``version``; with ``wait_seconds``, until the rollout is done, where there is one."""

    def check_alive(self) -> None:
        """Fail early while waiting if the agents cannot report any more."""


@dataclass(frozen=True)
class LocalAgents:
    """Agents this CLI started on this machine (``connect --agent-mode local``)."""

    state_dir: Path
    kubeconfig: Path | None
    context: str | None

    def check(self, version: str) -> None:
        installed = local_agent_version()
        if not same_version(version, installed):
            raise CliError(
                f"The local agents run this machine's halyard {installed}; install halyard {version} "
                f"(pip install 'halyard=={version}') and run upgrade again.",
                "AgentVersionNotInstalled",
            )

    def apply(self, version: str, wait_seconds: int | None) -> None:
        # A stop and a fresh start, as delete and connect do: the new process imports the installed code.
        local_agents.stop_detached(self.state_dir)
        try:
            local_agents.start_detached(self.state_dir, self.kubeconfig, self.context)
        except RuntimeError as exc:
            raise CliError(f"The local agents did not start again: {exc}", "AgentsNotRunning") from None

    def check_alive(self) -> None:
        if local_agents.running_pid(self.state_dir) is None:
            raise CliError(
                f"The local agents stopped after the restart. Their log: {self.state_dir / local_agents.LOG_FILE}",
                "AgentsNotRunning",
            )


@dataclass(frozen=True)
class InClusterAgents:
    """The chart's Deployments in the cluster of a kubeconfig (``connect --agent-mode in-cluster``)."""

    helm: Helm
    chart: str

    def check(self, version: str) -> None:
        """The image tag is the version; whether it exists is for the server's list and the registry to say."""

    def apply(self, version: str, wait_seconds: int | None) -> None:
        try:
            self.helm.upgrade(self.chart, {"image.tag": version}, wait_seconds=wait_seconds)
        except HelmError as exc:
            raise CliError(
                f"helm upgrade of the release {RELEASE} failed: {exc}. The resource already asks for {version}; fix "
                "the cause and run the same upgrade again.",
                "HelmUpgradeFailed",
            ) from None

    def check_alive(self) -> None:
        """Pods are the cluster's to restart; the timeout bounds the wait."""


def upgrade_agents(
    inv: Invocation,
    group: str,
    name: str,
    version: str,
    kubeconfig: Path | None,
    context: str | None,
    timeout: int,
    wait: bool,
) -> dict[str, Any]:
    """Pin the cluster to agent ``version`` and apply it; the cluster resource as it ends."""
    path = cluster_path(inv, group, name)
    cluster: dict[str, Any] = inv.arm.get(path, API_VERSION)
    properties = cluster.setdefault("properties", {})
    profile = dict(properties.get("arcAgentProfile") or {})
    if profile.get("agentAutoUpgrade", "Enabled") != "Disabled":  # absent means the default, Enabled
        raise CliError(
            f"Auto-upgrade is enabled for '{name}', so its agents follow the newest version by themselves. To pin "
            f"version {version}, turn it off first: halyard connectedk8s update -g {group} -n {name} "
            "--auto-upgrade false",
            "AutoUpgradeEnabled",
        )
    agents = _locate(path, kubeconfig, context)
    agents.check(version)
    deadline = time.monotonic() + timeout
    with inv.progress("Setting the desired agent version"):
        properties["arcAgentProfile"] = {**profile, "desiredAgentVersion": version}
        first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=cluster)
        updated: dict[str, Any] = inv.arm.wait("PUT", inv.arm.resource_url(path, API_VERSION), first) or cluster
    # The pin as the server stored it: the image tag to deploy and the version the agents are to report.
    version = str(
        ((updated.get("properties") or {}).get("arcAgentProfile") or {}).get("desiredAgentVersion") or version
    )
    with inv.progress(f"Upgrading the agents to {version}"):
        agents.apply(version, max(1, int(deadline - time.monotonic())) if wait else None)
    if not wait:
        return updated
    return _wait_for_version(inv, path, version, agents, deadline, timeout)


def _locate(path: str, kubeconfig: Path | None, context: str | None) -> Agents:
    """Local agents when this CLI started some for the resource (as ``delete`` finds them), else the chart's
    release in the cluster of ``kubeconfig`` (default: the usual kubeconfig), which must be onboarded as it."""
    state_dir = local_agents.state_dir_for(path)
    started = local_agents.started_target(state_dir)
    if started is not None:
        return LocalAgents(state_dir, started[0], started[1])
    try:
        onboarded = on_cluster(kubeconfig, context, kube_onboarding.read_onboarding)
    except CliError as exc:
        if exc.code != "KubeconfigError":
            raise
        raise CliError(
            f"No local agents of this connected cluster run on this machine, so they are looked for in the cluster of "
            f"the kubeconfig. {exc.message} Give the cluster's kubeconfig with --kube-config (and --kube-context).",
            exc.code,
        ) from None
    if onboarded is None or onboarded.resource_id.lower() != path.lower():
        what = f"is connected as {onboarded.resource_id}" if onboarded else "carries no Halyard agents"
        raise CliError(
            f"No local agents of this connected cluster run on this machine, and the cluster of the kubeconfig {what}. "
            "Give the cluster's kubeconfig with --kube-config (and --kube-context).",
            "AgentsNotFound",
        )
    helm = find_helm(kubeconfig, context)  # only now: where there are no agents, a missing helm is beside the point
    if not helm.installed():
        raise CliError(
            f"The cluster has no agent release '{RELEASE}' in namespace halyard-system. Install the agents again with "
            "halyard connectedk8s connect --agent-mode in-cluster.",
            "AgentsNotFound",
        )
    return InClusterAgents(helm, agent_chart())


def _wait_for_version(
    inv: Invocation, path: str, version: str, agents: Agents, deadline: float, timeout: int
) -> dict[str, Any]:
    resource: dict[str, Any] = {}
    with inv.progress(f"Waiting for the agents to report {version}"):
        while True:
            resource = inv.arm.get(path, API_VERSION)
            properties = resource.get("properties") or {}
            status = properties.get("connectivityStatus")
            if same_version(str(properties.get("agentVersion")), version) and status == "Connected":
                return resource
            if status == "Expired":
                raise CliError(
                    "The cluster's identity has expired, so its agents cannot report any more: delete the connected "
                    "cluster and connect it again.",
                    "ClusterExpired",
                )
            if time.monotonic() >= deadline:
                break
            agents.check_alive()
            time.sleep(0.5)
    raise CliError(
        f"The agents did not report version {version} within {timeout} s: the cluster last reported agentVersion "
        f"{properties.get('agentVersion') or '(none)'}, connectivityStatus {status}.",
        "UpgradeTimeout",
    )
