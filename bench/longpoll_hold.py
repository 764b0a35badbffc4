"""Held long polls: what each costs the server in memory while it waits, what a renewal costs in CPU, and how long
the server takes to stop with thousands held (decision 009).

    .venv/bin/python -m bench.longpoll_hold [--clusters 1000] [--polls 3] [--state DIR] [--tracemalloc]

The fleet is ``bench/fleet.py``'s (``--state`` reuses a saved one). Every cluster polls once (its version known),
then, on raw TLS connections (the generator's cost kept out of the way), ``--polls`` connections per cluster are
opened, each renews once at once (``wait=0``: 304) and idles kept alive (memory per connection: TLS and the HTTP
protocol), then each sends a long poll at that version
with ``If-None-Match`` (memory per held poll, beyond its connection), the server's CPU is read over a quiet
``--quiet`` seconds, a burst of renewals answered at once (``wait=0``) is timed with ``If-None-Match`` (304, no
read) and without (the whole configuration, read), and the server is sent SIGTERM with every poll held: the seconds
to its exit, and how many polls were answered. ``--trim`` reads RSS again after glibc's ``malloc_trim``. ``--tracemalloc`` runs the server under ``bench/traced_server.py``
and prints the allocation sites and object types that grew per held poll (tracemalloc sees Python's allocators,
not OpenSSL's nor libuv's: the rest of RSS is theirs).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import ssl
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import tests.support.processes as processes
from bench.fleet import Member, bounded, cpu_seconds, memory_mb, onboarded_fleet, run
from bench.tunnel import read_reply

POLL = "/dp/v1/configurations"


class Held:
    """One raw TLS connection to the server: a poll written on it, its answer read later."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, request: bytes) -> None:
        self.writer.write(request)
        await self.writer.drain()

    async def answer(self) -> int:
        return await read_reply(self.reader)


def poll_request(host: str, token: str, since: str, wait: float, etag: bool) -> bytes:
    match = f'If-None-Match: "{since}"\r\n' if etag else ""
    return (
        f"GET {POLL}?since={since}&wait={wait} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {token}\r\n{match}\r\n"
    ).encode()


async def dump(pid: int, trace_dir: Path | None, name: str) -> dict[str, Any] | None:
    """Ask the traced server for its allocations now (bench/traced_server.py)."""
    if trace_dir is None:
        return None
    before = set(trace_dir.iterdir())
    os.kill(pid, signal.SIGUSR1)
    for _ in range(600):
        await asyncio.sleep(0.1)
        new = set(trace_dir.iterdir()) - before
        if new:
            path = new.pop()
            await asyncio.sleep(0.5)  # written in one call; let it finish
            data: dict[str, Any] = json.loads(path.read_text())
            path.rename(trace_dir / f"{name}.json")
            return data
    raise RuntimeError("the traced server wrote no snapshot")


