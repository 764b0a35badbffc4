"""Activity log benchmark: the list API over a store holding many events (SQLite, the real server process).

Seeds ``--events`` events straight into the store (spread over ``--groups`` groups of ``--resources`` resources
each, one day back to now, in the admin's name), starts nothing else, and times sequential requests at the client
over loopback HTTPS:

- a resource's first page (``resourceUri eq``: what the portal's cluster page asks for);
- a group's first page (``resourceGroupName eq``) and its next page (``nextLink``);
- the subscription's first page (no scope clause);
- the subscription's first page for a Reader of one group (events checked one by one against their RBAC).

Run from the repository root:

    .venv/bin/python -m bench.activity_log [--events 100000] [--groups 20] [--resources 50] [--requests 200]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import insert
from tests.api.helpers import READER, make_principal
from tests.storage.stored import database_url
from tests.support.processes import ServerProcess, free_port

from halyard.controlplane.activity.events import Actor, event
from halyard.store import Database
from halyard.store.models import ActivityEvent

API = {"api-version": "2015-04-01"}


async def seed(server: ServerProcess, events: int, groups: int, resources: int) -> float:
    started = time.perf_counter()
    sub = server.admin["subscription"]
    actor = Actor(server.admin["clientId"], str(uuid.uuid4()), "ServicePrincipal", server.admin["tenant"])
    now = dt.datetime.now(dt.UTC)
    step = dt.timedelta(days=1) / events
    db = Database(database_url(server))
    try:
        rows = []
        for i in range(events):
            rid = (f"/subscriptions/{sub}/resourceGroups/bench-{i % groups}/providers/Microsoft.Kubernetes/"
                   f"connectedClusters/c-{(i // groups) % resources}")  # fmt: skip
            row = event(at=now - i * step, correlation_id=str(uuid.uuid4()), actor=actor, resource_id=rid,
                        operation_name="Microsoft.Kubernetes/connectedClusters/write", http_method="PUT",
                        status=("Started", "Accepted", "Succeeded")[i % 3], status_code=200)  # fmt: skip
            rows.append({c.key: getattr(row, c.key) for c in ActivityEvent.__table__.columns})
        for start in range(0, len(rows), 5000):
            async with db.transaction() as session:
                await session.execute(insert(ActivityEvent), rows[start : start + 5000])
    finally:
        await db.close()
    return time.perf_counter() - started


def timed(client: httpx.Client, url: str, params: dict[str, str] | None, n: int) -> tuple[list[float], dict]:
    times, body = [], {}
    for _ in range(n):
        t = time.perf_counter()
        r = client.get(url, params=params)
        times.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
        body = r.json()
    return times, body


def line(label: str, times: list[float], body: dict) -> str:
    q = statistics.quantiles(times, n=100)
    return f"| {label} | {len(body.get('value', []))} | {statistics.median(times):.1f} | {q[98]:.1f} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=20)
    parser.add_argument("--resources", type=int, default=50)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="halyard-bench-activity-") as tmp:
        server = ServerProcess(Path(tmp) / "data", free_port()).start()
        try:
            seconds = asyncio.run(seed(server, args.events, args.groups, args.resources))
            sub = server.admin["subscription"]
            for g in range(args.groups):  # the groups exist, so a Reader can be given one
                with server.client() as c:
                    c.put(f"/subscriptions/{sub}/resourceGroups/bench-{g}", params={"api-version": "2024-11-01"},
                          json={"location": "eastus"})  # fmt: skip
            reader = make_principal(server, f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
                                    f"/subscriptions/{sub}/resourceGroups/bench-0")  # fmt: skip
            url = f"/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values"
            start = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M:%SZ")
            window = f"eventTimestamp ge '{start}'"
            cluster = (
                f"/subscriptions/{sub}/resourceGroups/bench-3/providers/Microsoft.Kubernetes/connectedClusters/c-7"
            )
            print(f"{args.events} events seeded in {seconds:.1f} s; {args.requests} sequential requests each\n")
            print("| request | events | p50 ms | p99 ms |\n|---|---|---|---|")
            with server.client() as c:
                c.get(url, params={**API, "$filter": window})  # warm
                by_resource = {**API, "$filter": f"{window} and resourceUri eq '{cluster}'"}
                print(line("a resource's first page", *timed(c, url, by_resource, args.requests)))
                by_group = {**API, "$filter": f"{window} and resourceGroupName eq 'bench-3'"}
                times, first = timed(c, url, by_group, args.requests)
                print(line("a group's first page", times, first))
                print(line("a group's next page", *timed(c, first["nextLink"], None, args.requests)))
                print(line("the subscription's first page", *timed(c, url, {**API, "$filter": window}, args.requests)))
            with server.client(server.token(reader.app_id, reader.secret)) as c:
                print(line("the subscription's first page, Reader of 1 group of "
                           f"{args.groups}", *timed(c, url, {**API, "$filter": window}, args.requests)))  # fmt: skip
        finally:
            server.stop()


if __name__ == "__main__":
    main()
