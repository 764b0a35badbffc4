"""The ``halyard`` CLI as users run it: a subprocess with its own config directory, against a real server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# The agents' control plane (short thresholds), simulator and fresh clusters, for the commands that act on connected
# clusters (enable-features, proxy); one instance each for all of tests/cli.
from tests.agents.conftest import Cli as AgentsCli
from tests.agents.conftest import agent_server, agent_sim, fresh_cluster, logged_in_cli, stop_agents  # noqa: F401
from tests.support.processes import LineReader, ServerProcess

# Variables that would make a test depend on the machine it runs on.
_MACHINE_ENV = ("REQUESTS_CA_BUNDLE", "HALYARD_SERVER", "HALYARD_CONFIG_DIR", "SSL_CERT_FILE")


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    @property
    def error(self) -> str:
        """The one ``ERROR:`` line a failed command prints (and nothing else)."""
        lines = self.stderr.strip().splitlines()
        assert self.code != 0, f"expected a failure, got exit 0: {self.stdout}"
        assert len(lines) == 1 and lines[0].startswith("ERROR: "), self.stderr
        assert "Traceback" not in self.stderr
        return lines[0]


@dataclass
class Cli:
    config_dir: Path
    extra_env: dict[str, str]

    def run(self, *args: str, stdin: str | None = None, timeout: float = 60) -> Result:
        env = {k: v for k, v in os.environ.items() if k not in _MACHINE_ENV}
        # HOME too: a command whose default file is under ~ (proxy's ~/.kube/config) must not write the real one.
        env.update({"HALYARD_CONFIG_DIR": str(self.config_dir), "HOME": str(self.config_dir), **self.extra_env})
        done = subprocess.run(
            [sys.executable, "-m", "halyard", *args],
            input=stdin or "",
            capture_output=True,
            text=True,
            env=env,
            timeout=timeout,
        )
        return Result(done.returncode, done.stdout, done.stderr)

    def ok(self, *args: str) -> str:
        result = self.run(*args)
        assert result.code == 0, f"halyard {' '.join(args)} failed: {result.stderr}"
        assert "ERROR" not in result.stderr
        return result.stdout

    def json(self, *args: str) -> Any:
        return json.loads(self.ok(*args))

    def login(self, server: ServerProcess, client_id: str, secret: str, *extra: str) -> Result:
        return self.run(
            "login",
            "--service-principal",
            "-u",
            client_id,
            "-p",
            secret,
            "--tenant",
            server.admin["tenant"],
            "--server",
            server.url,
            "--ca-cert",
            server.ca,
            *extra,
        )


def start_up(data: Path, port: int) -> tuple[subprocess.Popen[str], list[str]]:
    """Start `halyard up` (stderr to ``up.stderr`` beside ``data``) and read its output until it says how to stop it."""
    env = {k: v for k, v in os.environ.items() if k not in ("HALYARD_CONFIG_DIR", "REQUESTS_CA_BUNDLE")}
    stderr = data.parent / "up.stderr"
    data.parent.mkdir(parents=True, exist_ok=True)
    with open(stderr, "a") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-m", "halyard", "up", "--data-dir", str(data), "--port", str(port)],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
        )
    assert proc.stdout is not None
    lines: list[str] = []
    reader = LineReader(
        proc.stdout
    )  # each line waited for with a deadline: a silent `up` fails, naming what it printed
    deadline = time.monotonic() + 90
    while not any(line.startswith("Press Ctrl-C") for line in lines):
        left = deadline - time.monotonic()
        assert left > 0 and proc.poll() is None, "".join(lines) + stderr.read_text()[-3000:]
        line = reader.next(left, "the banner's 'Press Ctrl-C' line")
        assert line or proc.poll() is None, "".join(lines) + stderr.read_text()[-3000:]
        lines.append(line)
    return proc, lines


def clean_shell_env(home: Path) -> dict[str, str]:
    """A fresh login shell's environment: its own HOME, the system PATH (no virtual environment), nothing of ours."""
    home.mkdir(parents=True, exist_ok=True)
    return {"HOME": str(home), "PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


@pytest.fixture
def cli(tmp_path: Path) -> Cli:
    """Not logged in."""
    return Cli(tmp_path / "halyard-config", {})


@pytest.fixture(scope="module")
def admin(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """Logged in as the bootstrap admin (Owner at the tenant root)."""
    cli = Cli(tmp_path_factory.mktemp("admin-config"), {})
    result = cli.login(server, server.admin["clientId"], server.admin["clientSecret"], "-o", "none")
    assert result.code == 0, result.stderr
    return cli


@pytest.fixture(scope="session")
def agents_cli(agent_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AgentsCli]:  # noqa: F811
    """The agents' control plane's admin, with an agent directory of its own (its agents stopped at the end)."""
    runner = logged_in_cli(agent_server, tmp_path_factory.mktemp("cli-agents"))
    yield runner
    stop_agents(runner)
