"""Where a connected cluster's agents run, chosen once per command: on this machine (``--agent-mode local``, a
supervised ``halyard agent run`` process) or in the cluster (``in-cluster``, the ``halyard-agent`` Helm chart).

Commands hold an :class:`Agents` and never branch on the mode: ``connect`` installs through it and watches it,
``upgrade`` moves it onto a version, and both ask it where to look when the agents do not report. What onboarding
writes into the cluster whatever the mode (namespace, Secret, ConfigMap) is ``kube/onboarding.py``; removing all
of it, and the agents of either mode, is :func:`remove_agents`.
"""

from __future__ import annotations

import ipaddress
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

import halyard
from halyard.api import cluster as names
from halyard.cli import localagents
from halyard.cli.errors import CliError
from halyard.cli.kubesession import KubeSession
from halyard.core.agentversions import installed_version, same_version
from halyard.kube import onboarding as kube_onboarding
from halyard.kube.agentpods import agent_pod_problems
from halyard.kube.facts import ClusterFacts
from halyard.kube.helm import RELEASE, Helm, HelmError, agent_chart

AGENT_MODES = ("in-cluster", "local")
POD_CHECK_SECONDS = 3.0  # how often a wait for in-cluster agents looks at their pods
if TYPE_CHECKING:  # only annotations: the wire models' import is connect's cost, not every connectedk8s command's
    from halyard.api.agents import EndpointMap

LABEL_SELECTOR = ",".join(f"{k}={v}" for k, v in names.AGENT_WORKLOAD_LABEL.items())
# The chart's Deployments that each optional feature turns on (the agents' names in agent/runner.py). extensions
# runs GitOps' agents too: Flux reaches a cluster only as the flux extension (decision 016).
FEATURE_AGENTS = {
    names.FEATURE_CLUSTER_CONNECT: ("clusterconnect-agent",),
    names.FEATURE_AZURE_RBAC: ("guard",),
    names.FEATURE_EXTENSIONS: ("extension-manager", "config-agent", "flux-logs-agent"),
}


def chart_values_for(features: frozenset[str]) -> tuple[dict[str, str], dict[str, bool]]:
    """The chart's values for ``features``: its optional agents' Deployments on or off, and ``features`` in every
    agent's pod template, so that a change rolls them all (each agent reads FEATURES once, at start)."""
    switches = {
        f"agents.{agent}.enabled": feature in features for feature, agents in FEATURE_AGENTS.items() for agent in agents
    }
    return {"features": names.format_features(features)}, switches


@dataclass(frozen=True)
class AgentsNetwork:
    """Where the agents' connections go, as ``connect`` was told (``--gateway-resource-id``, ``--proxy-*``)."""

    gateway: str | None = None  # host:port of the gateway endpoint
    proxy: str | None = None  # http://[user:password@]host:port
    skip_range: str | None = None
    proxy_cert: str | None = None  # PEM

    def chart_values(self) -> dict[str, str]:
        """The chart's ``network.*`` (arc-proxy's Deployment and Service, the other agents pointed at it)."""
        given = NetworkChange(self.gateway, self.proxy, self.skip_range, self.proxy_cert).chart_values()
        return {key: value for key, value in given.items() if value}


@dataclass(frozen=True)
class NetworkChange:
    """What ``connectedk8s update`` changes of where the agents' connections go: None keeps a setting as it is,
    "" clears it (``--disable-gateway``, ``--disable-proxy``)."""

    gateway: str | None = None  # host:port of the gateway endpoint
    proxy: str | None = None
    skip_range: str | None = None
    proxy_cert: str | None = None

    @property
    def turns_on(self) -> bool:
        """A gateway or a proxy is set: arc-proxy must run."""
        return bool(self.gateway or self.proxy)

    def chart_values(self) -> dict[str, str]:
        given = (
            ("network.gateway", self.gateway),
            ("network.proxy", self.proxy),
            ("network.proxySkipRange", self.skip_range),
            ("network.proxyCert", self.proxy_cert),
        )
        return {key: value for key, value in given if value is not None}


