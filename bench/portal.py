"""The portal with 10,000 clusters stored: what a person waits for, and the list API behind it.

1. The list API as the portal calls it (``GET …/connectedClusters?$top=100``, a signed-in user's token), p50/p99,
   measured by the client over loopback HTTPS: the first page and a page deep in the fleet.
   And a page of 100 filtered by status (``$filter=properties/connectivityStatus eq 'Offline'``, 5 % of the fleet).
2. The portal's own answers (server-rendered HTML, the API called in process): the clusters page, its table filtered
   by status (one API page with that ``$filter``), the counts by status (one GROUP BY behind the API's
   ``statusCounts``, also measured directly) and the table sorted over the whole fleet (``$orderby``), p50/p95/p99.
3. Headless Chromium (Debian's, through Playwright): the clusters page and the filtered page, navigation start to
   first contentful paint, p50/p95.

The fleet is written straight into the SQLite store while the server is stopped (one real cluster created through
the API is the template; 10,000 rows and their heartbeat reports copied from it): creating and onboarding 10,000
clusters through the API takes minutes and measures something else (bench/fleet.py does). 90 % of the clusters
beat a moment ago (Connected), 5 % long ago (Offline), 5 % never (Connecting).

    .venv/bin/python -m bench.portal [--clusters 10000] [--rounds 30]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sqlite3
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright
from tests.api.helpers import cluster_body
from tests.support.processes import ServerProcess, free_port
from tests.support.signin import Login, new_user

CC = {"api-version": "2026-05-01"}
GROUP = "fleet"
OWNER = "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))], 1)


def _summary(values: list[float]) -> dict[str, float]:
    return {"p50": _pct(values, 50), "p95": _pct(values, 95), "p99": _pct(values, 99), "n": len(values)}


def _seed(db: Path, template_id: str, clusters: int) -> None:
    """``clusters`` copies of the template cluster's row, each with a dp report (or none: Connecting)."""
    con = sqlite3.connect(db)
    con.row_factory = sqlite3.Row
    row = dict(con.execute("SELECT * FROM resources WHERE id_key = ?", (template_id.lower(),)).fetchone())
    now = dt.datetime.now(dt.UTC)
    resources, reports = [], []
    for i in range(clusters):
        name = f"cc-{i:05d}"
        rid = template_id.rsplit("/", 1)[0] + "/" + name
        resources.append({**row, "id": rid, "id_key": rid.lower(), "name": name, "etag": uuid.uuid4().hex})
        kind = i % 20
        if kind == 19:
            continue  # Connecting: never beat
        seen = now - (dt.timedelta(hours=2) if kind == 18 else dt.timedelta(seconds=i % 30))
        beat = {"agentVersion": "1.4.0", "lastConnectivityTime": seen.isoformat().replace("+00:00", "Z"),
                "kubernetesVersion": "v1.31.2", "totalNodeCount": 3 + i % 5, "totalCoreCount": 12 + i % 9,
                "detected": {"distribution": "k3s", "infrastructure": "generic"}}  # fmt: skip
        reports.append((rid.lower(), "dp", json.dumps(beat), row["created_at"]))
    columns = list(row)
    con.executemany(
        f"INSERT INTO resources ({', '.join(columns)}) VALUES ({', '.join('?' for _ in columns)})",
        [tuple(r[c] for c in columns) for r in resources],
    )
    con.executemany(
        "INSERT INTO resource_reports (id_key, reporter, properties, reported_at) VALUES (?, ?, ?, ?)", reports
    )
    con.execute("DELETE FROM resources WHERE id_key = ?", (template_id.lower(),))
    con.commit()
    con.close()


