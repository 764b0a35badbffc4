"""ARM CRUD benchmark: connected-cluster PUT and GET against a running control plane with 10,000 clusters stored.

For each backend (SQLite in the data directory; PostgreSQL started here, fsync on) it starts the real server
(``python -m halyard server``: TLS, tokens from its login service), seeds the stored clusters directly into the
database through the store models (one cluster made by the API, cloned), then drives it with concurrent httpx
async clients for a bounded time per phase:

- PUT: create new clusters (each also queues the async provisioning operation the worker completes);
- drain: wait for the worker to finish the queued operations (its completion rate is reported);
- GET: read random stored clusters.

Beside it, the physical reference on the same database with the same durability: plain INSERTs of a row of the same
size, one commit per row (SQLite WAL, synchronous=FULL; PostgreSQL synchronous_commit=on), from 1 writer and from as
many writers as API clients, and primary-key SELECTs. Run from the repository root:

    .venv/bin/python -m bench.arm_crud [--backend sqlite|postgres|both] [--stored 10000] [--clients 16] [--duration 10]

``--breakdown`` instead runs the app in-process and shows where a GET's CPU goes (each per-request lookup replaced
by its result in turn) and how many SQL statements a GET, a PUT and its provisioning operation execute.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import sqlite3
import tempfile
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from sqlalchemy import event, func, insert, select
from tests.storage.arm import CLUSTERS, agent_public_key, cluster_body, cluster_path, put_group, wait_async_operation
from tests.storage.stored import database_url
from tests.support.inprocess import sign_in_admin
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

from halyard.controlplane.app import create_app
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Operation, Resource

GROUP = "bench"
SEEDED = "seed-{:05d}"
RAW_TABLE = "bench_raw_insert"


# ---- measurement -----------------------------------------------------------------------------------------------


@dataclass
class Result:
    """One measured phase: how many requests, how long, their latencies, and where the CPU went."""

    name: str
    latencies: list[float]
    seconds: float
    cpu: dict[str, float] = field(default_factory=dict)  # CPU seconds by component during the phase
    reference: float | None = None  # the physical reference rate this phase is compared with

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.seconds

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000


async def drive(
    name: str,
    clients: list[httpx.AsyncClient],
    request: Callable[[httpx.AsyncClient, int], Awaitable[httpx.Response]],
    expect: int,
    duration: float,
    limit: int,
) -> Result:
    """Each client sends one request at a time until ``duration`` passes or ``limit`` requests were sent."""
    latencies: list[float] = []
    counter = iter(range(limit))
    stop_at = time.perf_counter() + duration

    async def loop(client: httpx.AsyncClient) -> None:
        for i in counter:
            if time.perf_counter() > stop_at:
                return
            started = time.perf_counter()
            response = await request(client, i)
            if response.status_code != expect:
                raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop(c) for c in clients))
    return Result(name, latencies, time.perf_counter() - started)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(parent: int) -> float:
    """CPU time of a process and of its children, live or exited: PostgreSQL's postmaster and its backends."""
    fields = Path(f"/proc/{parent}/stat").read_text().rsplit(")", 1)[1].split()
    total = sum(int(f) for f in fields[11:15]) / os.sysconf("SC_CLK_TCK")  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue  # a backend that exited while we looked
    return total


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy so far, whoever used it (other load shows up here)."""
    values = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """Where the CPU goes during a phase: the server, this client process, the database server, the machine."""

    server_pid: int
    postmaster_pid: int | None = None

    def sample(self) -> dict[str, float]:
        sample = {
            "server": cpu_seconds(self.server_pid),
            "client": time.process_time(),
            "machine": machine_busy_seconds(),
        }
        if self.postmaster_pid is not None:
            sample["database"] = children_cpu_seconds(self.postmaster_pid)
        return sample

    async def measure(self, phase: Awaitable[Result]) -> Result:
        before = self.sample()
        result = await phase
        after = self.sample()
        result.cpu = {k: after[k] - before[k] for k in before}
        return result


# ---- the server under test -------------------------------------------------------------------------------------


async def seed(server: ServerProcess, stored: int, key: str) -> float:
    """One cluster through the API, cloned ``stored - 1`` times into the database; returns the seconds it took."""
    started = time.perf_counter()
    sub = server.admin["subscription"]
    with server.client() as client:
        put_group(client, sub, GROUP)
        response = client.put(
            cluster_path(sub, GROUP, SEEDED.format(0)), params={"api-version": CLUSTERS}, json=cluster_body(key)
        )
        assert wait_async_operation(client, response)["status"] == "Succeeded"
    db = Database(database_url(server))
    try:
        async with db.session() as session:
            template = await session.scalar(select(Resource).where(Resource.name == SEEDED.format(0)))
        assert template is not None
        columns = {c.key: getattr(template, c.key) for c in Resource.__table__.columns}
        rows = []
        for i in range(1, stored):
            name = SEEDED.format(i)
            resource_id = template.id.rsplit("/", 1)[0] + "/" + name
            rows.append({**columns, "id": resource_id, "id_key": resource_id.lower(), "name": name})
        for start in range(0, len(rows), 2000):
            async with db.transaction() as session:
                await session.execute(insert(Resource), rows[start : start + 2000])
    finally:
        await db.close()
    return time.perf_counter() - started


async def pending_operations(url: str) -> int:
    db = Database(url)
    try:
        async with db.session() as session:
            count = await session.scalar(
                select(func.count()).select_from(Operation).where(Operation.status == "InProgress")
            )
            return int(count or 0)
    finally:
        await db.close()


async def postgres_sessions(url: str) -> int:
    """Connections PostgreSQL has accepted into the database so far (each costs a fork and an authentication)."""
    conn = await asyncpg.connect(url.replace("postgresql+asyncpg", "postgresql"))
    try:
        return int(await conn.fetchval("SELECT sessions FROM pg_stat_database WHERE datname = current_database()"))
    finally:
        await conn.close()


async def bench_api(
    server: ServerProcess, meter: CpuMeter, args: argparse.Namespace
) -> tuple[list[Result], dict[str, float]]:
    key = agent_public_key()
    notes = {"seed_seconds": await seed(server, args.stored, key)}
    sub = server.admin["subscription"]
    token = server.token()
    clients = [
        httpx.AsyncClient(
            base_url=server.url,
            verify=server.ca,
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
            limits=httpx.Limits(max_connections=1),
        )
        for _ in range(args.clients)
    ]
    v = {"api-version": CLUSTERS}
    body = cluster_body(key, {"bench": "put"})
    results = []
    try:
        sessions = await postgres_sessions(server.database_url) if server.database_url else None
        # Warm up connections (TLS handshakes) and the server's code paths before measuring.
        await drive("warm-up", clients, lambda c, i: c.get(cluster_path(sub, GROUP, SEEDED.format(i)), params=v),
                    200, 2, 4 * args.clients)  # fmt: skip

        put = await meter.measure(
            drive(
                "PUT (create)",
                clients,
                lambda c, i: c.put(cluster_path(sub, GROUP, f"put-{i:06d}"), params=v, json=body),
                201,
                args.duration,
                args.max_requests,
            )
        )
        results.append(put)

        queued, started = await pending_operations(database_url(server)), time.perf_counter()
        while await pending_operations(database_url(server)):
            await asyncio.sleep(0.2)
        drained = time.perf_counter() - started
        notes["queued_after_put"] = queued
        notes["drain_seconds"] = drained
        notes["stored_at_get"] = args.stored + len(put.latencies)
        # Every PUT queued one operation; the worker ran them from the start of the PUT phase until drained.
        notes["worker_ops_per_second"] = len(put.latencies) / (put.seconds + drained)

        get = await meter.measure(
            drive(
                "GET",
                clients,
                lambda c, i: c.get(cluster_path(sub, GROUP, SEEDED.format(random.randrange(args.stored))), params=v),
                200,
                args.duration,
                args.max_requests,
            )
        )
        results.append(get)
        if sessions is not None and server.database_url:
            # Minus this count's own connections (one per check, about five a second while draining).
            notes["database_sessions"] = await postgres_sessions(server.database_url) - sessions
    finally:
        await asyncio.gather(*(c.aclose() for c in clients))
    return results, notes


# ---- the physical reference ------------------------------------------------------------------------------------


def row_payload() -> str:
    """A JSON document the size of a stored connected cluster's columns."""
    return json.dumps({**cluster_body(agent_public_key()), "id": cluster_path("0" * 36, GROUP, "x" * 12), "n": 0})