def grew(before: dict[str, Any], after: dict[str, Any], per: int, top: int = 15) -> dict[str, Any]:
    lines = {k: after["lines"][k][0] - before["lines"].get(k, [0, 0])[0] for k in after["lines"]}
    types = {k: after["types"][k] - before["types"].get(k, 0) for k in after["types"]}
    return {
        "traced_bytes_per": round((after["traced"][0] - before["traced"][0]) / per),
        "sites_bytes_per": {k: round(v / per) for k, v in sorted(lines.items(), key=lambda kv: -kv[1])[:top]},
        "objects_per": {k: round(v / per, 2) for k, v in sorted(types.items(), key=lambda kv: -kv[1])[:top] if v > 0},
    }


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    hooked = args.tracemalloc or args.trim
    trace_dir = Path(tempfile.mkdtemp(prefix=f"halyard-trace-{os.getpid()}-")) if hooked else None
    if trace_dir is not None:
        processes.HALYARD = [sys.executable, "-m", "bench.traced_server"]
        os.environ["HALYARD_BENCH_TRACE"] = "1" if args.tracemalloc else "0"
        os.environ["HALYARD_BENCH_TRACE_DIR"] = str(trace_dir)
    result: dict[str, Any] = {"clusters": args.clusters, "polls_per_cluster": args.polls}
    async with onboarded_fleet(args.clusters, args, None) as (server, members, _timings):
        assert server.proc is not None
        pid = server.proc.pid
        host = f"127.0.0.1:{server.port}"
        tls = ssl.create_default_context(cafile=server.ca)
        tokens = {m.name: await m.identity.token() for m in members}
        admin = server.token()

        async def first(member: Member) -> str:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port, ssl=tls)
            writer.write(f"GET {POLL}?wait=0 HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer "
                         f"{tokens[member.name]}\r\nConnection: close\r\n\r\n".encode())  # fmt: skip
            body = await reader.read()
            writer.close()
            return str(json.loads(body.split(b"\r\n\r\n", 1)[1])["version"])

        versions = dict(zip([m.name for m in members], await bounded(members, first, 32), strict=True))
        await asyncio.sleep(2)
        base = await dump(pid, trace_dir, "base")
        rss = {"polled_once": memory_mb(pid)["VmRSS"]}

        plan = [m for m in members for _ in range(args.polls)]

        async def open_one(member: Member) -> Held:
            # One renewal answered at once (304) first: the connection then idles as an agent's kept-alive one
            # (a connection that never sent a request is closed after the header deadline, 10 s).
            connection = Held(*await asyncio.open_connection("127.0.0.1", server.port, ssl=tls))
            await connection.ask(poll_request(host, tokens[member.name], versions[member.name], 0, True))
            await connection.answer()
            return connection

        held: list[Held] = await bounded(plan, open_one, 32)
        await asyncio.sleep(2)
        connected = await dump(pid, trace_dir, "connected")
        rss["connections_open"] = memory_mb(pid)["VmRSS"]
        for connection, member in zip(held, plan, strict=True):
            await connection.ask(poll_request(host, tokens[member.name], versions[member.name], 3600, True))
        waiting = 0
        for _ in range(600):  # until every poll is held (the server's metric)
            waiting = await waiting_polls(server, admin)
            if waiting >= len(plan):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(2)
        polls = await dump(pid, trace_dir, "held")
        rss["polls_held"] = memory_mb(pid)["VmRSS"]
        if args.trim:  # what glibc held free (fragmentation), returned: the rest is live
            os.kill(pid, signal.SIGUSR2)
            await asyncio.sleep(2)
            rss["polls_held_after_malloc_trim"] = memory_mb(pid)["VmRSS"]
        count = len(plan)
        result.update(
            held=waiting,
            rss_mb=rss,
            kb_per_connection=round((rss["connections_open"] - rss["polled_once"]) * 1024 / count, 1),
            kb_per_poll_beyond_connection=round((rss["polls_held"] - rss["connections_open"]) * 1024 / count, 1),
        )
        if base and connected and polls:
            result["gc"] = {
                name: {"tracked_objects": d["tracked_objects"], "full_collection_ms": d["full_collection_ms"]}
                for name, d in (("polled_once", base), ("connections_open", connected), ("polls_held", polls))
            }
        if base and connected and polls and args.tracemalloc:
            result["tracemalloc_connection"] = grew(base, connected, count)
            result["tracemalloc_poll"] = grew(connected, polls, count)
        cpu = cpu_seconds(pid)
        await asyncio.sleep(args.quiet)
        result["idle_cpu_percent_while_held"] = round((cpu_seconds(pid) - cpu) / args.quiet * 100, 2)
        result["renewal_cpu_ms"] = {
            "if_none_match_304": await renewals(server, pid, members, tokens, versions, tls, etag=True),
            "no_etag_200_read": await renewals(server, pid, members, tokens, versions, tls, etag=False),
        }
        started = time.monotonic()
        server.proc.send_signal(signal.SIGTERM)
        answers = await asyncio.gather(*(asyncio.wait_for(c.answer(), 60) for c in held), return_exceptions=True)
        answered = time.monotonic() - started
        for connection in held:
            connection.writer.transport.abort()  # a client gone: the server need not wait for its close_notify
        await asyncio.get_running_loop().run_in_executor(None, server.proc.wait, 120)
        result["stop"] = {
            "polls_held": count,
            "all_answered_seconds": round(answered, 2),
            "exit_seconds": round(time.monotonic() - started, 2),
            "answers": {str(k): answers.count(k) for k in set(a for a in answers if isinstance(a, int))},
            "unanswered": sum(1 for a in answers if not isinstance(a, int)),
        }
    return result


async def renewals(
    server: processes.ServerProcess,
    pid: int,
    members: list[Member],
    tokens: dict[str, str],
    versions: dict[str, str],
    tls: ssl.SSLContext,
    *,
    etag: bool,
) -> float:
    """Server CPU (ms) per renewal at the known version answered at once (``wait=0``), on kept-alive connections:
    one per cluster, 16 at a time."""
    host = f"127.0.0.1:{server.port}"
    sample = members[:500]
    connections = [Held(*await asyncio.open_connection("127.0.0.1", server.port, ssl=tls)) for _ in range(16)]
    queue = list(sample)
    cpu = cpu_seconds(pid)

    async def worker(connection: Held) -> None:
        while queue:
            member = queue.pop()
            await connection.ask(poll_request(host, tokens[member.name], versions[member.name], 0, etag))
            await connection.answer()

    await asyncio.gather(*(worker(c) for c in connections))
    spent = cpu_seconds(pid) - cpu
    for connection in connections:
        connection.writer.close()
    return round(spent / len(sample) * 1000, 3)


async def waiting_polls(server: processes.ServerProcess, admin: str) -> int:
    import httpx

    async with httpx.AsyncClient(verify=server.ca, timeout=60) as http:
        text = (await http.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {admin}"})).text
    for line in text.splitlines():
        if line.startswith("halyard_configuration_polls_waiting "):
            return int(float(line.split()[1]))
    return 0


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clusters", type=int, default=1000)
    parser.add_argument("--polls", type=int, default=3, help="held polls per cluster (the server allows 4)")
    parser.add_argument("--quiet", type=float, default=20.0, help="seconds the server's idle CPU is read over")
    parser.add_argument("--state", type=Path, default=None, help="reuse onboarded fleets here (bench/fleet.py's)")
    parser.add_argument("--tracemalloc", action="store_true", help="where the memory goes (slower server)")
    parser.add_argument("--trim", action="store_true", help="also RSS after glibc's malloc_trim (fragmentation)")
    args = parser.parse_args()
    args.connections = 64
    os.environ["HALYARD_CONNECTIONS_PER_ADDRESS"] = "0"
    os.environ["HALYARD_CONNECTION_LIMITS_EXEMPT"] = "127.0.0.0/8"
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 65536), hard))
    try:
        print(json.dumps(await measure(args), indent=1), flush=True)
    finally:
        for leftover in Path(tempfile.gettempdir()).glob(f"halyard-trace-{os.getpid()}-*"):
            shutil.rmtree(leftover, ignore_errors=True)


if __name__ == "__main__":
    run(main)
