"""How far one ``halyard sim`` process scales: memory, start time, list and watch latency at 1, 100, 1000 clusters.

For each size it starts a fresh ``halyard sim --clusters N`` (3 nodes each), waits for ``sim.json``, then:

- puts a 3-replica Deployment in up to 20 clusters and waits for its pods (so lists return real pods);
- ``list pods``: sequential ``GET /api/v1/namespaces/default/pods`` over keep-alive HTTPS, to random clusters;
- ``watch``: one open watch on ConfigMaps in each of up to 20 clusters; each sample writes a ConfigMap and times
  the write's start to the event arriving on the watch (write + fan-out + delivery);
- memory is the process's VmRSS, idle after start and again with the watches open.

Usage: ``.venv/bin/python bench/sim_scale.py [--sizes 1,100,1000] [--samples 500] [--json out.json]``.
Prints a Markdown table (the one in docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def deployment(name: str) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "c", "image": "nginx"}]}},
        },
    }


async def measure(size: int, samples: int, workdir: Path) -> dict[str, Any]:
    data = workdir / f"sim-{size}"
    cmd = [sys.executable, "-c", "from halyard.cli.main import main; main()", "sim", "--clusters", str(size),
           "--nodes", "3", "--port", "0", "--data-dir", str(data), "--pod-start-delay", "0.2"]  # fmt: skip
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        index = data / "sim.json"
        while not index.exists():
            if proc.poll() is not None:
                raise RuntimeError(f"halyard sim exited with {proc.returncode}")
            await asyncio.sleep(0.02)
        start_s = time.perf_counter() - began
        doc = json.loads(index.read_text())
        clusters = doc["clusters"]
        await asyncio.sleep(0.5)
        rss_idle = rss_mib(proc.pid)
        ca = doc["ca"]
        sample = random.Random(1).sample(clusters, min(20, len(clusters)))
        async with httpx.AsyncClient(verify=ca, timeout=30, limits=httpx.Limits(max_connections=50)) as http:

            def headers(c: dict[str, Any]) -> dict[str, str]:
                return {"Authorization": f"Bearer {c['token']}"}

            for c in sample:
                r = await http.post(f"{c['server']}/apis/apps/v1/namespaces/default/deployments",
                                    json=deployment("bench"), headers=headers(c))  # fmt: skip
                r.raise_for_status()
            for c in sample:
                for _ in range(200):
                    d = (await http.get(f"{c['server']}/apis/apps/v1/namespaces/default/deployments/bench",
                                        headers=headers(c))).json()  # fmt: skip
                    if (d.get("status") or {}).get("availableReplicas") == 3:
                        break
                    await asyncio.sleep(0.05)
            rng = random.Random(2)
            list_ms = []
            for _ in range(samples):
                c = rng.choice(sample)
                t0 = time.perf_counter()
                r = await http.get(f"{c['server']}/api/v1/namespaces/default/pods", headers=headers(c))
                list_ms.append((time.perf_counter() - t0) * 1000)
                assert r.status_code == 200 and len(r.json()["items"]) == 3
            # Watches: one per sampled cluster, events collected into per-cluster queues.
            queues: dict[str, asyncio.Queue[tuple[float, dict[str, Any]]]] = {
                c["name"]: asyncio.Queue() for c in sample
            }

            async def watch(c: dict[str, Any]) -> None:
                url = f"{c['server']}/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=0"
                async with http.stream("GET", url, headers=headers(c), timeout=None) as resp:
                    async for line in resp.aiter_lines():
                        if line:
                            queues[c["name"]].put_nowait((time.perf_counter(), json.loads(line)))

            watchers = [asyncio.create_task(watch(c)) for c in sample]
            await asyncio.sleep(1.0)
            rss_watching = rss_mib(proc.pid)
            watch_ms = []
            for i in range(samples):
                c = rng.choice(sample)
                q = queues[c["name"]]
                while not q.empty():
                    q.get_nowait()
                body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": f"w{i}"}, "data": {"i": str(i)}}
                t0 = time.perf_counter()
                r = await http.post(f"{c['server']}/api/v1/namespaces/default/configmaps", json=body,
                                    headers=headers(c))  # fmt: skip
                r.raise_for_status()
                while True:
                    at, event = await asyncio.wait_for(q.get(), 10)
                    if event["object"]["metadata"]["name"] == f"w{i}":
                        watch_ms.append((at - t0) * 1000)
                        break
            for t in watchers:
                t.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        return {
            "clusters": size,
            "start_s": round(start_s, 2),
            "rss_idle_mib": round(rss_idle, 1),
            "rss_watching_mib": round(rss_watching, 1),
            "list_p50_ms": round(statistics.median(list_ms), 2),
            "list_p99_ms": round(pct(list_ms, 0.99), 2),
            "watch_p50_ms": round(statistics.median(watch_ms), 2),
            "watch_p99_ms": round(pct(watch_ms, 0.99), 2),
            "samples": samples,
            # The machine is shared: a busy neighbour shows in p99s, so the load is part of the figure.
            "loadavg_1m": round(os.getloadavg()[0], 2),
        }
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def table(rows: list[dict[str, Any]]) -> str:
    base = next((r["rss_idle_mib"] for r in rows if r["clusters"] == 1), None)
    head = ("| clusters (3 nodes each) | start, s | RSS idle, MiB | RSS with 20 watches, MiB | KiB per extra cluster | "
            "list pods p50 / p99, ms | watch delivery p50 / p99, ms | load avg |")  # fmt: skip
    lines = [head, "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        extra = "-"
        if base is not None and r["clusters"] > 1:
            extra = str(round((r["rss_idle_mib"] - base) * 1024 / (r["clusters"] - 1), 1))
        lines.append(
            f"| {r['clusters']} | {r['start_s']} | {r['rss_idle_mib']} | {r['rss_watching_mib']} | "
            f"{extra} | {r['list_p50_ms']} / {r['list_p99_ms']} | "
            f"{r['watch_p50_ms']} / {r['watch_p99_ms']} | {r['loadavg_1m']} |"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,100,1000")
    parser.add_argument("--samples", type=int, default=500)
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    # Compile first: a process that compiles changed modules holds that memory and skews the RSS figures.
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(ROOT / "src" / "halyard")], check=True)
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            rows.append(await measure(size, args.samples, Path(tmp)))
            print(json.dumps(rows[-1]), file=sys.stderr)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print(table(rows))


if __name__ == "__main__":
    asyncio.run(main())
