"""Configuration push: time from an extension's PUT to the cluster having applied it and reported so, for one
cluster and for a fleet.

Each simulated cluster is onboarded as ``bench/fleet.py`` onboards it (its own key, certificate and agent token)
and runs what extension-manager runs of the protocol: a long poll on ``GET /dp/v1/configurations?since=V``, and
for each entry it has not acted on, a report (``POST /dp/v1/configurations/reports``, installed, with the digest of
the entry) at once. Installing with helm is what a real cluster adds, and is not measured here. ``--clusters 1``
times ``--rounds`` PUTs one after the other; a larger fleet is pushed at once: every cluster's extension is PUT
(48 at a time, as a script would) and each cluster's time counts from its own PUT to its report's 204.

    .venv/bin/python -m bench.config_push [--clusters 1 1000] [--rounds 20] [--state DIR]

**Not working yet at 1,000 clusters** (2026-12-06): the run ends with "Server disconnected without sending a
response" on the PUTs and polls of kept-alive connections the server closed, which the generator does not retry
yet (only its polls and reports do); the figure the issue asks for (p99 ≤ 1 s at 1,000) is therefore not measured.
One cluster works: docs/benchmarks.md.

``--state DIR`` reuses onboarded fleets as ``bench/fleet.py`` does. Connections: every cluster holds one long poll,
so the server's per-address connection limit is lifted for the run (all clusters share 127.0.0.1 here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from bench.fleet import SETUP_CONCURRENCY, Member, bounded, onboarded_fleet, percentile, run

from halyard.api.extensions import INSTALLED, entry_digest

EXT_API = {"api-version": "2025-03-01"}
HOLD = 25.0  # seconds a long poll waits (the server's bound is 30)
Applied = Callable[[str, float], None]


async def cluster_agent(
    http: httpx.AsyncClient, dp: str, member: Member, applied: Applied, stop: asyncio.Event
) -> None:
    """One cluster's extension-manager, as far as the protocol goes: poll, act on new entries, report."""
    since: str | None = None
    acted: dict[str, str] = {}
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {await member.identity.token()}"}
        params: dict[str, Any] = {"wait": HOLD} if since is None else {"since": since, "wait": HOLD}
        try:
            r = await http.get(f"{dp}/v1/configurations", params=params, headers=headers, timeout=HOLD + 10)
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
            # A kept-alive connection the server closed meanwhile: poll again, as the agent's loop does.
            if stop.is_set():
                return
            await asyncio.sleep(0.05)
            continue
        if r.status_code == 204:
            continue
        r.raise_for_status()
        body = r.json()
        since = body["version"]
        reports = {}
        for entry in body["extensions"]:
            digest = entry_digest(entry)
            if acted.get(entry["name"]) != digest:
                reports[entry["name"]] = {
                    "installState": INSTALLED,
                    "digest": digest,
                    "currentVersion": entry["version"],
                }
                acted[entry["name"]] = digest
        if reports:
            for _ in range(5):  # the same for the report: a closed kept-alive connection is retried
                try:
                    answer = await http.post(
                        f"{dp}/v1/configurations/reports", json={"extensions": reports}, headers=headers
                    )
                    break
                except (httpx.ReadError, httpx.RemoteProtocolError, httpx.ConnectError):
                    await asyncio.sleep(0.05)
            answer.raise_for_status()
            applied(member.name, time.perf_counter())


async def push(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    members: list[Member],
    round_: int,
    done: dict[str, asyncio.Future[float]],
) -> dict[str, float]:
    """PUT every member's extension (new settings: a new generation); each cluster's seconds to its report."""
    sent: dict[str, float] = {}

    async def put(member: Member) -> None:
        body = {"properties": {"extensionType": "microsoft.flux", "configurationSettings": {"round": str(round_)}}}
        sent[member.name] = time.perf_counter()
        r = await http.put(
            f"{url}{member.name}/providers/Microsoft.KubernetesConfiguration/extensions/pushed",
            params=EXT_API,
            json=body,
            headers={"Authorization": f"Bearer {token}"},
        )
        r.raise_for_status()

    await bounded(members, put, SETUP_CONCURRENCY)
    reported = await asyncio.wait_for(asyncio.gather(*(done[m.name] for m in members)), timeout=120)
    return {m.name: at - sent[m.name] for m, at in zip(members, reported, strict=True)}


async def run_size(count: int, args: argparse.Namespace) -> dict[str, Any]:
    async with onboarded_fleet(count, args, None) as (server, members, timings):
        limits = httpx.Limits(max_connections=count + 100, max_keepalive_connections=count + 100)
        async with httpx.AsyncClient(verify=server.ca, timeout=60, limits=limits) as http:
            dp = f"{server.url}/dp"
            waiting: dict[str, asyncio.Future[float]] = {}

            def applied(name: str, at: float) -> None:
                future = waiting.get(name)
                if future is not None and not future.done():
                    future.set_result(at)

            stop = asyncio.Event()
            agents = [asyncio.create_task(cluster_agent(http, dp, m, applied, stop)) for m in members]
            await asyncio.sleep(2)  # every poll waiting
            token = server.token()
            seconds: list[float] = []
            rounds = args.rounds if count == 1 else max(1, args.rounds // 10)
            for round_ in range(rounds + 1):  # round 0 installs: not counted (the clusters' first generation)
                loop = asyncio.get_running_loop()
                waiting.clear()
                waiting.update({m.name: loop.create_future() for m in members})
                took = await push(http, server.url, token, members, round_, waiting)
                if round_ > 0:
                    seconds += took.values()
            stop.set()
            for task in agents:
                task.cancel()
            await asyncio.gather(*agents, return_exceptions=True)
    ordered = sorted(seconds)  # percentile() takes seconds and answers milliseconds
    return {
        "clusters": count,
        "pushes": len(ordered),
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": round(ordered[-1] * 1000, 1),
        **{k: v for k, v in timings.items() if k.endswith("seconds")},
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--state", type=Path, default=None, help="reuse onboarded fleets here (bench/fleet.py's)")
    args = parser.parse_args()
    args.connections = 64  # what onboarded_fleet's setup client keeps open
    os.environ["HALYARD_CONNECTIONS_PER_ADDRESS"] = "0"  # every cluster's long poll comes from 127.0.0.1
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    print(json.dumps({"machine": platform.processor() or platform.machine(), "cpus": os.cpu_count()}), flush=True)
    for count in args.clusters:
        print(json.dumps(await run_size(count, args)), flush=True)


if __name__ == "__main__":
    run(main)
