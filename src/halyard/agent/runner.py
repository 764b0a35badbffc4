"""Assembles the agents of one cluster and runs them until SIGTERM/SIGINT (``halyard agent run``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from pathlib import Path

from lightkube import AsyncClient

from halyard.agent.backoff import Backoff
from halyard.agent.clusterconfig import ClusterConfig, load_cluster_config
from halyard.agent.controlplane import http_client
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
    options.state_dir.mkdir(parents=True, exist_ok=True)
    pid_path(options.state_dir).write_text(str(os.getpid()))
    kube = connect(options.kubeconfig, options.context)
    try:
        config = await _wait_for_config(kube, stop, options.backoff_cap)
        if config is None:
            return
        await _run(options, kube, config, clock, stop)
    finally:
        await kube.close()
        with contextlib.suppress(FileNotFoundError):
            if pid_path(options.state_dir).read_text().strip() == str(os.getpid()):
                pid_path(options.state_dir).unlink()


async def _wait_for_config(kube: AsyncClient, stop: asyncio.Event, cap: float) -> ClusterConfig | None:
    """The onboarding configuration, retried with backoff while the cluster is unreachable or not yet onboarded."""
    backoff = Backoff(cap=cap)
    while not stop.is_set():
        try:
            return await load_cluster_config(kube)
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
        identity = IdentityOperator(kube, http, config, clock, metrics, renew_fraction=options.renew_fraction)
        metadata = MetadataOperator(kube, interval=options.heartbeat_seconds or DEFAULT_HEARTBEAT)
        metrics_agent = MetricsAgent(metrics, options.state_dir, options.metrics_port)
        agents: list[Agent] = [identity, metadata, metrics_agent]
        manager = ControllerManager(agents, clock, metrics, backoff_cap=options.backoff_cap)
        sync = ResourceSync(
            http,
            config.endpoints.dp,
            identity,
            metadata,
            metrics,
            health=manager.health,
            interval=options.heartbeat_seconds,
        )
        manager.add(sync)
        log.info("agents running", extra={"resource": config.resource_id})
        try:
            await manager.run(stop)
        finally:
            metrics_agent.close()
