"""Fleet benchmark: many simulated clusters heartbeating to one control plane, speaking the real agent protocol.

For each fleet size it starts a fresh ``halyard server`` (SQLite, or PostgreSQL started here), creates the clusters
through the management API, onboards every one the way identity-operator does (its own onboarding key, a proof of
possession to ``his``, a cluster certificate, a client-assertion token from the login service) with the agents' own
code, then lets every cluster heartbeat to ``dp`` at the interval from a random phase, all from one asyncio loop over
a fixed set of keep-alive HTTPS connections. It reports heartbeat p50/p99 latency as the agents see it, the server's
own latency histogram, and the server's CPU and memory.

    .venv/bin/python -m bench.fleet [--clusters 100 1000 10000] [--interval 30] [--duration 90] [--backend sqlite]
                                    [--state DIR]

``--state DIR`` keeps each onboarded SQLite fleet (the server's data directory and every cluster's certificate) and
reuses it on the next run: setting up 10,000 clusters takes about seven minutes, the measurement 90 s.

Latency is measured in the load generator, which shares the machine's cores with the server. The generator writes
pre-encoded requests on raw keep-alive connections (an HTTP library costs it more CPU than the server spends per
beat), and ``generator_lag_p99_ms`` shows how late it got to due beats: when that is large, the generator, not the
server, was the limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import platform
import random
import shutil
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.controlplane import send
from halyard.agent.identity import IdentityOperator, Issued
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import DP_HEARTBEAT_PATH, EndpointMap, Heartbeat
from halyard.core.clock import SystemClock

API_VERSION = "2026-05-01"
GROUP = "fleet"
SETUP_CONCURRENCY = 48


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
        config = ClusterConfig(rid, endpoints, ca, key)
        identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
        identity.issued = await identity.request_certificate(None)
        identity.ready.set()
        await identity.token()
        return Member(rid, identity)

    started = time.perf_counter()
    members = await bounded(created, certify, SETUP_CONCURRENCY)
    timings["certificate_and_token_seconds"] = time.perf_counter() - started
    return members, timings


class KeepAlive:
    """One HTTP/1.1 keep-alive connection over TLS that sends pre-encoded requests and reads just the status line,
    the headers and the body: a tenth of an HTTP library's CPU per request, so the generator measures the server
    rather than itself. It reconnects (and the caller is told, so it can count it) when the server closed it."""

    def __init__(self, host: str, port: int, tls: ssl.SSLContext) -> None:
        self._host, self._port, self._tls = host, port, tls
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self.reconnects = 0
        self.retry_after: float | None = None  # the last response's Retry-After (seconds), if it had one

    async def _open(self) -> None:
        self._reader, self._writer = await asyncio.open_connection(self._host, self._port, ssl=self._tls)

    async def exchange(self, request: bytes) -> int:
        """Send one request, return the response status; one retry on a fresh connection if the idle one died."""
        for attempt in (0, 1):
            if self._writer is None:
                if attempt or self._reader is not None:
                    self.reconnects += 1
                await self._open()
            assert self._reader is not None and self._writer is not None
            try:
                self._writer.write(request)
                head = await self._reader.readuntil(b"\r\n\r\n")
            except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError):
                self.close()
                continue
            status = int(head[9:12])
            length, closing, self.retry_after = 0, False, None
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    closing = True
                elif name == b"retry-after":
                    self.retry_after = float(value)
            await self._reader.readexactly(length)
            if closing:
                self.close()
            return status
        raise ConnectionError("the server closed two connections in a row")

    def close(self) -> None:
        if self._writer is not None:
            self._writer.transport.abort()
        self._writer = None


def heartbeat_request(host: str, path: str, token: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Drive:
    """What the generator saw: latencies of 200 replies, how late it got to due beats, everything else."""

    latencies: list[float]
    lags: list[float]
    statuses: dict[int, int]
    errors: int
    reconnects: int
    wall: float

    def figures(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        return {
            "heartbeats": len(ordered),
            "not_ok": {str(k): v for k, v in self.statuses.items() if k != 200},
            "connection_errors": self.errors,
            "reconnects": self.reconnects,
            "rate_per_second": round(len(ordered) / self.wall, 1),
            "p50_ms": percentile(ordered, 50),
            "p99_ms": percentile(ordered, 99),
            "max_ms": round(ordered[-1] * 1000, 1) if ordered else 0.0,
            "generator_lag_p99_ms": percentile(sorted(self.lags), 99),
        }


def percentile(ordered: list[float], p: float) -> float:
    return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 1) if ordered else 0.0


async def drive(port: int, ca: str, requests: list[bytes], interval: float, duration: float, connections: int) -> Drive:
    """Every request is one cluster's heartbeat, sent every ``interval`` from a random phase for ``duration``."""
    tls = ssl.create_default_context(cafile=ca)
    idle: asyncio.Queue[KeepAlive] = asyncio.Queue()
    pool = [KeepAlive("127.0.0.1", port, tls) for _ in range(connections)]
    for connection in pool:
        idle.put_nowait(connection)
    result = Drive([], [], {}, 0, 0, 0.0)
    stop_at = time.perf_counter() + duration

    async def agent(request: bytes) -> None:
        due = time.perf_counter() + random.uniform(0, interval)
        while True:
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            if time.perf_counter() >= stop_at:
                return
            # Waiting for a free connection counts: an agent waits for its own connection too.
            started = time.perf_counter()
            result.lags.append(started - due)  # how late the generator got to it (its own saturation)
            connection = await idle.get()
            try:
                status = await connection.exchange(request)
                result.statuses[status] = result.statuses.get(status, 0) + 1
                if status == 200:
                    result.latencies.append(time.perf_counter() - started)
            except (OSError, ConnectionError):
                result.errors += 1
            finally:
                idle.put_nowait(connection)
            due += interval

    started = time.perf_counter()
    await asyncio.gather(*(agent(r) for r in requests))
    result.wall = time.perf_counter() - started
    for connection in pool:
        connection.close()
    result.reconnects = sum(c.reconnects for c in pool)
    return result


