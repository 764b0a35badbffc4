"""``connectedk8s proxy`` and ``get-credentials`` through the real relay, with the real kubectl, against a simulated
cluster whose local agents hold the tunnel.

"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import yaml

from tests.agents.conftest import Cli
from tests.agents.test_onboarding import connect
from tests.sim.conftest import kubectl_path
from tests.support.processes import LineReader, free_port

pytestmark = pytest.mark.e2e
VENV_BIN = str(Path(sys.executable).parent)  # where the `halyard` of the exec plugin is


def _sim_token(kubeconfig: Path) -> str:
    return str(yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]["token"])


def _kubectl(version: str, kubeconfig: Path, cli: Cli, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **cli.env, "PATH": f"{VENV_BIN}:{os.environ['PATH']}", "KUBECONFIG": str(kubeconfig),
           "HOME": str(kubeconfig.parent)}  # fmt: skip
    return subprocess.run([str(kubectl_path(version)), *args], capture_output=True, text=True, timeout=60, env=env)


@contextmanager
def _proxy(cli: Cli, *args: str) -> Iterator[tuple[subprocess.Popen[str], list[str]]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "halyard", "connectedk8s", "proxy", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env={**os.environ, **cli.env},
    )  # fmt: skip
    assert proc.stdout is not None
    reader = LineReader(proc.stdout)
    lines: list[str] = []
    try:
        while not lines or lines[-1] != "Press Ctrl+C to close proxy.":
            line = reader.next(60, "Press Ctrl+C to close proxy.")
            assert line, f"proxy ended: {lines} {proc.stderr.read() if proc.stderr else ''}"
            lines.append(line.rstrip("\n"))
        yield proc, lines
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def _stop(proc: subprocess.Popen[str], sig: int) -> None:
    proc.send_signal(sig)
    assert proc.wait(15) == 0
    assert proc.stderr is not None and "Traceback" not in proc.stderr.read()


def test_kubectl_through_proxy_and_get_credentials(
    agents_cli: Cli, fresh_cluster: Callable[[], Path], tmp_path: Path
) -> None:
    cli = agents_cli
    cluster_kubeconfig = fresh_cluster()
    group = cli.group("relay-proxy")
    assert connect(cli, group, "tunnelled", cluster_kubeconfig).returncode == 0
    cli.wait_status(group, "tunnelled", "Connected")
    sa_token = _sim_token(cluster_kubeconfig)

    # Token mode: the service-account token reaches the API server untouched; kubectl 1.28 and 1.33 work.
    port, file = free_port(), tmp_path / "token" / "config"
    file.parent.mkdir()
    file.write_text(yaml.safe_dump({"apiVersion": "v1", "kind": "Config", "current-context": "mine",
                                    "clusters": [{"name": "mine", "cluster": {"server": "https://10.9.9.9"}}],
                                    "users": [{"name": "me", "user": {"token": "x"}}],
                                    "contexts": [{"name": "mine", "context": {"cluster": "mine", "user": "me"}}]}))  # fmt: skip
    with _proxy(cli, "-g", group, "-n", "tunnelled", "--port", str(port), "-f", str(file), "--token", sa_token) as (
        proc,
        lines,
    ):
        assert lines == [
            f"Proxy is listening on port {port}",
            f'Merged "tunnelled" as current context in {file}',
            f"Start sending kubectl requests on 'tunnelled' context using kubeconfig at {file}",
            "Press Ctrl+C to close proxy.",
        ]
        merged = yaml.safe_load(file.read_text())
        assert [c["name"] for c in merged["contexts"]] == ["mine", "tunnelled"]
        for version in ("1.28", "1.33"):
            nodes = _kubectl(version, file, cli, "get", "nodes", "-o", "name")
            assert nodes.returncode == 0, nodes.stderr
            assert len(nodes.stdout.split()) == 3
            name = f"through-{version.replace('.', '-')}"
            created = _kubectl(version, file, cli, "create", "configmap", name, "--from-literal=k=v")
            assert created.returncode == 0, created.stderr
            assert _kubectl(version, file, cli, "delete", "configmap", name).returncode == 0
        _stop(proc, signal.SIGTERM)
    # The context stays, as az leaves it; the port is free again.
    assert yaml.safe_load(file.read_text())["current-context"] == "tunnelled"
    with _proxy(cli, "-g", group, "-n", "tunnelled", "--port", str(port), "-f", str(file), "--token", sa_token) as (
        proc,
        _,
    ):
        _stop(proc, signal.SIGINT)

    # AAD mode: the caller's identity, impersonated in the cluster; /version answers any authenticated user.
    port, file = free_port(), tmp_path / "aad" / "config"
    with _proxy(cli, "-g", group, "-n", "tunnelled", "--port", str(port), "-f", str(file)) as (proc, _):
        version = _kubectl("1.33", file, cli, "get", "--raw", "/version")
        assert version.returncode == 0 and '"gitVersion"' in version.stdout, version.stderr
        _stop(proc, signal.SIGINT)

    # get-credentials: kubectl straight to the relay, the exec plugin giving the login's token.
    direct = tmp_path / "direct" / "config"
    got = cli.run("connectedk8s", "get-credentials", "-g", group, "-n", "tunnelled", "-f", str(direct))
    assert got.returncode == 0, got.stderr
    user = yaml.safe_load(direct.read_text())["users"][0]["user"]
    assert user["exec"]["command"] == "halyard" and user["exec"]["args"][0] == "get-token"
    # (not `get --raw /version`: kubectl sends a raw path as is, without the server URL's path, here the relay's)
    version = _kubectl("1.33", direct, cli, "version", "-o", "json")
    assert version.returncode == 0 and '"serverVersion"' in version.stdout, version.stderr
    refused = cli.run("connectedk8s", "get-credentials", "-g", group, "-n", "tunnelled", "--token", sa_token)
    assert refused.returncode == 2 and "--token" in refused.stderr  # Token mode is proxy's: see its --help

    # Cluster connect turned off: proxy refuses at start with one line naming the command that turns it on.
    off = cli.run("connectedk8s", "disable-features", "-g", group, "-n", "tunnelled", "--features", "cluster-connect")
    assert off.returncode == 0, off.stderr
    try:
        refused = cli.run("connectedk8s", "proxy", "-g", group, "-n", "tunnelled", "--port", str(free_port()))
        lines = refused.stderr.strip().splitlines()
        assert refused.returncode == 1 and len(lines) == 1 and lines[0].startswith("ERROR: ("), refused.stderr
        assert "enable-features" in lines[0]
    finally:
        cli.run("connectedk8s", "enable-features", "-g", group, "-n", "tunnelled", "--features", "cluster-connect")
    deadline = time.monotonic() + 30
    while cli.show(group, "tunnelled")["connectivityStatus"] != "Connected":
        assert time.monotonic() < deadline
        time.sleep(0.5)