def _runs_arc_proxy(pid: int | None) -> bool:
    """Whether the local agents' process was started with arc-proxy (a gateway or a proxy in its environment).
    Where the environment cannot be read (no /proc), False: a restart with arc-proxy on is then the safe side."""
    if pid is None:
        return False
    try:
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(v.startswith((b"HALYARD_AGENT_GATEWAY=", b"HALYARD_AGENT_PROXY=")) for v in environ)


def local_agent_version() -> str:
    """The version local agents run once (re)started: the halyard installed here (else, from a source tree, this)."""
    return installed_version() or halyard.__version__


class Agents(Protocol):
    """Where one connected cluster's agents run, and what a command can do with them there."""

    def install(
        self,
        *,
        registry: str | None,
        pinned: str | None,
        features: frozenset[str] = names.DEFAULT_FEATURES,
        network: AgentsNetwork | None = None,
    ) -> None:
        """Start or install the agents (``connect``); ``pinned``: the version the resource pins, if any;
        ``features``: the optional features the cluster's configuration turns on; ``network``: a gateway or an
        enterprise proxy (arc-proxy runs, every agent goes through it)."""

    def obstacle(self, facts: ClusterFacts, endpoints: EndpointMap) -> str | None:
        """What will evidently keep these agents from ever connecting from this cluster, if anything."""

    def check(self, version: str) -> None:
        """Refuse, before anything changes, a version that cannot be applied here."""

    def apply(self, version: str, wait_seconds: int | None) -> None:
        """Move the agents onto ``version``; with ``wait_seconds``, until the rollout is done, where there is one."""

    def check_alive(self) -> None:
        """Fail early while waiting if the agents cannot report (any more)."""

    def where_to_look(self) -> str:
        """Where the user sees why the agents do not report (a sentence)."""

    def restart(self, features: frozenset[str]) -> None:
        """Have the agents read the cluster's configuration again, with the optional agents of ``features`` on and
        the others off (``enable-features``/``disable-features``)."""

    def reroute(self, change: NetworkChange) -> None:
        """Send the agents' connections where ``change`` says (``update`` onto or off a gateway or a proxy): once
        arc-proxy runs it follows the control plane's ``/gw/v1/network`` by itself, so what is done here is what it
        cannot do: start it (or, in the chart, install, change or remove it and point the other agents at it)."""


@dataclass(frozen=True)
class LocalAgents:
    """Agents this CLI runs on this machine for the cluster of ``kubeconfig``."""

    state_dir: Path
    kubeconfig: Path | None
    context: str | None

    def install(
        self,
        *,
        registry: str | None,
        pinned: str | None,
        features: frozenset[str] = names.DEFAULT_FEATURES,
        network: AgentsNetwork | None = None,
    ) -> None:
        # The local process runs this machine's halyard: neither the registry nor a pinned image tag applies; it
        # runs the optional agents FEATURES turns on by itself, and arc-proxy from the network settings connect
        # put in its environment (HALYARD_AGENT_GATEWAY, HALYARD_AGENT_PROXY...).
        self._start()

    def obstacle(self, facts: ClusterFacts, endpoints: EndpointMap) -> str | None:
        return None  # they run here, where the control plane was just reached

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
        localagents.stop_detached(self.state_dir)
        self._start()

    def restart(self, features: frozenset[str]) -> None:
        # One process runs every agent and reads FEATURES as it starts: a stop and a fresh start.
        localagents.stop_detached(self.state_dir)
        self._start()

    def reroute(self, change: NetworkChange) -> None:
        if not change.turns_on or _runs_arc_proxy(localagents.running_pid(self.state_dir)):
            return  # a running arc-proxy hears of it from /gw/v1/network; without one and nothing to turn on, no work
        # A restart with arc-proxy on: the process reads these once, at start, then follows /gw/v1/network.
        for variable, value in (
            ("HALYARD_AGENT_GATEWAY", change.gateway),
            ("HALYARD_AGENT_PROXY", change.proxy),
            ("HALYARD_AGENT_PROXY_SKIP_RANGE", change.skip_range),
        ):
            if value:
                os.environ[variable] = value
        localagents.stop_detached(self.state_dir)
        self._start()

    def check_alive(self) -> None:
        if localagents.running_pid(self.state_dir) is None:
            raise CliError(f"The local agents stopped. {self.where_to_look()}", "AgentsNotRunning")

    def where_to_look(self) -> str:
        return f"Their log: {self.state_dir / localagents.LOG_FILE}"

    def _start(self) -> None:
        try:
            localagents.start_detached(self.state_dir, self.kubeconfig, self.context)
        except RuntimeError as exc:
            raise CliError(f"The local agents did not start: {exc}", "AgentsNotRunning") from None


