"""Onboarding benchmark: wall time from ``halyard connectedk8s connect --agent-mode local`` to ``Connected``.

Starts a control plane and a simulator with as many clusters as runs, logs the CLI in, then connects each cluster in
turn (``connect`` returns once the resource reports Connected) and reports the median, min and max.

    .venv/bin/python -m bench.onboard [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.sim.conftest import start_sim
from tests.support.processes import ServerProcess, free_port

from halyard.cli.localagents import stop_detached


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="halyard-onboard-") as tmp:
        root = Path(tmp)
        (root / "sim").mkdir()
        server = ServerProcess(root / "server", free_port()).start()
        sim = start_sim(root / "sim", "--clusters", str(args.runs), "--nodes", "3")
        env = {**os.environ, "HALYARD_CONFIG_DIR": str(root / "config"), "HALYARD_AGENT_DIR": str(root / "agents")}

        def halyard(*argv: str) -> subprocess.CompletedProcess[str]:
            proc = subprocess.run([sys.executable, "-m", "halyard", *argv], capture_output=True, text=True, env=env)
            if proc.returncode != 0:
                raise SystemExit(f"halyard {' '.join(argv)} failed: {proc.stderr}")
            return proc

        try:
            admin = server.admin
            halyard("login", "--service-principal", "-u", admin["clientId"], "-p", admin["clientSecret"],
                    "--tenant", admin["tenant"], "--server", server.url, "--ca-cert", server.ca)  # fmt: skip
            halyard("group", "create", "-n", "onboard", "-l", "eastus")
            seconds = []
            for index, cluster in enumerate(sim.clusters):
                started = time.perf_counter()
                proc = halyard("connectedk8s", "connect", "-g", "onboard", "-n", f"c{index}", "-l", "eastus",
                               "--kube-config", str(cluster.kubeconfig), "--agent-mode", "local", "-o", "json")  # fmt: skip
                seconds.append(time.perf_counter() - started)
                assert json.loads(proc.stdout)["connectivityStatus"] == "Connected"
            print(json.dumps({
                "runs": len(seconds),
                "median_seconds": round(statistics.median(seconds), 2),
                "min_seconds": round(min(seconds), 2),
                "max_seconds": round(max(seconds), 2),
            }))  # fmt: skip
        finally:
            agents = root / "agents"
            for state_dir in agents.iterdir() if agents.exists() else []:
                stop_detached(state_dir)
            sim.stop()
            server.stop()


if __name__ == "__main__":
    main()
