"""Hostile-load benchmark: honest heartbeats from a fleet, undisturbed and then while others misbehave.

One control plane (SQLite), ``--clusters`` onboarded clusters heartbeating as in ``bench/fleet.py`` (the same
generator: pre-encoded beats on keep-alive HTTPS connections, every cluster at the interval from a random phase).
The honest beats are measured twice for ``--duration`` seconds each: first undisturbed, then while

- one more cluster sends poisoned and oversized beats without pause (lone surrogates, a 4,000-digit count, a 300 KB
  field, a 1 MiB body, a 5 MiB ``Content-Length``);
- another piles up certificate requests to ``his`` (renewal proofs with its current certificate, a new key each);
- ``--slow`` connections send half a request line and headers, then nothing (when the server closes one, another
  takes its place);

each attacker from its own loopback address (127.0.0.2-4), as it would be from its own host: the per-address
connection limit applies to each. It reports honest p50/p99 in both phases and their ratio, what each attacker got,
``/healthz`` latency under attack, and the server's CPU and memory.

    .venv/bin/python -m bench.hostile [--clusters 1000] [--interval 30] [--duration 60] [--slow 200]
                                      [--state DIR] [--output FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import multiprocessing
import os
import platform
import ssl
import time
import uuid
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
from bench.fleet import (
    beat_requests,
    cpu_seconds,
    drive,
    heartbeat_request,
    memory_mb,
    onboarded_fleet,
    percentile,
    run,
)
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from halyard.agent.identity import Issued
from halyard.api.agents import DP_HEARTBEAT_PATH, HIS_CERTIFICATE_PATH, PROOF_ISSUER
from halyard.api.proofs import csr_digest, signing_algorithm

POISONER, PILER, SLOW, PROBE = "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"


def poisoned_bodies() -> list[bytes]:
    error = {"message": "m", "severity": "Error", "component": "c", "time": "2026-01-01T00:00:00Z"}
    return [
        json.dumps({"agentVersion": "1", "agentErrors": [{**error, "severity": "\ud800"}]}).encode(),
        json.dumps({"agentVersion": "1", "totalNodeCount": 10**4000}).encode(),
        json.dumps({"agentVersion": "1", "agentErrors": [{**error, "severity": "x" * 300_000}]}).encode(),
        json.dumps({"agentVersion": "1", "agentErrors": [{**error, "message": "m" * 2000}] * 32 * 16}).encode(),
        b"[" * 100_000 + b"]" * 100_000,
    ]


async def exchange(host: str, port: int, tls: ssl.SSLContext, source: str, request: bytes) -> int:
    """One request on a new connection from ``source``; the status, or 0 if the connection broke."""
    try:
        reader, writer = await asyncio.open_connection(host, port, ssl=tls, local_addr=(source, 0))
    except OSError:
        return 0
    try:
        writer.write(request)
        head = await reader.readuntil(b"\r\n\r\n")
        return int(head[9:12])
    except (OSError, asyncio.IncompleteReadError, ssl.SSLError, ValueError):
        return 0
    finally:
        writer.transport.abort()


async def poison(port: int, token: str, tls: ssl.SSLContext, stop: asyncio.Event) -> Counter[int]:
    """Poisoned and oversized beats from one cluster, one after another, as fast as they are answered."""
    host, path = f"127.0.0.1:{port}", f"/dp{DP_HEARTBEAT_PATH}"
    requests = [heartbeat_request(host, path, token, body) for body in poisoned_bodies()]
    # A Content-Length far over the limit, with no body behind it: refused before anything is read.
    requests.append(heartbeat_request(host, path, token, b"").replace(b"Content-Length: 0", b"Content-Length: 5242880"))
    seen: Counter[int] = Counter()
    while not stop.is_set():
        for request in requests:
            seen[await exchange("127.0.0.1", port, tls, POISONER, request)] += 1
    return seen


async def pile_certificates(url: str, ca: str, name: str, issued: Issued, stop: asyncio.Event) -> Counter[int]:
    """Certificate requests from one cluster without pause (4 at a time), each proven with its current key."""
    x5c = [base64.b64encode(issued.certificate.public_bytes(serialization.Encoding.DER)).decode()]
    seen: Counter[int] = Counter()
    transport = httpx.AsyncHTTPTransport(verify=ca, local_address=PILER)
    async with httpx.AsyncClient(transport=transport, timeout=30) as http:

        async def worker() -> None:
            while not stop.is_set():
                key = ec.generate_private_key(ec.SECP256R1())
                subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "pile")])
                csr = x509.CertificateSigningRequestBuilder().subject_name(subject).sign(key, hashes.SHA256())
                now = int(time.time())
                claims = {"iss": PROOF_ISSUER, "sub": name, "aud": url, "iat": now, "exp": now + 120,
                          "jti": uuid.uuid4().hex, "csr": csr_digest(csr)}  # fmt: skip
                proof = jwt.encode(claims, issued.key, algorithm=signing_algorithm(issued.key), headers={"x5c": x5c})  # type: ignore[arg-type]
                body = {"resourceId": name, "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
                        "proof": proof}  # fmt: skip
                try:
                    seen[(await http.post(url, json=body)).status_code] += 1
                except httpx.HTTPError:
                    seen[0] += 1

        await asyncio.gather(*(worker() for _ in range(4)))
    return seen


async def slow_headers(port: int, tls: ssl.SSLContext, count: int, stop: asyncio.Event) -> Counter[str]:
    """``count`` connections that send half their headers and stall; each closed one is replaced."""
    seen: Counter[str] = Counter()

    async def one() -> None:
        while not stop.is_set():
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=tls, local_addr=(SLOW, 0))
            except OSError:
                seen["connect_failed"] += 1
                await asyncio.sleep(1)
                continue
            seen["opened"] += 1
            try:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                answer = await reader.read(64)
                seen[answer[9:12].decode() or "closed"] += 1
            except (OSError, ssl.SSLError):
                seen["reset"] += 1
            finally:
                writer.transport.abort()

    tasks = [asyncio.create_task(one()) for _ in range(count)]
    await stop.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return seen


async def probe_health(port: int, tls: ssl.SSLContext, stop: asyncio.Event) -> list[float]:
    """``/healthz`` once a second on a fresh connection, as a load balancer would."""
    latencies = []
    while not stop.is_set():
        started = time.perf_counter()
        status = await exchange("127.0.0.1", port, tls, PROBE, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        latencies.append(time.perf_counter() - started if status == 200 else float("inf"))
        await asyncio.sleep(1)
    return latencies


@dataclass(frozen=True)
class Attack:
    """What the attacking process needs (picklable: it runs in a process of its own, so the honest generator's
    event loop, and so its measurement, is not slowed by the attackers' work)."""

    port: int
    ca: str
    poisoner_token: str
    piler_name: str
    piler_secret: dict[str, str]
    slow: int
    attacks: tuple[str, ...] = ("poison", "pile", "slow")


async def _nothing(empty: Counter[Any]) -> Counter[Any]:
    return empty


def attack(plan: Attack, started: Any, stop: Any, results: Any) -> None:
    """The attackers, until ``stop`` is set; what each got is put on ``results``."""

    async def main() -> None:
        tls = ssl.create_default_context(cafile=plan.ca)
        halt = asyncio.Event()
        url = f"https://127.0.0.1:{plan.port}/his{HIS_CERTIFICATE_PATH}"
        issued = Issued.from_secret(plan.piler_secret)
        idle: Counter[Any] = Counter()
        tasks = [
            poison(plan.port, plan.poisoner_token, tls, halt) if "poison" in plan.attacks else _nothing(idle),
            pile_certificates(url, plan.ca, plan.piler_name, issued, halt)
            if "pile" in plan.attacks
            else _nothing(idle),
            slow_headers(plan.port, tls, plan.slow, halt) if "slow" in plan.attacks else _nothing(idle),
            probe_health(plan.port, tls, halt),
        ]
        running = [asyncio.create_task(t) for t in tasks]
        await asyncio.sleep(2)  # the slow connections are open before the honest beats are measured
        started.set()
        while not stop.is_set():
            await asyncio.sleep(0.2)
        halt.set()
        results.put(await asyncio.gather(*running))

    run(main)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000, help="honest clusters")
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of each phase")
    parser.add_argument("--slow", type=int, default=200, help="slow-header connections during the attack")
    parser.add_argument("--connections", type=int, default=64, help="HTTPS connections of the honest generator")
    parser.add_argument("--attacks", default="poison,pile,slow", help="which attackers run (to tell their costs apart)")
    parser.add_argument("--state", type=Path, default=None, help="as bench/fleet.py: reuse an onboarded fleet")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    args = parser.parse_args()

    # Two more clusters than the honest ones: the poisoner and the certificate piler.
    async with onboarded_fleet(args.clusters + 2, args, None) as (server, members, timings):
        honest, poisoner, piler = members[:-2], members[-2], members[-1]
        pid = server.proc.pid  # type: ignore[union-attr]
        requests = await beat_requests(server, honest)

        cpu = cpu_seconds(pid)
        calm = await drive(server.port, server.ca, requests, args.interval, args.duration, args.connections)
        calm_cpu = cpu_seconds(pid) - cpu

        assert piler.identity.issued is not None
        plan = Attack(server.port, server.ca, await poisoner.identity.token(), piler.name,
                      piler.identity.issued.secret_data(), args.slow, tuple(args.attacks.split(",")))  # fmt: skip
        spawn = multiprocessing.get_context("spawn")
        started, stop, results = spawn.Event(), spawn.Event(), spawn.Queue()
        attacker = spawn.Process(target=attack, args=(plan, started, stop, results))
        attacker.start()
        await asyncio.to_thread(started.wait, 60)
        cpu = cpu_seconds(pid)
        attacked = await drive(server.port, server.ca, requests, args.interval, args.duration, args.connections)
        attacked_cpu = cpu_seconds(pid) - cpu
        stop.set()
        poisoned, piled, slow, health = await asyncio.to_thread(results.get, True, 60)
        await asyncio.to_thread(attacker.join, 30)

        calm_figures, attacked_figures = calm.figures(), attacked.figures()
        reachable = sorted(h for h in health if h != float("inf"))
        p99_ratio = round(attacked_figures["p99_ms"] / calm_figures["p99_ms"], 2) if calm_figures["p99_ms"] else None
        result: dict[str, Any] = {
            "machine": platform.processor() or platform.machine(),
            "cpus": os.cpu_count(),
            "load_avg_1m": round(os.getloadavg()[0], 2),
            "clusters": args.clusters,
            "interval_seconds": args.interval,
            "duration_seconds": args.duration,
            "attacks": args.attacks,
            **timings,
            "undisturbed": {**calm_figures, "server_cpu_percent": round(calm_cpu / calm.wall * 100, 1)},
            "under_attack": {**attacked_figures, "server_cpu_percent": round(attacked_cpu / attacked.wall * 100, 1)},
            "p99_ratio": p99_ratio,
            "poisoned_beats": {str(k): v for k, v in sorted(poisoned.items())},
            "certificate_requests": {str(k): v for k, v in sorted(piled.items())},
            "slow_header_connections": dict(sorted(slow.items())),
            "healthz": {
                "probes": len(health),
                "unreachable": len(health) - len(reachable),
                "p99_ms": percentile(reachable, 99),
                "max_ms": round(reachable[-1] * 1000, 1) if reachable else None,
            },
            "server_memory_mb": {k: round(v, 1) for k, v in memory_mb(pid).items()},
        }
        print(json.dumps(result, indent=2), flush=True)
        if args.output:
            args.output.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main)
