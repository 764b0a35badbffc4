"""``halyard up`` (``make up``): serves, prints a login line that works, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli.conftest import clean_shell_env, start_up
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e


def _agents_running(data: Path) -> list[Path]:
    return [pid for pid in (data / "agents").glob("*/*.pid") if _alive(int(pid.read_text().strip() or 0))]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, ValueError):
        return False
    return pid > 0


def _connected_row(lines: list[str]) -> list[str]:
    row = next((line for line in lines if line.startswith("sim-01 ")), "")
    return row.split()


def test_up_connects_the_simulated_cluster_prints_working_next_steps_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    proc, lines = start_up(data, port)
    try:
        text = "".join(lines)
        assert f"Halyard is running at https://127.0.0.1:{port}" in text
        assert f"admin credentials: {data / 'admin.json'}" in text
        # `connectedk8s show` of the simulated cluster, connected by local agents: name, status, version, nodes, cores.
        assert _connected_row(lines)[:5] == ["sim-01", "Connected", "1.31.2", "3", "12"], text
        assert _agents_running(data)

        # The uvicorn of the simulator beside the control plane does not repeat the process's own lines.
        assert (data.parent / "up.stderr").read_text().count("Started server process") == 1

        # What it says to try runs as printed, pasted into a fresh shell that has no virtual environment on its PATH.
        commands = _try_commands(lines)
        assert f"--ca-cert {data / 'tls' / 'ca.pem'}" in next(c for c in commands if c.startswith("halyard login "))
        shell = _clean_shell(tmp_path / "home", "\n".join(commands))
        assert shell.returncode == 0, shell.stdout + shell.stderr
        # connectedk8s list, then show, as tables (Name ResourceGroup Location ConnectivityStatus ...).
        rows = [r.split()[:4] for r in shell.stdout.splitlines() if r.startswith("sim-01 ")]
        assert rows == [["sim-01", "demo", "eastus", "Connected"]] * 2, shell.stdout
        direct = [
            r.split()[0]
            for r in shell.stdout.splitlines()
            if r.split()[:1] and r.split()[0].startswith(("control-plane", "node-"))
        ]
        assert direct == ["control-plane", "node-1", "node-2"], shell.stdout
        # ... and through cluster connect (get-credentials' kubeconfig, the get-token exec plugin, the tunnel).
        assert shell.stdout.splitlines()[-3:] == ["node/control-plane", "node/node-1", "node/node-2"], shell.stdout

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        assert not _agents_running(data), "Ctrl-C must stop the local agents with the rest"

        # The next `up` resumes the same cluster and resource.
        proc, lines = start_up(data, port)
        assert _connected_row(lines)[:2] == ["sim-01", "Connected"], "".join(lines)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def _try_commands(lines: list[str]) -> list[str]:
    """The commands under "Try, in another terminal:", as a user would copy them."""
    start = next(i for i, line in enumerate(lines) if line.startswith("Try, in another terminal:")) + 1
    end = next(i for i in range(start, len(lines)) if not lines[i].strip())
    return [line.strip() for line in lines[start:end]]


def _clean_shell(home: Path, script: str) -> subprocess.CompletedProcess[str]:
    env = clean_shell_env(home)
    assert shutil.which("halyard", path=env["PATH"]) is None, "the test needs a PATH where halyard is not found"
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, env=env, cwd=home, timeout=120
    )


def test_up_on_a_busy_port_fails_with_one_error_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "halyard", "up", "--data-dir", str(tmp_path / "data"), "--port", str(port)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert done.returncode == 1 and done.stdout == ""
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1] == (
        f"ERROR: (StartFailed) The control plane did not start on https://127.0.0.1:{port} "
        "(see the log above; is the port in use?)."
    )