def raw_sqlite(path: Path, clients: int, duration: float, limit: int) -> list[Result]:
    """On the server's database file: INSERTs one row per commit (WAL, synchronous=FULL) from 1 writer and from
    ``clients`` threads, then primary-key SELECTs from one connection (SQLite reads in-process: no round trip)."""
    payload = row_payload()
    counter = iter(range(10**9))

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level=None, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        return conn

    def inserts(writers: int) -> Result:
        latencies: list[float] = []
        stop_at = time.perf_counter() + duration
        budget = iter(range(limit))

        def writer() -> None:
            conn = connect()
            for _ in budget:
                if time.perf_counter() > stop_at:
                    break
                started = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute(f"INSERT INTO {RAW_TABLE} VALUES (?, ?)", (f"row-{next(counter):07d}", payload))
                conn.execute("COMMIT")
                latencies.append(time.perf_counter() - started)
            conn.close()

        started = time.perf_counter()
        with ThreadPoolExecutor(writers) as pool:
            for future in [pool.submit(writer) for _ in range(writers)]:
                future.result()
        return Result(f"INSERT, {writers} writer(s)", latencies, time.perf_counter() - started)

    conn = connect()
    conn.execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
    conn.execute(f"CREATE TABLE {RAW_TABLE} (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
    try:
        results = [inserts(1), inserts(clients)]
        rows = conn.execute(f"SELECT count(*) FROM {RAW_TABLE}").fetchone()[0]
        reads: list[float] = []
        started = time.perf_counter()
        for _ in range(limit):
            if time.perf_counter() - started > duration:
                break
            t = time.perf_counter()
            conn.execute(
                f"SELECT body FROM {RAW_TABLE} WHERE id = ?", (f"row-{random.randrange(rows):07d}",)
            ).fetchone()
            reads.append(time.perf_counter() - t)
        results.append(Result("SELECT by key, 1 reader", reads, time.perf_counter() - started))
        return results
    finally:
        conn.execute(f"DROP TABLE {RAW_TABLE}")
        conn.close()


async def raw_postgres(dsn: str, clients: int, duration: float, limit: int) -> list[Result]:
    """On the server's database: INSERTs one row per commit (autocommit) from 1 connection and from ``clients``, then
    primary-key SELECTs from ``clients`` connections."""
    payload = row_payload()
    counter = iter(range(10**9))
    conns = [await asyncpg.connect(dsn) for _ in range(clients)]

    async def timed(name: str, n: int, action: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Result:
        latencies: list[float] = []
        stop_at = time.perf_counter() + duration
        budget = iter(range(limit))

        async def loop(conn: asyncpg.Connection) -> None:
            for _ in budget:
                if time.perf_counter() > stop_at:
                    return
                started = time.perf_counter()
                await action(conn)
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(loop(c) for c in conns[:n]))
        return Result(name, latencies, time.perf_counter() - started)

    insert_sql = f"INSERT INTO {RAW_TABLE} VALUES ($1, $2)"
    select_sql = f"SELECT body FROM {RAW_TABLE} WHERE id = $1"
    try:
        await conns[0].execute(f"DROP TABLE IF EXISTS {RAW_TABLE}")
        await conns[0].execute(f"CREATE TABLE {RAW_TABLE} (id TEXT PRIMARY KEY, body TEXT NOT NULL)")
        results = [
            await timed(
                f"INSERT, {n} writer(s)", n, lambda c: c.execute(insert_sql, f"row-{next(counter):07d}", payload)
            )
            for n in (1, clients)
        ]
        rows = sum(len(r.latencies) for r in results)
        results.append(
            await timed(f"SELECT by key, {clients} readers", clients,
                        lambda c: c.fetchval(select_sql, f"row-{random.randrange(rows):07d}"))
        )  # fmt: skip
        await conns[0].execute(f"DROP TABLE {RAW_TABLE}")
        return results
    finally:
        await asyncio.gather(*(c.close() for c in conns))


# ---- report ----------------------------------------------------------------------------------------------------


def machine() -> dict[str, str]:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    mem_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in line)
    return {
        "cpu": cpu,
        "cores": str(os.cpu_count()),
        "memory": f"{mem_kb / 1024 / 1024:.1f} GiB",
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
    }


