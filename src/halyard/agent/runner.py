"""Assembles the agents of one cluster and runs them until SIGTERM/SIGINT (``halyard agent run``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

import httpx
from lightkube import AsyncClient

from halyard.agent import handoff
from halyard.agent.backoff import Backoff
from halyard.agent.clusterconfig import ClusterConfig, load_cluster_config
from halyard.agent.controlplane import http_client
from halyard.agent.deployments import DeploymentHealth
from halyard.agent.identity import IdentityOperator
from halyard.agent.manager import Agent, ControllerManager
from halyard.agent.metadata import MetadataOperator
from halyard.agent.metrics import AgentMetrics, MetricsAgent
from halyard.agent.options import AgentOptions
from halyard.agent.resourcesync import ResourceSync
from halyard.core.clock import Clock, SystemClock
from halyard.kube.client import connect

log = logging.getLogger("halyard.agent")
PID_FILE = "agent.pid"
# Every agent this package runs; the controller manager supervises them (in local mode, in this very process).
AGENTS = ("identity-operator", "metadata-operator", "resource-sync", "controller-manager")
DEFAULT_HEARTBEAT = 30.0


def pid_path(state_dir: Path) -> Path:
    return state_dir / PID_FILE


async def run_agents(options: AgentOptions, *, stop: asyncio.Event | None = None, clock: Clock | None = None) -> None:
    """Run until ``stop`` is set (or a termination signal arrives)."""
    stop = stop or asyncio.Event()
    clock = clock or SystemClock()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    kube = connect(options.kubeconfig, options.context, in_cluster=options.in_cluster)  # KubeConfigError: no start
    options.state_dir.mkdir(parents=True, exist_ok=True)
    pid_path(options.state_dir).write_text(str(os.getpid()))
    try:
        needs_key = options.agents is None or "identity-operator" in options.agents
        config = await _wait_for_config(kube, stop, options.backoff_cap, needs_key)
        if config is None:
            return
        await _run(options, kube, config, clock, stop)
    finally:
        await kube.close()
        with contextlib.suppress(FileNotFoundError):
            if pid_path(options.state_dir).read_text().strip() == str(os.getpid()):
                pid_path(options.state_dir).unlink()


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
    options: AgentOptions, kube: AsyncClient, config: ClusterConfig, clock: Clock, stop: asyncio.Event
) -> None:
    metrics = AgentMetrics()
    async with http_client(config.ca_bundle) as http:
        metrics_agent = MetricsAgent(metrics, options.state_dir, options.metrics_port)
        manager = ControllerManager([metrics_agent], clock, metrics, backoff_cap=options.backoff_cap)
        for agent in build_agents(options, kube, http, config, clock, metrics, manager):
            manager.add(agent)
        log.info("agents running", extra={"resource": config.resource_id, "agents": ",".join(manager.names)})
        try:
            await manager.run(stop)
        finally:
            metrics_agent.close()


def build_agents(
    options: AgentOptions,
    kube: AsyncClient,
    http: httpx.AsyncClient,
    config: ClusterConfig,
    clock: Clock,
    metrics: AgentMetrics,
    manager: ControllerManager,
) -> list[Agent]:
    """The agents this process runs. All of them (local mode) hand over in memory; a subset (one Deployment per
    agent, in-cluster) hands over through the cluster (``handoff.py``)."""
    selected = set(options.agents or AGENTS)
    unknown = selected - set(AGENTS)
    if unknown:
        raise ValueError(f"unknown agents {sorted(unknown)}; known: {', '.join(AGENTS)}")
    split = options.agents is not None
    agents: list[Agent] = []
    identity = metadata = None
    if "identity-operator" in selected:
        identity = IdentityOperator(
            kube, http, config, clock, metrics, renew_fraction=options.renew_fraction, publish=split
        )
        agents.append(identity)
    if "metadata-operator" in selected:
        metadata = MetadataOperator(kube, interval=options.heartbeat_seconds or DEFAULT_HEARTBEAT, publish=split)
        agents.append(metadata)
    if "resource-sync" in selected:
        agents.append(
            ResourceSync(
                http,
                config.endpoints.dp,
                identity or handoff.PublishedToken(kube),
                metadata or handoff.PublishedFacts(kube),
                metrics,
                health=handoff.PublishedHealth(kube) if split else manager.health_report,
                interval=options.heartbeat_seconds,
            )
        )
    if "controller-manager" in selected and split:
        agents.append(DeploymentHealth(kube, clock))
    return agents