async def beat_requests(server: ServerProcess, members: list[Member]) -> list[bytes]:
    """Every member's heartbeat, encoded once with its agent token."""
    host = f"127.0.0.1:{server.port}"
    path = f"/dp{DP_HEARTBEAT_PATH}"
    beat = Heartbeat(agentVersion="bench", kubernetesVersion="1.31.2", totalNodeCount=3, totalCoreCount=12,
                     distribution="generic", infrastructure="generic", agentState="Succeeded")  # fmt: skip
    body = beat.model_dump_json(exclude_none=True).encode()
    return [heartbeat_request(host, path, await m.identity.token(), body) for m in members]


async def heartbeat_fleet(server: ServerProcess, members: list[Member], args: argparse.Namespace) -> dict[str, Any]:
    requests = await beat_requests(server, members)
    pid = server.proc.pid  # type: ignore[union-attr]
    histogram_before = await server_histogram(server)
    cpu_before = cpu_seconds(pid)
    seen = await drive(server.port, server.ca, requests, args.interval, args.duration, args.connections)
    cpu = cpu_seconds(pid) - cpu_before
    histogram = subtract(await server_histogram(server), histogram_before)
    figures = {
        **seen.figures(),
        "server_p99_bucket_ms": bucket_quantile(histogram, 0.99),
        "server_cpu_percent": round(cpu / seen.wall * 100, 1),
        "server_cpu_ms_per_beat": round(cpu / max(1, len(seen.latencies)) * 1000, 2),
        "server_memory_mb": {k: round(v, 1) for k, v in memory_mb(pid).items()},
    }
    if args.baseline:
        base = await baseline(server, requests, args)
        figures["baseline"] = base
        if base["p99_ms"]:
            figures["p99_over_baseline"] = round(figures["p99_ms"] / base["p99_ms"], 1)
    return figures


