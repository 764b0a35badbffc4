"""The simulated Flux controllers' speed, and whether the simulator keeps answering while they fetch.

Starts ``halyard sim --flux``; then

- ``--rounds`` times, creates a GitRepository (a small ``file://`` repository) and a Kustomization on it and times
  the creation to the Kustomization's Ready=True (fetch, archive, ``kubectl kustomize``, apply);
- makes a git repository with a random blob of ``--mib`` MiB (random: it does not compress), creates a
  GitRepository on it, and lists ConfigMaps over keep-alive HTTPS without pause until it is Ready; prints the fetch
  time and the list latency idle and during the fetch.

Usage: ``.venv/bin/python bench/sim_flux_fetch.py [--mib 40] [--rounds 20]`` (about 30 s).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.sim.conftest import start_sim
from tests.support.gitserver import Repo


def _q(samples: list[float], p: float) -> float:
    return sorted(samples)[int(p * (len(samples) - 1))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        (base / "data").mkdir()
        sim = start_sim(base / "data", "--flux", "--nodes", "1", "--flux-max-artifact-size", str(args.mib * 4))
        try:
            repo = Repo(base / "repo")
            repo.commit({"blob.bin": os.urandom(args.mib * 1024 * 1024)})
            cluster = sim.clusters[0]
            client = httpx.Client(verify=str(sim.ca), headers={"Authorization": f"Bearer {cluster.token}"},
                                  base_url=cluster.server)  # fmt: skip

            def lists(n: int) -> list[float]:
                out = []
                for _ in range(n):
                    t = time.perf_counter()
                    client.get("/api/v1/namespaces/default/configmaps").raise_for_status()
                    out.append(time.perf_counter() - t)
                return out

            small = Repo(base / "small")
            small.commit({"app/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n"})
            git_path = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories"
            ks_path = "/apis/kustomize.toolkit.fluxcd.io/v1/namespaces/default/kustomizations"
            to_ready = []
            for i in range(args.rounds):
                began = time.perf_counter()
                client.post(git_path, json={"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                                            "metadata": {"name": f"small-{i}"},
                                            "spec": {"url": small.url, "interval": "10m",
                                                     "ref": {"branch": "main"}}}).raise_for_status()  # fmt: skip
                client.post(ks_path, json={"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
                                           "metadata": {"name": f"small-{i}"},
                                           "spec": {"interval": "10m", "path": "./app", "prune": True,
                                                    "targetNamespace": "default", "namePrefix": f"r{i}-",
                                                    "sourceRef": {"kind": "GitRepository", "name": f"small-{i}"}}},
                            ).raise_for_status()  # fmt: skip
                while True:
                    status = client.get(f"{ks_path}/small-{i}").json().get("status", {})
                    if any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions", [])):
                        break
                    time.sleep(0.005)
                to_ready.append(time.perf_counter() - began)
            print(f"create GitRepository + Kustomization → Ready ({args.rounds} rounds): p50 {_q(to_ready, 0.5):.0f} ms,"
                  f" max {max(to_ready) * 1000:.0f} ms")  # fmt: skip
            lists(20)
            idle = lists(200)
            path = "/apis/source.toolkit.fluxcd.io/v1/namespaces/default/gitrepositories"
            body = {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
                    "metadata": {"name": "big"}, "spec": {"url": repo.url, "interval": "10m"}}  # fmt: skip
            body["spec"]["ref"] = {"branch": "main"}
            began = time.perf_counter()
            client.post(path, json=body).raise_for_status()
            during: list[float] = []
            while True:
                during += lists(5)
                conditions = client.get(f"{path}/big").json().get("status", {}).get("conditions", [])
                ready = next((c for c in conditions if c["type"] == "Ready"), {})
                if ready.get("status") in ("True", "False"):
                    break
            fetched = time.perf_counter() - began
            print(f"fetch of a {args.mib} MiB repository: {fetched:.2f} s (Ready={ready['status']} {ready['reason']})")
            print(f"list configmaps idle: p50 {_q(idle, 0.5):.1f} ms, p99 {_q(idle, 0.99):.1f} ms")
            print(f"during the fetch ({len(during)} lists): p50 {_q(during, 0.5):.1f} ms, p99 {_q(during, 0.99):.1f} ms,"
                  f" max {max(during) * 1000:.1f} ms")  # fmt: skip
        finally:
            sim.stop()


if __name__ == "__main__":
    main()