def _timed(http: httpx.Client, url: str, rounds: int, method: str = "GET", **kwargs: Any) -> list[float]:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        r = http.request(method, url, **kwargs)
        times.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, (url, r.status_code, r.text[:300])
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clusters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-portal-"))
    server = ServerProcess(work / "data", free_port())
    try:
        server.start()
        sub = server.admin["subscription"]
        template = (
            f"/subscriptions/{sub}/resourceGroups/{GROUP}/providers/Microsoft.Kubernetes/connectedClusters/template"
        )
        with server.client() as admin:
            admin.put(
                f"/subscriptions/{sub}/resourceGroups/{GROUP}",
                params={"api-version": "2024-11-01"},
                json={"location": "eastus"},
            )
            assert admin.put(template, params=CC, json=cluster_body()).status_code == 201
            deadline = time.monotonic() + 20
            while admin.get(template, params=CC).json()["properties"]["provisioningState"] != "Succeeded":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            user, password = new_user(admin)
            r = admin.put(f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                          params={"api-version": "2022-04-01"},
                          json={"properties": {"roleDefinitionId": OWNER, "principalId": user["id"]}})  # fmt: skip
            assert r.status_code == 201, r.text
        server.stop()
        _seed(work / "data" / "halyard.db", template, args.clusters)
        server.start()
        results: dict[str, Any] = {"clusters": args.clusters, "rounds": args.rounds}
        chromium = shutil.which("chromium")
        assert chromium, "Debian's chromium is needed (scripts/install-system-deps.sh)"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            context = browser.new_context(ignore_https_errors=True, viewport={"width": 1280, "height": 800})
            page = context.new_page()
            page.goto(f"{server.url}/portal/clusters")
            page.fill("input[name=username]", user["userPrincipalName"])
            page.fill("input[name=password]", password)
            page.keyboard.press("Enter")
            page.wait_for_url("**/portal/clusters**")
            cookies = {c["name"]: c["value"] for c in context.cookies()}
            page.goto("about:blank")
            # The user's access token, as the portal holds it, for the API measured directly.
            token = Login(server).sign_in(user["userPrincipalName"], password)["access_token"]
            with httpx.Client(base_url=server.url, verify=server.ca, timeout=60) as http:
                api = f"/subscriptions/{sub}/providers/Microsoft.Kubernetes/connectedClusters"
                auth = {"Authorization": f"Bearer {token}"}
                _timed(http, api, 3, params={**CC, "$top": "100"}, headers=auth)  # warm
                results["api_first_page_ms"] = _summary(
                    _timed(http, api, args.rounds, params={**CC, "$top": "100"}, headers=auth)
                )
                deep = http.get(api, params={**CC, "$top": "100"}, headers=auth).json()["nextLink"]
                for _ in range(min(40, args.clusters // 100 - 2)):
                    deep = http.get(deep, headers=auth).json()["nextLink"]
                results["api_page_41_ms"] = _summary(_timed(http, deep, args.rounds, headers=auth))
                # The server-side target: 100 of the fleet filtered by status (in the query, $filter).
                offline = {**CC, "$top": "100", "$filter": "properties/connectivityStatus eq 'Offline'"}
                _timed(http, api, 3, params=offline, headers=auth)  # warm
                results["api_offline_page_ms"] = _summary(_timed(http, api, args.rounds, params=offline, headers=auth))
                portal = {"cookies": cookies}
                results["portal_clusters_page_ms"] = _summary(_timed(http, "/portal/clusters", args.rounds, **portal))
                results["portal_table_offline_ms"] = _summary(
                    _timed(http, "/portal/clusters/table?status=Offline", max(5, args.rounds // 3), **portal)
                )
                # Counts by status: one GROUP BY behind the API's statusCounts action, computed on every call.
                counted = f"{api}/statusCounts"
                _timed(http, counted, 3, method="POST", params=CC, headers=auth)  # warm
                results["api_status_counts_ms"] = _summary(
                    _timed(http, counted, args.rounds, method="POST", params=CC, headers=auth)
                )
                results["portal_counts_ms"] = _summary(_timed(http, "/portal/clusters/counts", args.rounds, **portal))
                # Sorted over the whole fleet ($orderby): by status, and by last seen (newest first) a page deep.
                by_status = {**CC, "$top": "100", "$orderby": "properties/connectivityStatus desc"}
                _timed(http, api, 3, params=by_status, headers=auth)  # warm
                results["api_sorted_by_status_ms"] = _summary(
                    _timed(http, api, args.rounds, params=by_status, headers=auth)
                )
                recent = {**CC, "$top": "100", "$orderby": "properties/lastConnectivityTime desc"}
                second = http.get(api, params=recent, headers=auth).json()["nextLink"]
                results["api_sorted_by_last_seen_page_2_ms"] = _summary(_timed(http, second, args.rounds, headers=auth))
                results["portal_table_sorted_by_status_ms"] = _summary(
                    _timed(http, "/portal/clusters/table?sort=status&order=desc", args.rounds, **portal)
                )
            for label, path in (("browser_clusters_fcp_ms", "/portal/clusters"),
                                ("browser_offline_fcp_ms", "/portal/clusters?status=Offline")):  # fmt: skip
                paints = []
                for _ in range(args.rounds if "offline" not in label else max(5, args.rounds // 3)):
                    page.goto(server.url + path, wait_until="load")
                    page.wait_for_function(
                        "() => performance.getEntriesByName('first-contentful-paint').length > 0", timeout=10_000
                    )
                    fcp = page.evaluate("() => performance.getEntriesByName('first-contentful-paint')[0].startTime")
                    assert fcp > 0
                    paints.append(float(fcp))
                results[label] = _summary(paints)
            browser.close()
        print(json.dumps(results, indent=2))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