async def baseline(server: ServerProcess, requests: list[bytes], args: argparse.Namespace) -> dict[str, Any]:
    """The same beats, the same generator, the same TLS and HTTP stack, against a fixed-reply responder
    (``bench/responder.py``): the bare transport's latency, run right after the fleet's on the same machine."""
    port = free_port()
    responder = await start_responder(server, port)
    try:
        cpu_before = cpu_seconds(responder.pid)
        seen = await drive(port, server.ca, requests, args.interval, args.duration, args.connections)
        cpu = cpu_seconds(responder.pid) - cpu_before
        return {**seen.figures(), "cpu_ms_per_beat": round(cpu / max(1, len(seen.latencies)) * 1000, 2)}
    finally:
        responder.kill()  # nothing to shut down gracefully: it holds no state
        responder.wait(10)


async def start_responder(server: ServerProcess, port: int) -> subprocess.Popen[bytes]:
    """``bench/responder.py`` on ``port`` with the server's TLS certificate, once it answers."""
    tls = server.data_dir / "tls"
    responder = subprocess.Popen(
        [sys.executable, "-m", "uvicorn", "bench.responder:app", "--loop", "uvloop", "--http", "httptools",
         "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log",
         "--ssl-certfile", str(tls / "server.pem"), "--ssl-keyfile", str(tls / "server.key")],
    )  # fmt: skip
    probe = KeepAlive("127.0.0.1", port, ssl.create_default_context(cafile=server.ca))
    try:
        for _ in range(300):
            try:
                await probe.exchange(b"GET /healthz HTTP/1.1\r\nHost: responder\r\n\r\n")
                return responder
            except OSError:
                await asyncio.sleep(0.1)
    finally:
        probe.close()
    responder.kill()
    raise RuntimeError(f"the responder did not answer on port {port} within 30 s")


async def server_histogram(server: ServerProcess) -> dict[float, float]:
    """The server's own latency histogram of heartbeats (cumulative count per upper bound, seconds)."""
    async with httpx.AsyncClient(verify=server.ca) as http:
        reply = await http.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {server.token()}"})
    reply.raise_for_status()
    counts: dict[float, float] = {}
    for line in reply.text.splitlines():
        if line.startswith("halyard_http_request_seconds_bucket{") and f'route="/dp{DP_HEARTBEAT_PATH}"' in line:
            bound = line.split('le="', 1)[1].split('"', 1)[0]
            counts[float(bound)] = float(line.rsplit(" ", 1)[1])
    return counts


def subtract(after: dict[float, float], before: dict[float, float]) -> dict[float, float]:
    return {bound: count - before.get(bound, 0.0) for bound, count in after.items()}


def bucket_quantile(histogram: dict[float, float], q: float) -> float | None:
    """The upper bound (ms) of the bucket holding the q-quantile: the server's in-app latency, without TLS and
    HTTP parsing, at the histogram's resolution."""
    total = histogram.get(float("inf"), 0.0)
    if not total:
        return None
    for bound in sorted(histogram):
        if histogram[bound] >= q * total:
            return bound * 1000
    return None


