"""How the agents run: where the cluster is, where local state goes, and their intervals."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from halyard.agent.arcproxy import NetworkSettings

# The agents' process writes its pid here in its state directory; the CLI reads it to find and stop local agents.
PID_FILE = "agent.pid"


def pid_path(state_dir: Path) -> Path:
    return state_dir / PID_FILE


@dataclass(frozen=True)
class AgentOptions:
    kubeconfig: Path | None
    context: str | None
    state_dir: Path
    heartbeat_seconds: float | None = None  # None: as the control plane asks (30 s by default)
    renew_fraction: float = 0.5  # renew the cluster certificate at this fraction of its lifetime (half-life)
    metrics_port: int = 0  # loopback only; 0 picks a free port (written to <state-dir>/metrics.port)
    backoff_cap: float = 120.0
    agents: tuple[str, ...] | None = None  # None: every agent in this process (local mode); else one pod's share
    in_cluster: bool = False  # use the pod's service account instead of a kubeconfig
    upgrade_check_seconds: float = 3600.0  # how often controller-manager re-checks the agent version (Arc: hourly)
    guard_port: int = 0  # loopback; fixed when kube-apiserver's webhook configuration names guard's port
    restarted_for: str | None = None  # local mode: the agent version the previous process restarted this one for
    network: NetworkSettings | None = None  # a gateway or an enterprise proxy: every agent goes through arc-proxy
    arc_proxy_port: int = 0  # loopback (local mode); the chart's Service port in-cluster
    arc_proxy_host: str = "127.0.0.1"  # in-cluster: every address of arc-proxy's pod, behind its Service
    arc_proxy_url: str | None = None  # in-cluster agents without arc-proxy in their process: its Service's URL