@dataclass
class InClusterAgents:
    """The chart's Deployments in the cluster of the command's Kubernetes session."""

    session: KubeSession
    helm: Helm
    chart: str
    _next_pod_check: float = field(default=0.0, repr=False)

    @classmethod
    def find(cls, session: KubeSession) -> InClusterAgents:
        """The in-cluster agents of the session's cluster, with helm and the chart checked before anything is
        written."""
        try:
            helm = Helm.find(session.kubeconfig, session.context)
            chart = agent_chart()
        except HelmError as exc:
            raise CliError(str(exc), "HelmNotFound") from None
        return cls(session, helm, chart, _next_pod_check=time.monotonic() + POD_CHECK_SECONDS)

    def install(
        self,
        *,
        registry: str | None,
        pinned: str | None,
        features: frozenset[str] = names.DEFAULT_FEATURES,
        network: AgentsNetwork | None = None,
    ) -> None:
        feature_values, switches = chart_values_for(features)
        values = {"image.registry": registry} if registry else {}
        if network is not None:
            values.update(network.chart_values())
        if pinned:  # a re-run keeps the agents on the version pinned with upgrade, not the chart's
            values["image.tag"] = pinned
        try:
            self.helm.install(self.chart, {**values, **feature_values}, switches)
        except HelmError as exc:
            raise CliError(f"Installing the agent chart failed: {exc}", "HelmInstallFailed") from None

    def obstacle(self, facts: ClusterFacts, endpoints: EndpointMap) -> str | None:
        if facts.simulated:
            return (
                "The cluster is a Halyard simulator: its pods run nothing, so agents installed in it never connect "
                "(unless you run their processes yourself)."
            )
        loopback = sorted({url for url in (endpoints.his, endpoints.dp) if _is_loopback(url)})
        if loopback:
            return (
                f"The control plane gives its agent endpoints as {', '.join(loopback)}, a loopback address, which "
                "pods cannot reach: start the control plane with a --public-url (HALYARD_PUBLIC_URL) the cluster can reach."
            )
        return None

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

    def restart(self, features: frozenset[str]) -> None:
        values, switches = chart_values_for(features)
        try:
            self.helm.upgrade(self.chart, values, switches=switches)
        except HelmError as exc:
            raise CliError(
                f"helm upgrade of the release {RELEASE} failed: {exc}. The cluster's configuration already has the "
                "new features; fix the cause and run the same command again.",
                "HelmUpgradeFailed",
            ) from None

    def reroute(self, change: NetworkChange) -> None:
        values = change.chart_values()
        if not values:
            return
        try:
            self.helm.upgrade(self.chart, values)
        except HelmError as exc:
            raise CliError(
                f"helm upgrade of the release {RELEASE} failed: {exc}. The cluster's resource already has the new "
                "gateway or proxy settings; fix the cause and run the same update again.",
                "HelmUpgradeFailed",
            ) from None

    def check_alive(self) -> None:
        """Stop waiting when the agents' pods are stuck in a state only the user can get them out of."""
        if time.monotonic() < self._next_pod_check:
            return
        problems = self.session.run(agent_pod_problems)
        self._next_pod_check = time.monotonic() + POD_CHECK_SECONDS
        if not problems:
            return
        hint = (
            "If the cluster cannot reach the image's registry, mirror the image and run connect again with "
            "--agent-registry."
            if any(p.cannot_pull for p in problems)
            else self.where_to_look()
        )
        raise CliError(
            f"The agents cannot start: {'; '.join(map(str, problems))}. The connected cluster and the agents' release "
            f"are kept, so fixing the cause and running the same command again completes it. {hint}",
            "AgentsNotRunning",
        )

    def where_to_look(self) -> str:
        return (
            f"Their pods: kubectl -n {names.NAMESPACE} get pods -l {LABEL_SELECTOR}; their logs: kubectl -n "
            f"{names.NAMESPACE} logs -l {LABEL_SELECTOR} --all-containers."
        )


