"""Desired-configuration delivery: time from an extension PUT to the cluster's waiting long poll answering with it.

The real server(s) as processes: a connected cluster is onboarded (its own key, certificate and agent token, as
identity-operator does), an agent long-polls ``GET /dp/v1/configurations?since=V``, and the PUT of an extension's
new settings is timed from the moment it is sent to the moment the poll returns the new version. ``single``: one
server on SQLite (woken in-process on commit); ``replicas``: two servers on one PostgreSQL, PUT through the first,
poll on the second (woken by NOTIFY). Run from the repository root:

    .venv/bin/python -m bench.config_delivery [--mode single|replicas|both] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group
from tests.storage.replicas import replicas_of
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

EXT_API = {"api-version": "2025-03-01"}


async def _rounds(writer: ServerProcess, reader: ServerProcess, agent: Agent, rounds: int) -> list[float]:
    path = f"{agent.path}/providers/Microsoft.KubernetesConfiguration/extensions/bench"
    token = writer.token()
    latencies = []
    async with (
        httpx.AsyncClient(base_url=writer.url, verify=writer.ca, timeout=60) as arm,
        httpx.AsyncClient(base_url=reader.url, verify=reader.ca, timeout=60) as dp,
    ):
        arm.headers["Authorization"] = f"Bearer {token}"
        since = (await dp.get("/dp/v1/configurations", params={"wait": 0}, headers=agent.headers)).json()["version"]
        for i in range(rounds):
            poll = asyncio.ensure_future(
                dp.get("/dp/v1/configurations", params={"since": since, "wait": 20}, headers=agent.headers)
            )
            await asyncio.sleep(0.05)  # the poll is waiting on the server
            body = {"properties": {"extensionType": "microsoft.flux", "configurationSettings": {"round": str(i)}}}
            start = time.perf_counter()
            r = await arm.put(path, params=EXT_API, json=body)
            assert r.status_code in (200, 201), r.text
            answer = await poll
            latencies.append(time.perf_counter() - start)
            since = answer.json()["version"]
            settings = next(e for e in answer.json()["extensions"] if e["name"] == "bench")["configurationSettings"]
            assert settings == {"round": str(i)}, settings
    return latencies


def _report(label: str, latencies: list[float]) -> None:
    ms = sorted(x * 1000 for x in latencies)
    p99 = ms[min(len(ms) - 1, int(len(ms) * 0.99))]
    print(
        f"{label}: {len(ms)} rounds, PUT→poll answered p50 {statistics.median(ms):.1f} ms, p99 {p99:.1f} ms, "
        f"max {ms[-1]:.1f} ms"
    )


def single(rounds: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        server = ServerProcess(Path(tmp) / "data", free_port()).start()
        try:
            agent = connect(server, make_group(server), "bench")
            _report("single server (SQLite, in-process wake)", asyncio.run(_rounds(server, server, agent, rounds)))
        finally:
            server.stop()


def replicas(rounds: int) -> None:
    pg = PostgresServer().start()
    tmp = Path(tempfile.mkdtemp())
    try:
        a, b = replicas_of(pg.create_database(f"b_{uuid.uuid4().hex[:12]}"), tmp, 2)
        a.start(60)
        shutil.copy(a.data_dir / "admin.json", b.data_dir / "admin.json")
        b.start(60)
        try:
            agent = connect(a, make_group(a), "bench")
            _report("2 replicas (PostgreSQL, PUT on 1, poll on 2)", asyncio.run(_rounds(a, b, agent, rounds)))
        finally:
            b.stop()
            a.stop()
    finally:
        pg.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mode", choices=("single", "replicas", "both"), default="both")
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    if args.mode in ("single", "both"):
        single(args.rounds)
    if args.mode in ("replicas", "both"):
        replicas(args.rounds)


if __name__ == "__main__":
    main()
