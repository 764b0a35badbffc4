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
from tests.support.inprocess import secret_token, sign_in_admin
from tests.support.postgres import BACKENDS

pytestmark = pytest.mark.e2e

API = {"api-version": "2024-01-01"}
OFFLINE_AFTER = 300
# The client (the admin's), the clusters' collection path, each cluster's expected status, the admin's admin.json.
Fleet = tuple[httpx.AsyncClient, str, dict[str, str], dict[str, Any]]


@pytest.fixture(scope="module", params=BACKENDS)
async def fleet(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Fleet]:
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
                    beat = {"lastConnectivityTime": isoformat(last), "kubernetesVersion": f"v1.{29 + i}.0"}
                    reports.append(Report(key, "dp", beat, last))
                expected[name] = status
        async with db.transaction() as session:
            await put_reports(session, reports)
        yield c, f"{group}/providers/Microsoft.Kubernetes/connectedClusters", expected, admin


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
    fleet: Fleet,
) -> None:
    client, path, expected, _ = fleet
    shown = {c["name"]: c["properties"]["connectivityStatus"] for c in await _all(client, path)}
    assert shown == expected  # the reports above give the statuses meant
    for status in ("Connected", "Offline", "Connecting", "Expired"):
        # $top=2 pages through three matches: nextLink keeps the filter.
        listed = await _all(client, path, **{"$filter": f"properties/connectivityStatus eq '{status}'", "$top": "2"})
        assert sorted(c["name"] for c in listed) == sorted(n for n, s in expected.items() if s == status), status
        assert {c["properties"]["connectivityStatus"] for c in listed} == {status}


async def test_the_status_is_matched_whatever_its_case_and_other_filters_are_refused(
    fleet: Fleet,
) -> None:
    client, path, expected, _ = fleet
    listed = await _all(client, path, **{"$filter": "connectivitystatus eq 'offline'"})
    assert len(listed) == sum(1 for s in expected.values() if s == "Offline")
    for bad in ("properties/connectivityStatus eq 'Gone'", "name eq 'x'", "properties/connectivityStatus ne 'Offline'"):
        r = await client.get(path, params={**API, "$filter": bad})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidFilterInQueryString", r.text


READER = "/providers/Microsoft.Authorization/roleDefinitions/acdd72a7-3385-48ef-bd42-f606fba81ae7"


async def _principal(client: httpx.AsyncClient, admin: dict[str, Any], *scopes: str) -> httpx.AsyncClient:
    """A client of the same app signed in as a new service principal with Reader at each of ``scopes``."""
    r = await client.post(
        "/providers/Halyard.Directory/servicePrincipals",
        params={"api-version": "2026-01-01"},
        json={"displayName": f"sp-{uuid.uuid4().hex[:6]}"},
    )
    assert r.status_code == 201, r.text
    sp = r.json()
    for scope in scopes:
        r = await client.put(
            f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            json={"properties": {"roleDefinitionId": READER, "principalId": sp["id"]}},
        )
        assert r.status_code == 201, r.text
    token = await secret_token(client, admin, sp["appId"], sp["password"])
    return httpx.AsyncClient(
        transport=client._transport, base_url="http://t", headers={"Authorization": f"Bearer {token}"}
    )


async def _counts(client: httpx.AsyncClient, container: str) -> httpx.Response:
    return await client.post(f"{container}/providers/Microsoft.Kubernetes/connectedClusters/statusCounts", params=API)


async def test_counts_by_status_cover_exactly_what_the_caller_may_read(fleet: Fleet) -> None:
    client, path, expected, admin = fleet
    group = path.split("/providers/")[0]
    sub = "/".join(group.split("/")[:3])
    everything = {
        s: sum(1 for v in expected.values() if v == s) for s in ("Connected", "Connecting", "Offline", "Expired")
    }
    for container in (group, sub):
        r = await _counts(client, container)
        assert r.status_code == 200, r.text
        assert r.json()["byConnectivityStatus"] == everything
        assert r.json()["total"] == len(expected)
    # Reader on two clusters only: those two, in the counts as in the list.
    few = await _principal(client, admin, f"{path}/offline-0", f"{path}/expired-2")
    async with few:
        for container in (group, sub):
            r = await _counts(few, container)
            assert r.status_code == 200, r.text
            assert r.json() == {
                "total": 2,
                "byConnectivityStatus": {"Connected": 0, "Connecting": 0, "Offline": 1, "Expired": 1},
            }
            listed = await _all(few, f"{container}/providers/Microsoft.Kubernetes/connectedClusters")
            assert sorted(c["name"] for c in listed) == ["expired-2", "offline-0"]  # what the list shows them
    nobody = await _principal(client, admin)
    async with nobody:
        r = await _counts(nobody, group)
        assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed", r.text
    missing = await _counts(client, f"{sub}/resourceGroups/no-such-group")
    assert missing.status_code == 404, missing.text


async def test_a_caller_who_may_read_a_few_clusters_gets_full_pages_of_them(fleet: Fleet) -> None:
    """The list chooses readable rows in its query: a page of one holds one of the caller's clusters, not a page of
    the rows before it, emptied by the check and handed back with a nextLink."""
    client, path, _, admin = fleet
    sub = "/".join(path.split("/")[:3])
    few = await _principal(client, admin, f"{path}/offline-0", f"{path}/offline-2")  # sorted after 6 others
    async with few:
        r = await few.get(f"{sub}/providers/Microsoft.Kubernetes/connectedClusters", params={**API, "$top": "1"})
        assert r.status_code == 200, r.text
        assert [c["name"] for c in r.json()["value"]] == ["offline-0"] and r.json().get("nextLink"), r.text
        second = await few.get(r.json()["nextLink"])
        assert [c["name"] for c in second.json()["value"]] == ["offline-2"] and not second.json().get("nextLink")


async def test_orderby_sorts_the_whole_list_and_pages_through_it(fleet: Fleet) -> None:
    client, path, expected, _ = fleet
    bodies = {c["name"]: c for c in await _all(client, path)}

    def value(name: str, field: str) -> str:
        if field == "name":
            return name.lower()
        return str(bodies[name]["properties"].get(field.split("/")[1]) or "")

    for field in ("name", "properties/connectivityStatus", "properties/lastConnectivityTime",
                  "properties/kubernetesVersion"):  # fmt: skip
        for descending in (False, True):
            # $top=5 pages through twelve: nextLink keeps $orderby, and no cluster is skipped or repeated.
            orderby = f"{field} desc" if descending else field
            listed = [c["name"] for c in await _all(client, path, **{"$orderby": orderby, "$top": "5"})]
            assert sorted(listed) == sorted(expected), (orderby, listed)
            keys = [value(n, field) for n in listed]
            assert keys == sorted(keys, reverse=descending), (orderby, listed)
    # With a status filter: the filtered list, sorted.
    offline = await _all(client, path, **{"$filter": "properties/connectivityStatus eq 'Offline'",
                                          "$orderby": "name desc", "$top": "2"})  # fmt: skip
    assert [c["name"] for c in offline] == ["offline-2", "offline-1", "offline-0"]
    for bad in ("tags", "name sideways", "properties/totalNodeCount", "name, properties/kubernetesVersion"):
        r = await client.get(path, params={**API, "$orderby": bad})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidOrderByInQueryString", r.text
    # A token from an id-ordered page is refused under $orderby (not read as something else).
    first = (await client.get(path, params={**API, "$top": "2"})).json()["nextLink"]
    token = first.split("%24skipToken=")[1].split("&")[0]
    r = await client.get(path, params={**API, "$orderby": "name", "$skipToken": token})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidSkipToken", r.text
