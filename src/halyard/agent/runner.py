"""Assembles the agents of one cluster and runs them until SIGTERM/SIGINT (``halyard agent run``)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import signal
import ssl
import time
from dataclasses import dataclass
from typing import Any, cast

import httpx
from lightkube import AsyncClient

from halyard.agent import handoff
from halyard.agent.arcproxy import ArcProxy, TokenSlot, onboarding_proof
from halyard.agent.authproxy import ApiServer, AssertionVerifier, AuthProxy, OwnCredential
from halyard.agent.backoff import Backoff
from halyard.agent.clusterconfig import ClusterConfig, load_cluster_config
from halyard.agent.clusterconnect import ClusterConnect
from halyard.agent.configagent import ConfigAgent
from halyard.agent.controlplane import http_client
from halyard.agent.deployments import DeploymentHealth
from halyard.agent.diagnostics import DiagnosticsRecorder
from halyard.agent.endpoints import KEPT_FILE, EndpointsFollower, LiveEndpoints, follow_published
from halyard.agent.extensionmanager import ExtensionManager
from halyard.agent.fluxlogs import FluxLogsAgent
from halyard.agent.guard import Guard
from halyard.agent.identity import IdentityOperator
from halyard.agent.manager import Agent, ControllerManager
from halyard.agent.metadata import MetadataOperator
from halyard.agent.metrics import AgentMetrics, MetricsAgent
from halyard.agent.options import AgentOptions, pid_path
from halyard.agent.resourcesync import ResourceSync, TokenSource
from halyard.agent.upgrade import UpgradeCheck
from halyard.api.agents import GATEWAY_NETWORK_PATH
from halyard.api.cluster import FEATURE_AZURE_RBAC, FEATURE_CLUSTER_CONNECT, FEATURE_EXTENSIONS
from halyard.core.clock import Clock, SystemClock
from halyard.kube.client import connect, load_config
from halyard.kube.helm import Helm

log = logging.getLogger("halyard.agent")
# Every agent this package runs; the controller manager supervises them (in local mode, in this very process).
AGENTS = (
    "identity-operator",
    "metadata-operator",
    "resource-sync",
    "controller-manager",
    "clusterconnect-agent",
    "guard",
    "arc-proxy",  # only when a gateway or an enterprise proxy is set (options.network)
    "extension-manager",
    "config-agent",
    "flux-logs-agent",
)
DEFAULT_HEARTBEAT = 30.0
# The agents that dial the control plane besides resource-sync: their pods follow the map it publishes.
DIALLING = frozenset(
    {
        "identity-operator",
        "clusterconnect-agent",
        "guard",
        "extension-manager",
        "arc-proxy",
        "config-agent",
        "flux-logs-agent",
    }
)


@dataclass
class Restart:
    """Local mode's upgrade hook: stop every agent cleanly, then have the caller re-execute onto ``version``."""

    stop: asyncio.Event
    version: str | None = None

    def __call__(self, version: str) -> None:
        self.version = version
        self.stop.set()


async def run_agents(
    options: AgentOptions, *, stop: asyncio.Event | None = None, clock: Clock | None = None
) -> str | None:
    """Run until ``stop`` is set (or a termination signal arrives). Returns the agent version to restart onto when
    the upgrade check asked for a restart (the pid file is then kept: the same process carries on)."""
    stop = stop or asyncio.Event()
    restart = Restart(stop)
    clock = clock or SystemClock()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    kube = connect(options.kubeconfig, options.context, in_cluster=options.in_cluster)  # KubeConfigError: no start
    options.state_dir.mkdir(parents=True, exist_ok=True)
    pid_path(options.state_dir).write_text(str(os.getpid()))
    try:
        needs_key = options.agents is None or "identity-operator" in options.agents or _proves_onboarding(options)
        config = await _wait_for_config(kube, stop, options.backoff_cap, needs_key)
        if config is None:
            return None
        await _run(options, kube, config, clock, stop, restart)
    finally:
        await kube.close()
        with contextlib.suppress(FileNotFoundError):
            if restart.version is None and pid_path(options.state_dir).read_text().strip() == str(os.getpid()):
                pid_path(options.state_dir).unlink()
    return restart.version


