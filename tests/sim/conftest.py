"""Fixtures of the simulator tests: a real ``halyard sim`` process, and the real kubectl and helm binaries.

A missing kubectl or helm fails the tests that need it with the command to install it; nothing is skipped.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(__file__).parent / "data"
KUBECTL_DIR = Path(os.environ.get("HALYARD_KUBECTL_DIR", ROOT / ".cache" / "kubectl"))
HELM = Path(os.environ.get("HALYARD_HELM", ROOT / ".cache" / "bin" / "helm"))
# The oldest and newest kubectl of the google-cloud-sdk version picker, and 1.28, the version the wire reference was
# recorded with (the last without protobuf request bodies).
KUBECTL_VERSIONS = ("1.27", "1.28", "1.33")


@dataclass
class SimCluster:
    name: str
    server: str
    kubeconfig: Path
    token: str


@dataclass
class Sim:
    url: str
    ca: Path
    data_dir: Path
    clusters: list[SimCluster]
    process: subprocess.Popen[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def start_sim(data_dir: Path, *args: str, timeout: float = 60, wrap: tuple[str, ...] = ()) -> Sim:
    """Run ``halyard sim`` on a free port and wait for its ``sim.json`` (``wrap``: a command it runs under, such as
    ``ip netns exec NS``, which execs it: the process stopped is the simulator's own)."""
    index = data_dir / "sim.json"
    index.unlink(missing_ok=True)
    cmd = [*wrap, sys.executable, "-c", "from halyard.cli.main import main; main()", "sim", "--port", "0",
           "--data-dir", str(data_dir), "--pod-start-delay", "0.2", *args]  # fmt: skip
    log = open(data_dir.parent / f"{data_dir.name}.log", "wb")
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    deadline = time.monotonic() + timeout
    while not index.exists():
        if proc.poll() is not None:
            raise RuntimeError(
                f"halyard sim exited with {proc.returncode}: {(data_dir.parent / f'{data_dir.name}.log').read_text()}"
            )
        if time.monotonic() > deadline:
            proc.kill()
            raise TimeoutError("halyard sim did not write sim.json in time")
        time.sleep(0.05)
    doc = json.loads(index.read_text())
    clusters = [SimCluster(c["name"], c["server"], Path(c["kubeconfig"]), c["token"]) for c in doc["clusters"]]
    return Sim(doc["url"], Path(doc["ca"]), data_dir, clusters, proc)


@contextlib.contextmanager
def running_sim(factory: pytest.TempPathFactory, name: str, clusters: int, nodes: int) -> Iterator[Sim]:
    """A simulator process for a fixture: ``clusters`` virtual clusters of ``nodes`` nodes, stopped after."""
    data_dir = factory.mktemp(name) / "data"
    data_dir.mkdir()
    sim = start_sim(data_dir, "--clusters", str(clusters), "--nodes", str(nodes))
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture(scope="session")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    """One simulator process for the session: a virtual cluster per kubectl version, and one for the rest."""
    with running_sim(tmp_path_factory, "sim", len(KUBECTL_VERSIONS) + 1, 3) as s:
        yield s


def kubectl_path(version: str) -> Path:
    path = KUBECTL_DIR / f"kubectl.{version}"
    if not path.exists():
        pytest.fail(
            f"{path} is missing: these tests drive the real kubectl {version}. Run `scripts/install-kubectl.sh` "
            "(make test does) or set HALYARD_KUBECTL_DIR to a directory of kubectl.<major.minor> binaries."
        )
    return path


def helm_path() -> Path:
    if not HELM.exists():
        pytest.fail(f"{HELM} is missing: run `scripts/install-helm.sh` (make system-deps does) or set HALYARD_HELM.")
    return HELM


@dataclass
class Tool:
    """Runs a real CLI against one virtual cluster (its kubeconfig, and a cache dir of the test's own)."""

    binary: Path
    kubeconfig: Path
    home: Path
    env: dict[str, str] = field(default_factory=dict)  # added to every run (KUBECTL_* feature switches)

    def run(
        self, *args: str, input: str | None = None, timeout: float = 60, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home),
               "HELM_CACHE_HOME": str(self.home / "helm-cache"), "HELM_CONFIG_HOME": str(self.home / "helm-config"),
               "HELM_DATA_HOME": str(self.home / "helm-data"), **self.env}  # fmt: skip
        proc = subprocess.run(
            [str(self.binary), *args], input=input, capture_output=True, text=True, timeout=timeout, env=env
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"{self.binary.name} {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    def popen(self, *args: str) -> subprocess.Popen[str]:
        env = {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.home), **self.env}
        return subprocess.Popen([str(self.binary), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env=env)  # fmt: skip
