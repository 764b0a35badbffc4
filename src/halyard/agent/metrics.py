"""metrics-agent: the agents' own metrics in Prometheus format, served on a loopback port only.

Binding to 127.0.0.1 is deliberate: the agents open no port reachable from the cluster network (or beyond); a
scraper runs beside them (sidecar, node agent) or the metrics are read through `halyard agent metrics`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

LOOPBACK = "127.0.0.1"


class AgentMetrics:
    """The counters every agent updates. One registry per process (no global default registry)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.heartbeats_sent = Counter("halyard_agent_heartbeats_sent", "Heartbeats accepted", registry=self.registry)
        self.heartbeats_failed = Counter(
            "halyard_agent_heartbeats_failed", "Heartbeats that failed", registry=self.registry
        )
        self.tokens_issued = Counter("halyard_agent_tokens_issued", "Agent tokens minted", registry=self.registry)
        self.certificate_renewals = Counter(
            "halyard_agent_certificate_renewals", "Cluster certificate renewals", registry=self.registry
        )
        self.certificate_expiry = Gauge(
            "halyard_agent_certificate_expiry_timestamp_seconds",
            "When the cluster certificate lapses",
            registry=self.registry,
        )
        self.reconcile_errors = Counter(
            "halyard_agent_reconcile_errors", "Failed reconciles", ["agent"], registry=self.registry
        )
        self.restarts = Counter(
            "halyard_agent_restarts", "Agent restarts by the manager", ["agent"], registry=self.registry
        )
        self.upgrade_checks = Counter(
            "halyard_agent_upgrade_checks", "Agent version checks by the controller manager", registry=self.registry
        )
        self.tunnel_up = Gauge(
            "halyard_agent_tunnel_up", "1 while the cluster-connect tunnel to the relay is open", registry=self.registry
        )
        self.streams_open = Gauge(
            "halyard_agent_streams_open", "Cluster-connect streams being carried", registry=self.registry
        )
        self.streams_carried = Counter(
            "halyard_agent_streams_carried", "Cluster-connect streams carried (ended)", registry=self.registry
        )
        self.upgrades_started = Counter(
            "halyard_agent_upgrades_started",
            "Agent upgrades started (a local restart, or agent Deployments patched)",
            registry=self.registry,
        )


class MetricsAgent:
    """Keeps the metrics endpoint listening on loopback; its port is written to ``<state-dir>/metrics.port``."""

    name = "metrics-agent"

    def __init__(self, metrics: AgentMetrics, state_dir: Path, port: int = 0) -> None:
        self._metrics = metrics
        self._state_dir = state_dir
        self._port = port
        self._server: Any = None
        self._thread: Any = None

    @property
    def port(self) -> int | None:
        return int(self._server.server_port) if self._server is not None else None

    async def reconcile(self) -> float:
        if self._server is None:
            self._server, self._thread = start_http_server(self._port, addr=LOOPBACK, registry=self._metrics.registry)
            (self._state_dir / "metrics.port").write_text(str(self.port))
        return 60.0

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