async def _wait_for_config(
    kube: AsyncClient, stop: asyncio.Event, cap: float, onboarding_key: bool
) -> ClusterConfig | None:
    """The onboarding configuration, retried with backoff while the cluster is unreachable or not yet onboarded."""
    backoff = Backoff(cap=cap)
    while not stop.is_set():
        try:
            return await load_cluster_config(kube, onboarding_key=onboarding_key)
        except Exception as exc:
            delay = backoff.next_delay()
            log.warning("cluster configuration unavailable", extra={"error": str(exc), "retry_in": round(delay, 2)})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
    return None


async def _run(
    options: AgentOptions, kube: AsyncClient, config: ClusterConfig, clock: Clock, stop: asyncio.Event, restart: Restart
) -> None:
    metrics = AgentMetrics()
    # Where every agent of this process dials, read at each dial: resource-sync moves it when the control plane
    # sends another map (private link); in-cluster the other pods follow what it publishes.
    live = live_endpoints(options, config)
    if options.agents is not None:  # one agent per process: the map the agents follow is kept in the cluster
        await follow_published(kube, live)
    arc_proxy = await start_arc_proxy(options, config, live)
    # In-cluster, arc-proxy is a pod of its own: the other agents reach it through its Service (the chart says where).
    via = arc_proxy.url if arc_proxy is not None else options.arc_proxy_url
    async with http_client(config.ca_bundle, proxy=via) as http:
        metrics_agent = MetricsAgent(metrics, options.state_dir, options.metrics_port)
        manager = ControllerManager([metrics_agent], clock, metrics, backoff_cap=options.backoff_cap)
        built = build_agents(options, kube, http, config, clock, metrics, manager, restart, live, via=via)
        if arc_proxy is not None:
            identity = next((a for a in built if isinstance(a, IdentityOperator)), None)
            tokens = cast(TokenSlot, arc_proxy.tokens)
            tokens.target = identity or handoff.PublishedToken(kube)
            built.append(arc_proxy)
        for agent in built:
            manager.add(agent)
        log.info("agents running", extra={"resource": config.resource_id, "agents": ",".join(manager.names)})
        try:
            await manager.run(stop)
        finally:
            metrics_agent.close()
            for agent in built:
                if isinstance(agent, (Guard, ArcProxy)):
                    await agent.close()


def live_endpoints(options: AgentOptions, config: ClusterConfig) -> LiveEndpoints:
    """The map this process's agents follow. Local mode keeps it in the state directory across restarts; a pod
    does not (its state is an emptyDir): in-cluster the pods start from, and follow, the map resource-sync
    publishes in the cluster (``follow_published``)."""
    kept = options.state_dir / KEPT_FILE if options.agents is None and not options.in_cluster else None
    return LiveEndpoints(config.endpoints, kept)


def _proves_onboarding(options: AgentOptions) -> bool:
    """arc-proxy in a pod of its own, with a gateway: until the cluster has its first token it proves the onboarding
    key to the gateway, so it reads that key (its Role grants it only then: the chart)."""
    return bool(options.agents and "arc-proxy" in options.agents and options.network and options.network.gateway)


async def start_arc_proxy(options: AgentOptions, config: ClusterConfig, live: LiveEndpoints) -> ArcProxy | None:
    """arc-proxy, listening before any agent dials, when a gateway or an enterprise proxy is set. It asks the
    management API of the map followed now where connections go (a scope's private name, with private link)."""
    if options.network is None or (options.agents is not None and "arc-proxy" not in options.agents):
        return None
    proxy = ArcProxy(
        options.network,
        TokenSlot(),
        config.ca_bundle,
        host=options.arc_proxy_host,
        port=options.arc_proxy_port,
        network_url=lambda: f"{live.current().management.rstrip('/')}{GATEWAY_NETWORK_PATH}",
        interval=options.heartbeat_seconds or DEFAULT_HEARTBEAT,
        onboarding_proof=(
            onboarding_proof(config.resource_id, config.onboarding_key) if config.onboarding_key is not None else None
        ),
    )
    await proxy.start()
    return proxy


