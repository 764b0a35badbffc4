"""Fleet benchmark: many simulated clusters heartbeating to one control plane, speaking the real agent protocol.

For each fleet size it starts a fresh ``halyard server`` (SQLite, or PostgreSQL started here), creates the clusters
through the management API, onboards every one the way identity-operator does (its own onboarding key, a proof of
possession to ``his``, a cluster certificate, a client-assertion token from the login service) with the agents' own
code, then lets every cluster heartbeat to ``dp`` at the interval from a random phase, many clusters per process
(one asyncio loop, one HTTPS connection pool). It reports heartbeat p50/p99 latency and the server's CPU and memory.

    .venv/bin/python -m bench.fleet [--clusters 100 1000 10000] [--interval 30] [--duration 90] [--backend sqlite]

Latency is measured in the load generator, which shares the machine's cores with the server: at the largest sizes
part of it is the generator's own queueing, so the figures are an upper bound on the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.controlplane import send
from halyard.agent.identity import IdentityOperator
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import DP_HEARTBEAT_PATH, EndpointMap, Heartbeat
from halyard.core.clock import SystemClock

API_VERSION = "2026-05-01"
GROUP = "fleet"
SETUP_CONCURRENCY = 48
POOL_SIZE = 4


@dataclass
class Member:
    """One simulated cluster: its resource id and its identity operator (certificate, token cache)."""

    name: str
    identity: IdentityOperator


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


async def bounded(items: list[Any], worker: Any, concurrency: int) -> list[Any]:
    queue = list(enumerate(items))
    results: list[Any] = [None] * len(items)

    async def run() -> None:
        while queue:
            index, item = queue.pop()
            results[index] = await worker(item)

    await asyncio.gather(*(run() for _ in range(concurrency)))
    return results


async def wait_provisioned(http: httpx.AsyncClient, url: str, headers: dict[str, str], count: int) -> None:
    while True:
        done, next_url = 0, f"{url}?api-version={API_VERSION}"
        while next_url:
            page = await send(http, "GET", next_url, headers=headers)
            done += sum(1 for c in page["value"] if c["properties"]["provisioningState"] == "Succeeded")
            next_url = page.get("nextLink")
        if done >= count:
            return
        await asyncio.sleep(5)


async def onboard(server: ServerProcess, http: httpx.AsyncClient, count: int) -> tuple[list[Member], dict[str, float]]:
    admin = server.admin
    sub = admin["subscription"]
    headers = {"Authorization": f"Bearer {server.token()}"}
    base = f"{server.url}/subscriptions/{sub}/resourceGroups/{GROUP}"
    await send(http, "PUT", base, params={"api-version": "2022-12-01"}, json={"location": "eastus"}, headers=headers)
    endpoints = EndpointMap.model_validate({**(await send(http, "GET", f"{server.url}/his/v1/endpoints")),
                                            "tenant": admin["tenant"]})  # fmt: skip
    ca = Path(server.ca).read_text()
    timings: dict[str, float] = {}

    async def create(index: int) -> tuple[str, ec.EllipticCurvePrivateKey]:
        key = ec.generate_private_key(ec.SECP256R1())
        der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        rid = (
            f"/subscriptions/{sub}/resourceGroups/{GROUP}/providers/Microsoft.Kubernetes/connectedClusters/c{index:05d}"
        )
        body = {"location": "eastus", "identity": {"type": "SystemAssigned"},
                "properties": {"agentPublicKeyCertificate": base64.b64encode(der).decode()}}  # fmt: skip
        await send(http, "PUT", server.url + rid, params={"api-version": API_VERSION}, json=body, headers=headers)
        return rid, key

    started = time.perf_counter()
    created = await bounded(list(range(count)), create, SETUP_CONCURRENCY)
    timings["create_seconds"] = time.perf_counter() - started
    # Wait for the provisioning operations the PUTs queued: measuring heartbeats while the worker drains thousands
    # of operations would measure the worker (it shares the one SQLite writer), not the fleet in steady state.
    started = time.perf_counter()
    await wait_provisioned(http, f"{base}/providers/Microsoft.Kubernetes/connectedClusters", headers, count)
    timings["provision_seconds"] = time.perf_counter() - started

    async def certify(item: tuple[str, ec.EllipticCurvePrivateKey]) -> Member:
        rid, key = item
        config = ClusterConfig(rid, endpoints, ca, True, key)
        identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
        identity.issued = await identity.request_certificate(None)
        identity.ready.set()
        await identity.token()
        return Member(rid, identity)

    started = time.perf_counter()
    members = await bounded(created, certify, SETUP_CONCURRENCY)
    timings["certificate_and_token_seconds"] = time.perf_counter() - started
    return members, timings


async def heartbeat_fleet(
    server: ServerProcess,
    pools: list[httpx.AsyncClient],
    members: list[Member],
    interval: float,
    duration: float,
    connections: int,
) -> dict[str, Any]:
    url = f"{server.url}/dp{DP_HEARTBEAT_PATH}"
    latencies: list[float] = []
    failures = 0
    beat = Heartbeat(agentVersion="bench", kubernetesVersion="1.31.2", totalNodeCount=3, totalCoreCount=12,
                     distribution="generic", infrastructure="generic", agentState="Succeeded")  # fmt: skip
    body = beat.model_dump_json(exclude_none=True).encode()
    headers = {"Content-Type": "application/json"}
    stop_at = time.perf_counter() + duration

    # In-flight requests are bounded here, not in the connection pool: a pool queue thousands deep costs the
    # generator O(queue) per request (httpcore), which would measure the generator, not the server.
    slots = asyncio.Semaphore(connections)
    lags: list[float] = []

    async def agent(member: Member, http: httpx.AsyncClient) -> None:
        nonlocal failures
        due = time.perf_counter() + random.uniform(0, interval)
        while True:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() >= stop_at:
                return
            async with slots:
                started = time.perf_counter()
                lags.append(started - due)  # how late the generator got to it (its own saturation)
                try:
                    token = await member.identity.token()
                    await send(http, "POST", url, content=body, headers={**headers, "Authorization": f"Bearer {token}"})
                    latencies.append(time.perf_counter() - started)
                except Exception:
                    failures += 1
            due += interval

    pid = server.proc.pid  # type: ignore[union-attr]
    cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
    await asyncio.gather(*(agent(m, pools[i % len(pools)]) for i, m in enumerate(members)))
    wall = time.perf_counter() - wall_before
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1) if ordered else 0.0

    return {
        "heartbeats": len(latencies),
        "failures": failures,
        "rate_per_second": round(len(latencies) / wall, 1),
        "p50_ms": pct(50),
        "p99_ms": pct(99),
        "max_ms": round(ordered[-1] * 1000, 1) if ordered else 0.0,
        "generator_lag_p99_ms": round(sorted(lags)[int(0.99 * (len(lags) - 1))] * 1000, 1) if lags else 0.0,
        "server_cpu_percent": round((cpu_seconds(pid) - cpu_before) / wall * 100, 1),
        "server_memory_mb": {k: round(v, 1) for k, v in memory_mb(pid).items()},
    }


async def run_size(count: int, args: argparse.Namespace, database_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="halyard-fleet-") as tmp:
        server = ServerProcess(Path(tmp) / "data", free_port(), database_url=database_url).start()
        try:
            limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
            # Many small pools rather than one large one: httpcore scans every connection of a pool (a poll(2) each)
            # for every request, so one 64-connection pool costs the generator more CPU than the server spends.
            small = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
            pools = [
                httpx.AsyncClient(verify=server.ca, timeout=60, limits=small)
                for _ in range(max(1, args.connections // POOL_SIZE))
            ]
            try:
                async with httpx.AsyncClient(verify=server.ca, timeout=60, limits=limits) as http:
                    members, timings = await onboard(server, http, count)
                result = await heartbeat_fleet(server, pools, members, args.interval, args.duration, args.connections)
            finally:
                for pool in pools:
                    await pool.aclose()
            return {"clusters": count, "interval_seconds": args.interval, **timings, **result}
        finally:
            server.stop()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--connections", type=int, default=64, help="HTTPS connections the generator keeps open")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    pg = (
        PostgresServer(Path(tempfile.mkdtemp(prefix="halyard-fleet-pg-"))).start()
        if args.backend == "postgres"
        else None
    )
    results = []
    try:
        for count in args.clusters:
            url = pg.create_database(f"fleet_{count}") if pg else None
            result = await run_size(count, args, url)
            result["backend"] = args.backend
            print(json.dumps(result), flush=True)
            results.append(result)
    finally:
        if pg is not None:
            pg.stop()
    if args.output:
        args.output.write_text(json.dumps({"machine": platform.processor() or platform.machine(),
                                           "cpus": os.cpu_count(), "results": results}, indent=2))  # fmt: skip


if __name__ == "__main__":
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(main())
