"""Fixtures of the cluster-connect tests: a control plane, a simulator, one cluster connected with local agents, and
kubeconfigs that reach it through the relay as ``listClusterUserCredential`` hands them out.

kubectl runs as a real process against the relay; the simulator is the API server behind auth-proxy.
"""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml

from tests.agents.conftest import Cli, logged_in_cli, stop_agents
from tests.sim.conftest import Sim, kubectl_path, running_sim
from tests.support.processes import LineReader, ServerProcess, free_port

API = {"api-version": "2024-01-01"}
VENV_BIN = str(Path(sys.executable).parent)


@dataclass
class Connected:
    """One cluster connected with local agents, as users reach it."""

    server: ServerProcess
    cli: Cli
    sim: Sim
    group: str
    name: str
    admin_kubeconfig: Path  # the simulator's own admin credentials (what the cluster's owner holds)
    workdir: Path

    @property
    def resource_id(self) -> str:
        sub = self.server.admin["subscription"]
        return f"/subscriptions/{sub}/resourceGroups/{self.group}/providers/Microsoft.Kubernetes/connectedClusters/{self.name}"

    def credential(self, method: str = "AAD", client_proxy: bool = False, token: str | None = None) -> httpx.Response:
        with self.server.client(token) as c:
            return c.post(
                f"{self.resource_id}/listClusterUserCredential",
                params=API,
                json={"authenticationMethod": method, "clientProxy": client_proxy},
            )

    def kubeconfig(self, path: Path, token: str | None = None) -> Path:
        """The kubeconfig ``listClusterUserCredential`` returns, as is (exec plugin) or with a fixed ``token``."""
        response = self.credential()
        assert response.status_code == 200, response.text
        config = yaml.safe_load(base64.b64decode(response.json()["kubeconfigs"][0]["value"]))
        if token is not None:
            config["users"][0]["user"] = {"token": token}
        path.write_text(yaml.safe_dump(config))
        return path

    def kubectl_env(self) -> dict[str, str]:
        """kubectl's environment: the CLI's profile (the exec plugin reads it) and ``halyard`` on PATH."""
        return {**os.environ, **self.cli.env, "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")])}

    def kubectl_popen(self, kubeconfig: Path, *args: str, version: str = "1.33") -> subprocess.Popen[str]:
        """kubectl left running (watches, logs -f, port-forward); the caller stops it."""
        return subprocess.Popen(
            [str(kubectl_path(version)), "--kubeconfig", str(kubeconfig), *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.kubectl_env(),
        )  # fmt: skip

    def kubectl(
        self, kubeconfig: Path, *args: str, version: str = "1.33", timeout: float = 60, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(kubectl_path(version)), "--kubeconfig", str(kubeconfig), *args],
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
            env=self.kubectl_env(),
        )

    def agent_metric(self, name: str) -> float:
        """One of the cluster's agent metrics, from its loopback metrics port."""
        (state_dir,) = [d for d in self.cli.state_dirs() if d.name.startswith(self.name + "-")]
        port = int((state_dir / "metrics.port").read_text())
        return metric(httpx.get(f"http://127.0.0.1:{port}/metrics").text, name)

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        """kubectl with the cluster owner's own credentials, straight to the simulator (no relay)."""
        return self.kubectl(self.admin_kubeconfig, *args)


def object_id(token: str) -> str:
    return str(jwt.decode(token, options={"verify_signature": False})["oid"])


def wait_for_tunnel(cluster: Connected, timeout: float = 30) -> None:
    """Until a request through the relay reaches the cluster (the agent dials its tunnel after its certificate)."""
    token = cluster.server.token()
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        r = httpx.get(
            f"{cluster.server.url}/relay/v1{cluster.resource_id}/version",
            headers={"Authorization": f"Bearer {token}"},
            verify=cluster.server.ca,
        )
        if r.status_code == 200:
            return
        last = r.text
        time.sleep(0.3)
    raise AssertionError(f"no tunnel within {timeout} s: {last}")


@pytest.fixture(scope="session")
def cc_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("cc-server") / "data", free_port(), env={"HALYARD_HEARTBEAT_INTERVAL_SECONDS": "1"}
    ).start()
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def cc_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running_sim(tmp_path_factory, "cc-sim", 4, 2) as sim:
        yield sim


@pytest.fixture(scope="session")
def cc_cli(cc_server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    runner = logged_in_cli(cc_server, tmp_path_factory.mktemp("cc-cli"))
    yield runner
    stop_agents(runner)


def connect(cli: Cli, sim: Sim, index: int, group: str, name: str, workdir: Path) -> Connected:
    cli.group(group)
    kubeconfig = sim.clusters[index].kubeconfig
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", name, "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "local", "--yes", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cluster = Connected(cli.server, cli, sim, group, name, kubeconfig, workdir)
    wait_for_tunnel(cluster)
    return cluster


@pytest.fixture(scope="session")
def connected(cc_cli: Cli, cc_sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Connected:
    """sim cluster 0 connected as cc/cc1; the admin principal is cluster-admin in it."""
    cluster = connect(cc_cli, cc_sim, 0, "cc", "cc1", tmp_path_factory.mktemp("cc-work"))
    oid = object_id(cluster.server.token())
    done = cluster.admin("create", "clusterrolebinding", "cc-admin", "--clusterrole=cluster-admin", f"--user={oid}")
    assert done.returncode == 0, done.stderr
    return cluster


@pytest.fixture(scope="session")
def proxied(connected: Connected, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """``halyard connectedk8s proxy`` (AAD) running for the session: the kubeconfig it merged its context into."""
    kubeconfig = tmp_path_factory.mktemp("cc-proxy") / "config"
    proc = subprocess.Popen(
        [sys.executable, "-m", "halyard", "connectedk8s", "proxy", "-g", connected.group, "-n", connected.name,
         "--port", str(free_port()), "-f", str(kubeconfig)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **connected.cli.env},
    )  # fmt: skip
    assert proc.stdout is not None
    reader = LineReader(proc.stdout)
    while (line := reader.next(60, "the proxy to listen")) != "Press Ctrl+C to close proxy.\n":
        assert line, f"the proxy ended: {proc.stderr.read() if proc.stderr else ''}"
    yield kubeconfig
    proc.send_signal(signal.SIGINT)
    assert proc.wait(15) == 0


@pytest.fixture(params=["kubeconfig", "proxy"])
def way_in(request: pytest.FixtureRequest, connected: Connected, tmp_path: Path) -> Path:
    """The admin's two ways to the cluster: the kubeconfig listClusterUserCredential returns, as returned (the
    ``halyard get-token`` exec plugin), and the local proxy's."""
    if request.param == "proxy":
        path: Path = request.getfixturevalue("proxied")
        return path
    return connected.kubeconfig(tmp_path / "kubeconfig")


def metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def relay_metrics(server: ServerProcess) -> dict[str, Any]:
    with server.client() as c:
        text = c.get("/metrics").text
    names = ("halyard_relay_tunnels", "halyard_relay_streams_open", "halyard_relay_streams_pending")
    return {n: metric(text, n) for n in names}