def configuration_agents(selected: set[str], split: bool, features: frozenset[str]) -> frozenset[str]:
    """The agents of the cluster that act on its configuration, as the heartbeat declares them (so the control
    plane knows them from the beat that makes the cluster Connected): those this process runs (local mode), or, in
    the cluster, those the chart runs (extension-manager and config-agent with the extensions feature). The same
    conditions as the agents' own below."""
    if split:
        return frozenset({"extension-manager", "config-agent"} if FEATURE_EXTENSIONS in features else set())
    return frozenset(selected & {"extension-manager", "config-agent"})


def build_agents(
    options: AgentOptions,
    kube: AsyncClient,
    http: httpx.AsyncClient,
    config: ClusterConfig,
    clock: Clock,
    metrics: AgentMetrics,
    manager: ControllerManager,
    restart: Restart,
    live: LiveEndpoints,
    *,
    via: str | None = None,
) -> list[Agent]:
    """The agents this process runs. All of them (local mode) hand over in memory; a subset (one Deployment per
    agent, in-cluster) hands over through the cluster (``handoff.py``)."""
    selected = set(options.agents or AGENTS)
    unknown = selected - set(AGENTS)
    if unknown:
        raise ValueError(f"unknown agents {sorted(unknown)}; known: {', '.join(AGENTS)}")
    split = options.agents is not None
    agents: list[Agent] = []
    identity = metadata = sync = None
    if split and "resource-sync" not in selected and selected & DIALLING:
        agents.append(EndpointsFollower(kube, live))
    if "identity-operator" in selected:
        identity = IdentityOperator(
            kube, http, config, clock, metrics, renew_fraction=options.renew_fraction, publish=split, endpoints=live
        )
        agents.append(identity)
    if "metadata-operator" in selected:
        metadata = MetadataOperator(kube, interval=options.heartbeat_seconds or DEFAULT_HEARTBEAT, publish=split)
        agents.append(metadata)
    health = handoff.PublishedHealth(kube) if split else manager.health_report
    if "resource-sync" in selected:
        sync = ResourceSync(
            http,
            live,
            identity or handoff.PublishedToken(kube),
            metadata or handoff.PublishedFacts(kube),
            metrics,
            health=health,
            interval=options.heartbeat_seconds,
            share_target=functools.partial(handoff.publish_target, kube) if split else None,
            features=config.features,
            share_endpoints=(
                functools.partial(handoff.publish_endpoints, kube, onboarding=live.onboarding) if split else None
            ),
            configuration_agents=configuration_agents(selected, split, config.features),
            clock=clock,
        )
        agents.append(sync)
        # What the agents see from where they run, kept in the cluster for `connectedk8s troubleshoot`.
        agents.append(
            DiagnosticsRecorder(
                sync,
                health,
                live,
                config.ca_bundle,
                functools.partial(handoff.publish_diagnostics, kube),
                clock,
                resource_id=config.resource_id,
                mode="in-cluster" if options.in_cluster else "local",
                via=via,
            )
        )
    if "clusterconnect-agent" in selected and FEATURE_CLUSTER_CONNECT in config.features:
        tokens = identity or handoff.PublishedToken(kube)
        agents.append(cluster_connect(options, kube, http, config, tokens, metrics, via=via, live=live))
    if "guard" in selected and FEATURE_AZURE_RBAC in config.features:
        tokens = identity or handoff.PublishedToken(kube)
        agents.append(
            Guard(http, lambda: live.current().dp, tokens, clock, options.state_dir / "guard", port=options.guard_port)
        )
    if "extension-manager" in selected and (not split or FEATURE_EXTENSIONS in config.features):
        # In a cluster only with the extensions feature: it holds the rights of whatever charts it installs
        # (cluster-admin, decision 014); local agents act with the connecting user's kubeconfig.
        tokens = identity or handoff.PublishedToken(kube)
        helm = functools.partial(Helm.find, options.kubeconfig, options.context)
        work = options.state_dir / "extensions"
        agents.append(ExtensionManager(http, lambda: live.current().dp, tokens, kube, helm, work))
    gitops = not split or FEATURE_EXTENSIONS in config.features
    if "config-agent" in selected and gitops:
        # GitOps (docs/gitops.md): in a cluster with the extensions feature, as extension-manager, since Flux comes
        # as the flux extension (decision 016); its rights are Flux's objects and Secrets, not cluster-admin.
        agents.append(ConfigAgent(http, lambda: live.current().dp, identity or handoff.PublishedToken(kube), kube))
    if "flux-logs-agent" in selected and gitops:
        agents.append(FluxLogsAgent(http, lambda: live.current().dp, identity or handoff.PublishedToken(kube), kube))
    if "controller-manager" in selected and split:
        agents.append(DeploymentHealth(kube, clock, own=manager.health))
        agents.append(
            UpgradeCheck(
                handoff.PublishedTarget(kube),
                metrics,
                manager.warn,
                mode="in-cluster",
                interval=options.upgrade_check_seconds,
                kube=kube,
            )
        )
    elif "controller-manager" in selected and sync is not None:
        agents.append(
            UpgradeCheck(
                sync.target,
                metrics,
                manager.warn,
                mode="local",
                interval=options.upgrade_check_seconds,
                restart=restart,
                restarted_for=options.restarted_for,
            )
        )
    return agents