@contextlib.asynccontextmanager
async def onboarded_fleet(
    count: int, args: argparse.Namespace, database_url: str | None
) -> AsyncIterator[tuple[ServerProcess, list[Member], dict[str, Any]]]:
    """A running server with ``count`` onboarded clusters, each holding a fresh agent token; with ``args.state``,
    reused from (or saved to) ``args.state/fleet-<count>``. The server is stopped on exit; its log is kept there."""
    with tempfile.TemporaryDirectory(prefix="halyard-fleet-") as tmp:
        data = Path(tmp) / "data"
        saved = args.state / f"fleet-{count}" if args.state and database_url is None else None
        if saved is not None and (saved / "members.json").exists():
            shutil.copytree(saved / "data", data)
        server = ServerProcess(data, free_port(), database_url=database_url).start()
        try:
            limits = httpx.Limits(max_connections=args.connections, max_keepalive_connections=args.connections)
            async with httpx.AsyncClient(verify=server.ca, timeout=60, limits=limits) as http:
                timings: dict[str, Any]
                if saved is not None and (saved / "members.json").exists():
                    members, timings = await reuse(server, http, saved), {"reused": str(saved)}
                else:
                    members, timings = await onboard(server, http, count)
                    if saved is not None:
                        save(server, members, saved)
                        server = ServerProcess(data, server.port, database_url=database_url).start()
                for member in members:
                    await member.identity.token()
            yield server, members, timings
        finally:
            server.stop()
            if saved is not None and server.log_path is not None:
                shutil.copy(server.log_path, saved / "server.log")  # the temporary directory goes with the run


async def run_size(count: int, args: argparse.Namespace, database_url: str | None) -> dict[str, Any]:
    async with onboarded_fleet(count, args, database_url) as (server, members, timings):
        result = await heartbeat_fleet(server, members, args)
        return {"clusters": count, "interval_seconds": args.interval, **timings, **result}


def save(server: ServerProcess, members: list[Member], saved: Path) -> None:
    """Keep the onboarded fleet (the server's data and every cluster's certificate) to skip setup next time. The
    server is stopped first, so its store is consistent on disk."""
    server.stop()
    shutil.rmtree(saved, ignore_errors=True)
    saved.mkdir(parents=True)
    shutil.copytree(server.data_dir, saved / "data")
    issued = [{"name": m.name, "secret": m.identity.issued.secret_data()} for m in members if m.identity.issued]
    (saved / "members.json").write_text(json.dumps(issued))
    os.chmod(saved / "members.json", 0o600)


async def reuse(server: ServerProcess, http: httpx.AsyncClient, saved: Path) -> list[Member]:
    admin = server.admin
    endpoints = EndpointMap.model_validate({**(await send(http, "GET", f"{server.url}/his/v1/endpoints")),
                                            "tenant": admin["tenant"]})  # fmt: skip
    ca = Path(server.ca).read_text()
    members = []
    for entry in json.loads((saved / "members.json").read_text()):
        issued = Issued.from_secret(entry["secret"])
        # The saved fleet's server listened on another port: the token endpoint moves with the server.
        endpoint = urlsplit(issued.response.tokenEndpoint)._replace(netloc=urlsplit(server.url).netloc).geturl()
        issued = replace(issued, response=issued.response.model_copy(update={"tokenEndpoint": endpoint}))
        config = ClusterConfig(entry["name"], endpoints, ca, issued.key)
        identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
        identity.issued = issued
        identity.ready.set()
        members.append(Member(entry["name"], identity))

    async def mint(member: Member) -> None:
        await member.identity.token()

    await bounded(members, mint, SETUP_CONCURRENCY)
    return members


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, nargs="+", default=[100, 1000, 10000])
    parser.add_argument("--interval", type=float, default=30.0)
    parser.add_argument("--duration", type=float, default=90.0)
    parser.add_argument("--connections", type=int, default=64, help="HTTPS connections the generator keeps open")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--output", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument("--baseline", action=argparse.BooleanOptionalAction, default=True,
                        help="also drive the same beats at a fixed-reply responder on the same stack (a ratio)")  # fmt: skip
    parser.add_argument("--state", type=Path, default=None,
                        help="keep each onboarded SQLite fleet here and reuse it on the next run (skips setup)")  # fmt: skip
    args = parser.parse_args()
    pg = PostgresServer().start() if args.backend == "postgres" else None  # in a temporary directory of its own
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


def run(entry: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a benchmark's main on uvloop (as the server runs) when it is installed."""
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(entry())


if __name__ == "__main__":
    run(main)