def choose(mode: str | None, facts: ClusterFacts, session: KubeSession, resource_id: str) -> Agents:
    """``connect``'s placement: ``mode`` when given, else local on a simulated cluster (nothing runs there) and
    in-cluster elsewhere."""
    if (mode or ("local" if facts.simulated else "in-cluster")) == "local":
        return LocalAgents(localagents.state_dir_for(resource_id), session.kubeconfig, session.context)
    return InClusterAgents.find(session)


def locate(resource_id: str, session: KubeSession) -> Agents:
    """Where the agents of ``resource_id`` run now: local agents when this CLI started some for it (as ``delete``
    finds them), else the chart's release in the session's cluster, which must be onboarded as it."""
    state_dir = localagents.state_dir_for(resource_id)
    started = localagents.started_target(state_dir)
    if started is not None:
        return LocalAgents(state_dir, started[0], started[1])
    try:
        onboarded = session.run(kube_onboarding.read_onboarding)
    except CliError as exc:
        if exc.code != "KubeconfigError":
            raise
        raise CliError(
            f"No local agents of this connected cluster run on this machine, so they are looked for in the cluster of "
            f"the kubeconfig. {exc.message} Give the cluster's kubeconfig with --kube-config (and --kube-context).",
            exc.code,
        ) from None
    if onboarded is None or onboarded.resource_id.lower() != resource_id.lower():
        what = f"is connected as {onboarded.resource_id}" if onboarded else "carries no Halyard agents"
        raise CliError(
            f"No local agents of this connected cluster run on this machine, and the cluster of the kubeconfig {what}. "
            "Give the cluster's kubeconfig with --kube-config (and --kube-context).",
            "AgentsNotFound",
        )
    agents = InClusterAgents.find(session)  # only now: where there are no agents, a missing helm is beside the point
    if not agents.helm.installed():
        raise CliError(
            f"The cluster has no agent release '{RELEASE}' in namespace {names.NAMESPACE}. Install the agents again "
            "with halyard connectedk8s connect --agent-mode in-cluster.",
            "AgentsNotFound",
        )
    return agents


def remove_agents(resource_id: str, session: KubeSession) -> list[str]:
    """Remove what onboarding put on this machine and in the session's cluster for ``resource_id``; what was
    removed. The client's own exceptions pass through (the caller reports any failure as one).

    Stops the local agents of the resource; then, if the cluster is onboarded as that resource (or carries no
    onboarding), uninstalls the agent chart (Deployments, RBAC) and deletes the ``halyard-system`` namespace
    (Secrets, ConfigMap). A cluster onboarded as another resource is left alone.
    """
    removed = []
    if localagents.stop_detached(localagents.state_dir_for(resource_id)):
        removed.append("local agents")
    onboarded = session.run_raw(kube_onboarding.read_onboarding)
    if onboarded is not None and onboarded.resource_id.lower() != resource_id.lower():
        return removed
    try:
        helm: Helm | None = Helm.find(session.kubeconfig, session.context)
    except HelmError:
        helm = None  # no helm on this machine: it installed no chart
    if helm is not None and helm.uninstall():
        removed.append("agent chart")
    if session.run_raw(kube_onboarding.uninstall):
        removed.append(f"namespace {names.NAMESPACE}")
    return removed


def disconnect_cluster(resource_id: str, kubeconfig: Path | None, context: str | None) -> list[str]:
    """:func:`remove_agents` in a session of its own (for callers outside a command, such as tests)."""
    with KubeSession(kubeconfig, context) as session:
        return remove_agents(resource_id, session)


def _is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