def table(rows: list[list[str]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def report(runs: dict[str, tuple[list[Result], list[Result], dict[str, float]]], args: argparse.Namespace) -> str:
    header = ["backend", "operation", "requests", "req/s", "p50 ms", "p99 ms", "CPU ms/req server/client/db",
              "cores busy (others)", "raw ref/s", "ratio"]  # fmt: skip
    api_rows, raw_rows = [header], [["backend", "reference", "operations", "ops/s", "p50 ms", "p99 ms"]]
    notes = []
    for backend, (api, raw, extra) in runs.items():
        for r in api:
            per_request = [
                r.cpu[k] / len(r.latencies) * 1000 if k in r.cpu else None for k in ("server", "client", "database")
            ]
            cpu = " / ".join(f"{v:.2f}" if v is not None else "-" for v in per_request)
            ours = sum(v for k, v in r.cpu.items() if k != "machine")
            busy = f"{r.cpu['machine'] / r.seconds:.2f} ({(r.cpu['machine'] - ours) / r.seconds:.2f})"
            ref = f"{r.reference:.0f}" if r.reference else "-"
            ratio = f"{r.rate / r.reference:.3f}" if r.reference else "-"
            api_rows.append([backend, r.name, str(len(r.latencies)), f"{r.rate:.0f}", f"{r.percentile(50):.1f}",
                             f"{r.percentile(99):.1f}", cpu, busy, ref, ratio])  # fmt: skip
        for r in raw:
            raw_rows.append([backend, r.name, str(len(r.latencies)), f"{r.rate:.0f}", f"{r.percentile(50):.2f}",
                             f"{r.percentile(99):.2f}"])  # fmt: skip
        notes.append(
            f"{backend}: seeded {args.stored} clusters in {extra['seed_seconds']:.1f}s; after the PUT phase "
            f"{extra['queued_after_put']:.0f} provisioning operations were still queued and the worker drained them "
            f"in {extra['drain_seconds']:.1f}s (the worker completed {extra['worker_ops_per_second']:.0f} operations/s); "
            f"GETs ran with {extra['stored_at_get']:.0f} clusters stored."
            + (
                f" PostgreSQL accepted {extra['database_sessions']:.0f} new connections during the run."
                if "database_sessions" in extra
                else ""
            )
        )
    info = machine()
    return "\n".join(
        [
            f"machine: {info['cpu']}, {info['cores']} cores, {info['memory']}, Python {info['python']}, "
            f"SQLite {info['sqlite']}, Linux {info['kernel']}",
            f"run: {args.clients} concurrent clients, {args.duration:.0f}s per phase (at most {args.max_requests} "
            f"requests), client and server on the same machine of {os.cpu_count()} cores; 'others' is CPU used by "
            "processes other than this benchmark, the server and PostgreSQL",
            "",
            table(api_rows),
            "",
            table(raw_rows),
            "",
            *notes,
        ]
    )


async def run_backend(backend: str, args: argparse.Namespace, workdir: Path) -> tuple[list[Result], list[Result], dict]:
    pg: PostgresServer | None = None
    url = None
    if backend == "postgres":
        pg = PostgresServer().start()
        url = pg.create_database("halyard")
    server = ServerProcess(workdir / backend / "data", free_port(), database_url=url)
    try:
        await asyncio.to_thread(server.start, 60)
        assert server.proc is not None
        meter = CpuMeter(server.proc.pid, pg.pid if pg else None)
        api, notes = await bench_api(server, meter, args)
        server.stop()
        if pg is not None and url is not None:
            dsn = url.replace("postgresql+asyncpg", "postgresql")
            raw = await raw_postgres(dsn, args.clients, args.duration, args.max_requests)
        else:
            path = server.data_dir / "halyard.db"
            raw = await asyncio.to_thread(raw_sqlite, path, args.clients, args.duration, args.max_requests)
        inserts = [r for r in raw if r.name.startswith("INSERT")]
        selects = [r for r in raw if r.name.startswith("SELECT")]
        api[0].reference = max(r.rate for r in inserts)
        api[1].reference = max(r.rate for r in selects)
        return api, raw, notes
    finally:
        server.stop()
        if pg is not None:
            pg.stop()


# ---- where a request's CPU goes (--breakdown) -------------------------------------------------------------------


async def breakdown(backend: str, args: argparse.Namespace, workdir: Path) -> str:
    """The app in-process (no TLS, no network): CPU per GET as each per-request lookup is replaced by its result,
    and the SQL statements a GET, a PUT and the PUT's provisioning operation execute."""
    pg = PostgresServer().start() if backend == "postgres" else None
    try:
        settings = Settings(
            data_dir=workdir / f"breakdown-{backend}",
            insecure_http=True,
            database_url=pg.create_database("breakdown") if pg else None,
        )
        db = Database(settings.database)
        statements: list[str] = []
        event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        app = create_app(settings, db=db)
        cp = app.state.plane
        async with (
            app.router.lifespan_context(app),
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=settings.base_url, timeout=60) as client,
        ):
            admin = await sign_in_admin(client, settings.data_dir)
            sub, key, v = admin["subscription"], agent_public_key(), {"api-version": CLUSTERS}
            await client.put(f"/subscriptions/{sub}/resourceGroups/{GROUP}", params={"api-version": "2024-11-01"},
                             json={"location": "eastus"})  # fmt: skip

            async def put_and_wait(name: str) -> tuple[int, int]:
                statements.clear()
                response = await client.put(cluster_path(sub, GROUP, name), params=v, json=cluster_body(key))
                assert response.status_code == 201, response.text
                in_request = len(statements)
                while await pending_operations(settings.database):  # through its own engine: not counted
                    await asyncio.sleep(0.05)
                return in_request, len(statements) - in_request

            await put_and_wait("warm")
            put_statements, worker_statements = await put_and_wait("counted")
            path = cluster_path(sub, GROUP, "counted")

            async def cpu_per_get(n: int = 1000, repeats: int = 3) -> tuple[float, int]:
                """The least CPU per GET over a few rounds: other load on the machine only ever adds to it."""

                async def loop(k: int) -> None:
                    for _ in range(k):
                        assert (await client.get(path, params=v)).status_code == 200

                await loop(50)
                statements.clear()
                await loop(1)
                count = len(statements)
                rounds = []
                for _ in range(repeats):
                    started = time.process_time()
                    await asyncio.gather(*(loop(n // 8) for _ in range(8)))
                    rounds.append((time.process_time() - started) / n * 1000)
                return min(rounds), count

            caller = await cp.tokens.verify(client.headers["Authorization"][7:], audience=settings.audience)
            authorized = await cp.access.resolve(caller)
            group = await cp.directory.group(sub, GROUP)
            subscription = await cp.directory.subscription(sub)
            rows = [["GET as served", *(await cpu_per_get())]]
            cp.tokens.verify = _returning(caller)
            rows.append(["… token signature check skipped", *(await cpu_per_get())])
            cp.access.resolve = _returning(authorized)
            rows.append(["… and RBAC assignments not read", *(await cpu_per_get())])
            cp.directory.group, cp.directory.subscription = _returning(group), _returning(subscription)
            rows.append(["… and subscription/group not read", *(await cpu_per_get())])
            floor = []
            for _ in range(3):
                started = time.process_time()
                for _ in range(1000):
                    await client.get("/healthz")
                floor.append((time.process_time() - started) / 1000 * 1000)
            rows.append(["/healthz (framework and client floor)", min(floor), 0])
    finally:
        if pg is not None:
            pg.stop()
    table_rows = [["GET variant", "CPU ms/req", "saved ms", "SQL statements"]]
    previous = None
    for label, cpu, count in rows:
        saved = f"{previous - cpu:.2f}" if previous is not None else "-"
        table_rows.append([label, f"{cpu:.2f}", saved, str(count)])
        previous = cpu
    return "\n".join(
        [
            f"{backend}: CPU per GET in-process (client included; least of 3 rounds of 1,000), each line cumulative",
            table(table_rows),
            f"{backend}: a PUT executes {put_statements} SQL statements in the request and its provisioning operation "
            f"{worker_statements} more in the worker (including its idle polls for due operations)",
        ]
    )


def _returning(value: Any) -> Callable[..., Awaitable[Any]]:
    async def lookup(*_args: Any, **_kwargs: Any) -> Any:
        return value

    return lookup


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--stored", type=int, default=10_000, help="connected clusters stored before measuring")
    parser.add_argument("--clients", type=int, default=16, help="concurrent API clients (and raw writers)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    parser.add_argument("--max-requests", type=int, default=20_000, help="cap on requests per phase")
    parser.add_argument("--breakdown", action="store_true", help="where a GET's CPU goes, in-process, instead")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]
    runs = {}
    with tempfile.TemporaryDirectory(prefix="halyard-bench-") as workdir:
        if args.breakdown:
            for backend in backends:
                print(await breakdown(backend, args, Path(workdir)) + "\n", flush=True)
            return
        for backend in backends:
            print(f"running {backend} ...", flush=True)
            runs[backend] = await run_backend(backend, args, Path(workdir))
    print(report(runs, args))


if __name__ == "__main__":
    asyncio.run(main())
