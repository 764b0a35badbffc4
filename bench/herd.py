"""Thundering herd: every cluster of a fleet reconnects at once when the control plane comes back after an outage.

The fleet is ``bench/fleet.py``'s (onboarded clusters with real certificates and agent tokens; ``--state`` reuses a
saved one). The server is stopped; from that moment every cluster retries its heartbeat the way the agents do
(``halyard.agent.backoff.Backoff``: full jitter, exponential, the server's ``Retry-After`` as a floor), each attempt
on a new TLS connection, since a restart drops every connection. After ``--outage`` seconds the server starts again
on the same port and data. Measured from that start:

- how long until every cluster's beat was accepted (``drain_seconds``) and how the acceptances spread;
- attempts refused at the connection (the server not yet listening, or its backlog full), shed with 429, failed
  otherwise;
- the server's CPU and peak memory, and how quickly it answered ``/healthz`` meanwhile (what an operator or a load
  balancer sees while the herd lands).

The baseline is the same herd at ``bench/responder.py`` (the same uvicorn/uvloop/TLS stack with the same
certificate, a fixed reply, no authentication or store), stopped and started again the same way: its drain time is
what the transport alone costs (mostly TLS handshakes, on both sides of this one machine).

    .venv/bin/python -m bench.herd [--clusters 10000] [--outage 10] [--state .cache/fleet] [--no-baseline]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import ssl
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.fleet import (
    KeepAlive,
    beat_requests,
    cpu_seconds,
    memory_mb,
    onboarded_fleet,
    percentile,
    run,
    start_responder,
)
from tests.support.processes import ServerProcess, free_port

from halyard.agent.backoff import Backoff

ATTEMPT_TIMEOUT = 30.0  # an agent's request timeout: a connection the server never answers is given up on
HEALTH_PERIOD = 0.25
HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: herd\r\n\r\n"


@dataclass
class Herd:
    """What the herd saw, in seconds since the target was started again."""

    accepted: list[float] = field(default_factory=list)
    refused: int = 0  # no connection, or no answer within the timeout
    statuses: dict[int, int] = field(default_factory=dict)  # answers other than 200
    health: list[float] = field(default_factory=list)  # /healthz round trips once it first answered
    health_failures: int = 0
    ready_seconds: float = 0.0

    def figures(self) -> dict[str, Any]:
        accepted = sorted(self.accepted)
        health = sorted(self.health)
        return {
            "accepted": len(accepted),
            "drain_seconds": round(accepted[-1], 1) if accepted else None,
            "accepted_p50_seconds": round(percentile(accepted, 50) / 1000, 1),
            "accepted_p99_seconds": round(percentile(accepted, 99) / 1000, 1),
            "ready_seconds": round(self.ready_seconds, 1),
            "attempts_refused": self.refused,
            "answers_not_ok": {str(k): v for k, v in sorted(self.statuses.items())},
            "healthz_p50_ms": percentile(health, 50),
            "healthz_p99_ms": percentile(health, 99),
            "healthz_max_ms": round(health[-1] * 1000, 1) if health else None,
            "healthz_failures": self.health_failures,
        }


async def stampede(
    port: int, ca: str, requests: list[bytes], outage: float, restart: Callable[[], Awaitable[None]]
) -> tuple[Herd, float]:
    """Every request retried as an agent retries it, from now (the target was just stopped); ``restart`` is awaited
    after ``outage`` seconds. Returns what was seen and the monotonic time of the restart."""
    tls = ssl.create_default_context(cafile=ca)
    herd = Herd()
    started = asyncio.get_running_loop().create_future()
    drained = asyncio.Event()
    remaining = len(requests)

    async def agent(request: bytes) -> None:
        nonlocal remaining
        backoff = Backoff(rng=random.Random())
        delay = backoff.next_delay()  # its beat in flight when the server went away failed
        while True:
            await asyncio.sleep(delay)
            connection = KeepAlive("127.0.0.1", port, tls)
            try:
                status = await asyncio.wait_for(connection.exchange(request), ATTEMPT_TIMEOUT)
            except (OSError, ConnectionError, TimeoutError):
                herd.refused += 1
                delay = backoff.next_delay()
                continue
            finally:
                connection.close()
            if status == 200:
                herd.accepted.append(time.perf_counter() - await started)
                remaining -= 1
                if not remaining:
                    drained.set()
                return
            herd.statuses[status] = herd.statuses.get(status, 0) + 1
            delay = max(backoff.next_delay(), connection.retry_after or 0.0)

    async def come_back() -> None:
        await asyncio.sleep(outage)
        at = time.perf_counter()
        started.set_result(at)
        await restart()
        herd.ready_seconds = time.perf_counter() - at

    async def watch_health() -> None:
        await started
        probe = KeepAlive("127.0.0.1", port, tls)
        answered = False
        while not drained.is_set():
            sent = time.perf_counter()
            try:
                await asyncio.wait_for(probe.exchange(HEALTHZ), ATTEMPT_TIMEOUT)
                herd.health.append(time.perf_counter() - sent)
                answered = True
            except (OSError, ConnectionError, TimeoutError):
                probe.close()
                probe = KeepAlive("127.0.0.1", port, tls)
                herd.health_failures += answered  # failures before it first answered are the restart itself
            await asyncio.sleep(max(0.0, HEALTH_PERIOD - (time.perf_counter() - sent)))
        probe.close()

    await asyncio.gather(come_back(), watch_health(), *(agent(r) for r in requests))
    return herd, started.result()


async def herd_at_server(server: ServerProcess, requests: list[bytes], outage: float) -> dict[str, Any]:
    server.stop()
    # Every simulated cluster connects from 127.0.0.1, where real ones come from addresses of their own: without
    # this the per-address connection limit (256) would shed the herd as if the whole fleet sat behind one NAT.
    server.env["HALYARD_CONNECTIONS_PER_ADDRESS"] = "0"
    generator_cpu = time.process_time()

    async def restart() -> None:
        await asyncio.to_thread(server.start, 600.0)  # readiness polls share the herd's queue: a long timeout

    herd, _ = await stampede(server.port, server.ca, requests, outage, restart)
    pid = server.proc.pid  # type: ignore[union-attr]
    return {
        **herd.figures(),
        "server_cpu_seconds": round(cpu_seconds(pid), 1),  # the new process's, start-up included
        "server_memory_mb": {k: round(v, 1) for k, v in memory_mb(pid).items()},
        "generator_cpu_seconds": round(time.process_time() - generator_cpu, 1),
    }


async def herd_at_responder(server: ServerProcess, requests: list[bytes], outage: float) -> dict[str, Any]:
    port = free_port()
    # The same requests, for the responder's port (it reads no header, so the Host line may stay).
    responder: list[subprocess.Popen[bytes]] = [await start_responder(server, port)]
    responder[0].kill()
    responder[0].wait(10)

    async def restart() -> None:
        responder[0] = await start_responder(server, port)

    try:
        herd, _ = await stampede(port, server.ca, requests, outage, restart)
        return {**herd.figures(), "responder_cpu_seconds": round(cpu_seconds(responder[0].pid), 1)}
    finally:
        responder[0].kill()
        responder[0].wait(10)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=10000)
    parser.add_argument("--outage", type=float, default=10.0, help="seconds the server stays down")
    parser.add_argument("--state", type=Path, default=None, help="as bench/fleet.py: reuse an onboarded fleet")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--connections", type=int, default=64, help="the setup's HTTPS connections")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()
    async with onboarded_fleet(args.clusters, args, None) as (server, members, timings):
        requests = await beat_requests(server, members)
        result: dict[str, Any] = {"clusters": args.clusters, "outage_seconds": args.outage, **timings}
        result["halyard"] = await herd_at_server(server, requests, args.outage)
        if args.baseline:
            result["baseline"] = base = await herd_at_responder(server, requests, args.outage)
            if base["drain_seconds"] and result["halyard"]["drain_seconds"]:
                result["drain_over_baseline"] = round(result["halyard"]["drain_seconds"] / base["drain_seconds"], 2)
    result["machine"] = {"cpus": os.cpu_count(), "processor": platform.processor() or platform.machine()}
    print(json.dumps(result), flush=True)
    if args.output:
        args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main)
