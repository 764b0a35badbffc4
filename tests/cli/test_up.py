"""``halyard up`` (``make up``): serves, prints a login line that works, stops cleanly on Ctrl-C."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cli.conftest import Cli
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e


def test_up_prints_working_next_steps_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    data = tmp_path / "data"
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in ("HALYARD_CONFIG_DIR", "REQUESTS_CA_BUNDLE")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "halyard", "up", "--data-dir", str(data), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + 60
        while not any(line.startswith("Press Ctrl-C") for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            lines.append(proc.stdout.readline())
        text = "".join(lines)
        assert f"Halyard is running at https://127.0.0.1:{port}" in text
        assert f"admin credentials: {data / 'admin.json'}" in text
        login_line = next(line.strip() for line in lines if line.strip().startswith("halyard login "))
        assert f"--ca-cert {data / 'tls' / 'ca.pem'}" in login_line

        cli = Cli(tmp_path / "config", {})
        result = cli.run(*shlex.split(login_line)[1:], "-o", "none")
        assert result.code == 0, result.stderr
        cli.ok("group", "create", "-n", "demo", "-l", "westus", "-o", "none")
        assert cli.json("connectedk8s", "list") == []
        # One simulated cluster runs beside the control plane.
        kubeconfig = next(line.split("KUBECONFIG=", 1)[1].strip() for line in lines if "KUBECONFIG=" in line)
        assert Path(kubeconfig).is_file()
        assert f"halyard connectedk8s connect -g demo -n sim-01 --kube-config {kubeconfig} --agent-mode local" in text

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


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