def cluster_connect(
    options: AgentOptions,
    kube: AsyncClient,
    http: httpx.AsyncClient,
    config: ClusterConfig,
    tokens: TokenSource,
    metrics: AgentMetrics,
    *,
    via: str | None = None,
    live: LiveEndpoints | None = None,
) -> ClusterConnect:
    """clusterconnect-agent with its auth-proxy beside it (one process: streams pass in memory, no listener)."""
    endpoints = config.endpoints
    login = endpoints.login.rstrip("/")
    verifier = AssertionVerifier(
        http,
        # The keys from the login service of the map followed now; the issuer stays the tokens' own name for it.
        jwks_url=(
            (lambda: f"{live.current().login.rstrip('/')}/{endpoints.tenant}/discovery/v2.0/keys")
            if live is not None
            else f"{login}/{endpoints.tenant}/discovery/v2.0/keys"
        ),
        issuer=f"{login}/{endpoints.tenant}/v2.0",
        cluster_id=config.resource_id,
        now=time.time,
    )
    cluster = load_config(options.kubeconfig, options.context, in_cluster=options.in_cluster).cluster
    proxy = AuthProxy(
        ApiServer.of(cluster.server, _api_tls(cluster)),
        verifier,
        OwnCredential(kube, in_cluster=options.in_cluster, now=time.time),
    )
    tls = ssl.create_default_context(cadata=config.ca_bundle) if config.ca_bundle else ssl.create_default_context()
    relay = (lambda: live.current().relay_url()) if live is not None else endpoints.relay_url()
    return ClusterConnect(relay, tokens, tls, proxy, metrics, via=via)


def _api_tls(cluster: Any) -> ssl.SSLContext:
    """Trust for the API server as the kubeconfig (or the pod's service account) gives it."""
    if cluster.insecure:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        return context
    if cluster.certificate_auth_data:
        return ssl.create_default_context(cadata=base64.b64decode(cluster.certificate_auth_data).decode())
    if cluster.certificate_auth:
        return ssl.create_default_context(cafile=cluster.certificate_auth)
    return ssl.create_default_context()
