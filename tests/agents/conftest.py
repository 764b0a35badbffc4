"""Fixtures of the agent tests: a control plane with test-short thresholds, a simulator, and the CLI as users run it.

Every agent process a test starts (``connect --agent-mode local``, ``agent start``) lives under the session's agent
directory; the ``cli`` fixture stops all of them at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from halyard.cli.localagents import stop_detached
from tests.sim.conftest import Sim, running_sim
from tests.support.processes import ServerProcess, free_port

OFFLINE_THRESHOLD = 3  # seconds without a heartbeat before Offline
CERT_LIFETIME = 12  # seconds: renewals happen within a test
HEARTBEAT = 1  # seconds between heartbeats


@pytest.fixture(scope="session")
def agent_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("agent-server") / "data",
        free_port(),
        extra_args=["--offline-threshold", str(OFFLINE_THRESHOLD)],
        env={
            "HALYARD_CLUSTER_CERTIFICATE_LIFETIME_SECONDS": str(CERT_LIFETIME),
            "HALYARD_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT),
            # Every test's agents and the tests themselves share 127.0.0.1: the agents of a cluster a test deleted
            # (or moved) keep failing to sign in for a while, and at the default burst their failures locked every
            # later test of the session out of the token endpoint (429). The throttle has tests of its own.
            "HALYARD_LOGIN_FAILURE_BURST": "1000",
        },
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def agent_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running_sim(tmp_path_factory, "agent-sim", 32, 3) as sim:
        yield sim


@dataclass
class Cli:
    """Runs ``halyard`` as a separate process with the session's profile and agent directories."""

    env: dict[str, str]
    agents_dir: Path
    server: ServerProcess
    groups: set[str] = field(default_factory=set)

    def run(
        self, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "halyard", *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **self.env, **(env or {})},
        )

    def ok(self, *args: str, env: dict[str, str] | None = None) -> Any:
        proc = self.run(*args, "-o", "json", env=env)
        assert proc.returncode == 0, f"halyard {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}"
        return json.loads(proc.stdout) if proc.stdout.strip() else None

    def group(self, name: str) -> str:
        if name not in self.groups:
            self.ok("group", "create", "-n", name, "-l", "eastus")
            self.groups.add(name)
        return name

    def show(self, group: str, name: str) -> dict[str, Any]:
        result: dict[str, Any] = self.ok("connectedk8s", "show", "-g", group, "-n", name)
        return result

    def wait_status(self, group: str, name: str, wanted: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        shown: dict[str, Any] = {}
        while time.monotonic() < deadline:
            shown = self.show(group, name)
            if shown.get("connectivityStatus") == wanted:
                return shown
            time.sleep(0.5)
        raise AssertionError(f"{name} did not become {wanted} in {timeout}s: {shown.get('connectivityStatus')}")

    def state_dirs(self) -> list[Path]:
        return [p for p in self.agents_dir.iterdir() if p.is_dir()] if self.agents_dir.exists() else []


def logged_in_cli(server: ServerProcess, home: Path, url: str | None = None) -> Cli:
    """A CLI with its own config and agent directories under ``home``, logged in to ``server`` as its admin (at
    ``url`` when its public URL is not its own address)."""
    runner = Cli(
        # HOME too: a command whose default file is under ~ (proxy's ~/.kube/config) must not write the real one.
        env={"HALYARD_CONFIG_DIR": str(home / "config"), "HALYARD_AGENT_DIR": str(home / "agents"), "HOME": str(home)},
        agents_dir=home / "agents",
        server=server,
    )
    admin = server.admin
    runner.ok(
        "login", "--service-principal", "-u", admin["clientId"], "-p", admin["clientSecret"], "--tenant",
        admin["tenant"], "--server", url or server.url, "--ca-cert", server.ca,
    )  # fmt: skip
    return runner


def stop_agents(runner: Cli) -> None:
    for state_dir in runner.state_dirs():
        stop_detached(state_dir)


@pytest.fixture(scope="session")
def cli(agent_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    runner = logged_in_cli(agent_server, tmp_path_factory.mktemp("agent-cli"))
    yield runner
    stop_agents(runner)


@pytest.fixture
def fresh_cluster(agent_sim: Sim) -> Callable[[], Path]:
    """Hands out a simulated cluster no other test has used (its kubeconfig)."""
    return lambda: _take(agent_sim)


_used: set[str] = set()


def _take(sim: Sim) -> Path:
    for cluster in sim.clusters:
        if cluster.name not in _used:
            _used.add(cluster.name)
            return cluster.kubeconfig
    raise AssertionError("the agent tests need more simulated clusters: raise --clusters in agent_sim")
