"""A fleet listed by connectivity status in the query (`$filter=properties/connectivityStatus eq 'Offline'`): the
same answer as filtering the unfiltered list by the status each cluster shows, page after page, on any threshold.

In-process (ASGI, no TLS): the reports the status is computed from are written straight into the store, at chosen
times, as the heartbeat batch and the identity service write them.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from halyard.controlplane.app import create_app
from halyard.core.clock import isoformat
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.reports import Report, put_reports
from tests.api.helpers import cluster_body
from tests.support.inprocess import sign_in_admin
from tests.support.postgres import BACKENDS

pytestmark = pytest.mark.e2e

API = {"api-version": "2024-01-01"}
OFFLINE_AFTER = 300


@pytest.fixture(scope="module", params=BACKENDS)
async def fleet(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[httpx.AsyncClient, str, dict[str, str]]]:
    """A group of clusters, three of each status, and what each should show; on SQLite and on PostgreSQL (the JSON
    paths the condition reads are each dialect's own)."""
    data = tmp_path_factory.mktemp("status-filter")
    url = None
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_server").create_database(f"status_filter_{uuid.uuid4().hex[:8]}")
    settings = Settings(data_dir=data, insecure_http=True, offline_threshold_seconds=OFFLINE_AFTER, database_url=url)
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        admin = await sign_in_admin(c, Path(data))
        group = f"/subscriptions/{admin['subscription']}/resourceGroups/rg-{uuid.uuid4().hex[:6]}"
        assert (await c.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})).is_success
        db: Database = app.state.plane.db
        now = dt.datetime.now(dt.UTC)
        beats = {
            "Connected": (now - dt.timedelta(seconds=5), now + dt.timedelta(days=1)),
            "Offline": (now - dt.timedelta(seconds=OFFLINE_AFTER + 60), now + dt.timedelta(days=1)),
            "Connecting": (None, now + dt.timedelta(days=1)),
            "Expired": (now - dt.timedelta(seconds=5), now - dt.timedelta(minutes=1)),
        }
        expected: dict[str, str] = {}
        reports = []
        for status, (last, expiry) in beats.items():
            for i in range(3):
                name = f"{status.lower()}-{i}"
                path = f"{group}/providers/Microsoft.Kubernetes/connectedClusters/{name}"
                r = await c.put(path, params=API, json=cluster_body())
                assert r.status_code == 201, r.text
                key = path.lower()
                reports.append(Report(key, "his", {"managedIdentityCertificateExpirationTime": isoformat(expiry)}, now))
                if last is not None:
                    reports.append(Report(key, "dp", {"lastConnectivityTime": isoformat(last)}, last))
                expected[name] = status
        async with db.transaction() as session:
            await put_reports(session, reports)
        yield c, f"{group}/providers/Microsoft.Kubernetes/connectedClusters", expected


async def _all(client: httpx.AsyncClient, path: str, **params: str) -> list[dict[str, Any]]:
    """Every page, following nextLink as a client does."""
    found: list[dict[str, Any]] = []
    r = await client.get(path, params={**API, **params})
    while True:
        assert r.status_code == 200, r.text
        body = r.json()
        found += body["value"]
        if not body.get("nextLink"):
            return found
        r = await client.get(body["nextLink"])


async def test_each_status_lists_exactly_the_clusters_that_show_it(
    fleet: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, path, expected = fleet
    shown = {c["name"]: c["properties"]["connectivityStatus"] for c in await _all(client, path)}
    assert shown == expected  # the reports above give the statuses meant
    for status in ("Connected", "Offline", "Connecting", "Expired"):
        # $top=2 pages through three matches: nextLink keeps the filter.
        listed = await _all(client, path, **{"$filter": f"properties/connectivityStatus eq '{status}'", "$top": "2"})
        assert sorted(c["name"] for c in listed) == sorted(n for n, s in expected.items() if s == status), status
        assert {c["properties"]["connectivityStatus"] for c in listed} == {status}


async def test_the_status_is_matched_whatever_its_case_and_other_filters_are_refused(
    fleet: tuple[httpx.AsyncClient, str, dict[str, str]],
) -> None:
    client, path, expected = fleet
    listed = await _all(client, path, **{"$filter": "connectivitystatus eq 'offline'"})
    assert len(listed) == sum(1 for s in expected.values() if s == "Offline")
    for bad in ("properties/connectivityStatus eq 'Gone'", "name eq 'x'", "properties/connectivityStatus ne 'Offline'"):
        r = await client.get(path, params={**API, "$filter": bad})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidFilterInQueryString", r.text
