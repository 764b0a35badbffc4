"""Configuration push: time from an extension's PUT to the cluster having applied it and reported so, for one
cluster and for a fleet.

Each simulated cluster is onboarded as ``bench/fleet.py`` onboards it (its own key, certificate and agent token)
and runs what extension-manager runs of the protocol: a long poll on ``GET /dp/v1/configurations?since=V``, and
for each entry it has not acted on, a report (``POST /dp/v1/configurations/reports``, installed, with the digest of
the entry) at once, each cluster with its own HTTP client (as each cluster has its own agents). Installing with
helm is what a real cluster adds, and is not measured here. Every agent has polled once (so the server knows it runs
an extension-manager) before the first PUT. ``--clusters 1`` times ``--rounds`` PUTs one after the other; a larger
fleet is pushed at once: every cluster's extension is PUT (``--concurrency`` at a time, 48 by default, as a script
would) and each cluster's time counts from its own PUT's first attempt to its report's 204, its PUT's wait behind the
others in flight included. Idempotent PUTs and reports are retried as a client retries them (a connection failed
under them, 429/503); ``retried`` counts them.

    .venv/bin/python -m bench.config_push [--clusters 1 1000] [--rounds 20] [--concurrency 48] [--state DIR]

Figures, and what made the 1,000-cluster run fail before (the server's 5 s keep-alive racing its clients' own 5 s
expiry, met ever so often by one 1,100-connection client pool): docs/benchmarks.md.

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
import ssl
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from bench.fleet import SETUP_CONCURRENCY, Member, bounded, cpu_seconds, memory_mb, onboarded_fleet, percentile, run

from halyard.agent.longpoll import HOLD_SECONDS
from halyard.api.extensions import INSTALLED, entry_digest

EXT_API = {"api-version": "2025-03-01"}
HOLD = HOLD_SECONDS  # what the agents ask (the server holds at most its long_poll_seconds, 300 by default)
ATTEMPTS = 5  # of an idempotent PUT or report, as a client retries them
Applied = Callable[[str, float], None]
retried: Counter[str] = Counter()  # what had to be sent again, and why: printed with the figures


async def cluster_agent(
    tls: ssl.SSLContext, dp: str, member: Member, applied: Applied, started: Callable[[], None], stop: asyncio.Event
) -> None:
    """One cluster's extension-manager, as far as the protocol goes: poll, act on new entries, report; with a client
    of its own, as each cluster has (one pool for a thousand clusters costs the generator, not the server, O(n) per
    request in httpcore's pool)."""
    limits = httpx.Limits(max_connections=2, max_keepalive_connections=2)
    async with httpx.AsyncClient(verify=tls, timeout=60, limits=limits) as http:
        await _agent_loop(http, dp, member, applied, started, stop)


async def _agent_loop(
    http: httpx.AsyncClient, dp: str, member: Member, applied: Applied, started: Callable[[], None], stop: asyncio.Event
) -> None:
    since: str | None = None
    acted: dict[str, str] = {}
    while not stop.is_set():
        headers = {"Authorization": f"Bearer {await member.identity.token()}"}
        params: dict[str, Any] = {"wait": HOLD} if since is None else {"since": since, "wait": HOLD}
        poll_headers = headers if since is None else {**headers, "If-None-Match": f'"{since}"'}
        try:
            r = await http.get(f"{dp}/v1/configurations", params=params, headers=poll_headers, timeout=HOLD + 30)
        except httpx.TransportError as exc:
            # A connection the server closed meanwhile: poll again, as the agent's loop does.
            if stop.is_set():
                return
            retried[f"poll {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05)
            continue
        if r.status_code in (204, 304):  # 304: the hold ended, still at our version (nothing read)
            continue
        if r.status_code in (429, 503):  # the server's own back-pressure: poll again when it says
            retried[f"poll {r.status_code}"] += 1
            await asyncio.sleep(float(r.headers.get("Retry-After") or 1))
            continue
        r.raise_for_status()
        body = r.json()
        if since is None:
            started()  # its first poll: the server knows it runs (agentpresence.py), its PUTs are accepted
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
            url = f"{dp}/v1/configurations/reports"
            answer = await retrying(lambda: http.post(url, json={"extensions": reports}, headers=headers), "report")
            answer.raise_for_status()
            applied(member.name, time.perf_counter())


async def retrying(request: Callable[[], Awaitable[httpx.Response]], what: str) -> httpx.Response:
    """Send an idempotent request as a real client does: again, a few times, when the connection failed under it
    (no answer at all) or the server answered 429/503 with a Retry-After; each retry is counted in ``retried``."""
    for attempt in range(ATTEMPTS):
        last = attempt == ATTEMPTS - 1
        try:
            response = await request()
        except httpx.TransportError as exc:
            if last:
                raise
            retried[f"{what} {type(exc).__name__}"] += 1
            await asyncio.sleep(0.05 * 2**attempt)
            continue
        if response.status_code not in (429, 503) or last:
            return response
        retried[f"{what} {response.status_code}"] += 1
        await asyncio.sleep(float(response.headers.get("Retry-After") or 1))
    raise AssertionError("unreachable")


async def push(
    http: httpx.AsyncClient,
    url: str,
    token: str,
    members: list[Member],
    round_: int,
    done: dict[str, asyncio.Future[float]],
    concurrency: int,
) -> dict[str, float]:
    """PUT every member's extension (new settings: a new generation); each cluster's seconds to its report."""
    sent: dict[str, float] = {}

    async def put(member: Member) -> None:
        body = {"properties": {"extensionType": "microsoft.flux", "configurationSettings": {"round": str(round_)}}}
        target = f"{url}{member.name}/providers/Microsoft.KubernetesConfiguration/extensions/pushed"
        sent[member.name] = time.perf_counter()  # from the first attempt: a retry is part of the client's wait
        r = await retrying(
            lambda: http.put(target, params=EXT_API, json=body, headers={"Authorization": f"Bearer {token}"}), "put"
        )
        r.raise_for_status()

    async def tell() -> None:
        while True:
            await asyncio.sleep(10)
            reported = sum(1 for m in members if done[m.name].done())
            progress(f"round {round_}: {len(sent)} PUT, {reported} reported, retried {dict(retried)}")

    teller = asyncio.create_task(tell())
    try:
        await bounded(members, put, concurrency)
        reported = await asyncio.wait_for(asyncio.gather(*(done[m.name] for m in members)), timeout=120)
    finally:
        teller.cancel()
    return {m.name: at - sent[m.name] for m, at in zip(members, reported, strict=True)}


def progress(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)


def generator_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def run_size(count: int, args: argparse.Namespace) -> dict[str, Any]:
    retried.clear()
    async with onboarded_fleet(count, args, None) as (server, members, timings):
        progress(f"{count} clusters onboarded, tokens minted")
        assert server.proc is not None
        pid = server.proc.pid
        limits = httpx.Limits(max_connections=args.concurrency, max_keepalive_connections=args.concurrency)
        tls = ssl.create_default_context(cafile=server.ca)
        # --push N: every cluster long-polls, N of them (spread over the fleet) are pushed to each round.
        step = max(1, count // args.push) if args.push else 1
        pushed = members[::step][: args.push] if args.push else members
        async with httpx.AsyncClient(verify=tls, timeout=60, limits=limits) as http:
            dp = f"{server.url}/dp"
            waiting: dict[str, asyncio.Future[float]] = {}
            polling = asyncio.Semaphore(0)

            def applied(name: str, at: float) -> None:
                future = waiting.get(name)
                if future is not None and not future.done():
                    future.set_result(at)

            stop = asyncio.Event()
            started_polls = time.perf_counter()
            agents = [asyncio.create_task(cluster_agent(tls, dp, m, applied, polling.release, stop)) for m in members]
            for index, _ in enumerate(members):  # every agent has polled once (and is long-polling again)
                await asyncio.wait_for(polling.acquire(), timeout=600)
                if (index + 1) % 1000 == 0:
                    progress(f"{index + 1} agents have polled, server RSS {memory_mb(pid)['VmRSS']:.0f} MB")
            first_polls = time.perf_counter() - started_polls
            await asyncio.sleep(5)
            progress(f"{count} agents polling")
            # The fleet idle, every poll held: what holding costs the server (renewals every few minutes).
            cpu, own, quiet = cpu_seconds(pid), generator_cpu_seconds(), 10.0
            await asyncio.sleep(quiet)
            idle = {
                "server_cpu_percent": round((cpu_seconds(pid) - cpu) / quiet * 100, 1),
                "generator_cpu_percent": round((generator_cpu_seconds() - own) / quiet * 100, 1),
                "server_rss_mb": round(memory_mb(pid)["VmRSS"]),
            }
            token = server.token()
            seconds: list[float] = []
            walls: list[float] = []
            rounds = args.rounds if count == 1 else max(1, args.rounds // 10)
            cpu = own = 0.0
            for round_ in range(rounds + 1):  # round 0 installs: not counted (the clusters' first generation)
                loop = asyncio.get_running_loop()
                waiting.clear()
                waiting.update({m.name: loop.create_future() for m in pushed})
                if round_ == 1:
                    cpu, own = cpu_seconds(pid), generator_cpu_seconds()
                started = time.perf_counter()
                took = await push(http, server.url, token, pushed, round_, waiting, args.concurrency)
                progress(f"round {round_}: p99 {percentile(sorted(took.values()), 99)} ms, retried {dict(retried)}")
                if round_ > 0:
                    seconds += took.values()
                    walls.append(time.perf_counter() - started)
            pushing = {
                "server_cpu_percent": round((cpu_seconds(pid) - cpu) / sum(walls) * 100, 1),
                "generator_cpu_percent": round((generator_cpu_seconds() - own) / sum(walls) * 100, 1),
                "server_rss_mb": round(memory_mb(pid)["VmRSS"]),
            }
            stop.set()
            for task in agents:
                task.cancel()
            await asyncio.gather(*agents, return_exceptions=True)
    ordered = sorted(seconds)  # percentile() takes seconds and answers milliseconds
    return {
        "clusters": count,
        "pushed_per_round": len(pushed),
        "pushes": len(ordered),
        "p50_ms": percentile(ordered, 50),
        "p99_ms": percentile(ordered, 99),
        "max_ms": round(ordered[-1] * 1000, 1),
        "put_concurrency": args.concurrency,
        "round_seconds": round(max(walls), 1),  # the first PUT to the last cluster's report, the slowest round
        "pushes_per_second": round(len(ordered) / sum(walls), 1),
        "retried": dict(retried),
        "first_polls_seconds": round(first_polls, 1),
        "idle_all_polls_held": idle,
        "while_pushing": pushing,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        **{k: v for k, v in timings.items() if k.endswith("seconds")},
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, nargs="+", default=[1, 1000])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=SETUP_CONCURRENCY,
                        help="PUTs in flight at once (a script's parallelism): each cluster's time includes its "
                             "PUT's wait behind the others")  # fmt: skip
    parser.add_argument("--state", type=Path, default=None, help="reuse onboarded fleets here (bench/fleet.py's)")
    parser.add_argument("--push", type=int, default=0,
                        help="push to this many clusters of the fleet each round (spread over it; all polling): "
                             "at 10,000 a round of every cluster takes the server's write rate, ~5 min")  # fmt: skip
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
