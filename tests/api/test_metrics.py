"""The running server's /metrics: Prometheus text a scraper reads, counting requests by route template and status,
for authenticated principals only, and carrying no names (of groups, clusters, principals) in its labels."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.helpers import RG_API, group_path
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

GROUP_ROUTE = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"


def _scrape(server: ServerProcess, token: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    r = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"}, verify=server.ca)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version="), r.headers  # the text exposition format
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(r.text)
        for s in family.samples
    }
    return r.text, samples


def _requests(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], **labels: str) -> float:
    return samples.get(("halyard_http_requests_total", tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_by_route_template_for_authenticated_callers(server: ServerProcess) -> None:
    anonymous = httpx.get(f"{server.url}/metrics", verify=server.ca)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "AuthenticationFailed"

    token = server.token()
    _, before = _scrape(server, token)
    missing = f"metrics-{uuid.uuid4().hex[:8]}"  # a name only this test uses, answered 404 twice
    with server.client(token) as client:
        for _ in range(2):
            assert client.get(group_path(server, missing), params=RG_API).status_code == 404
    text, after = _scrape(server, token)

    labels = {"method": "GET", "route": GROUP_ROUTE, "status": "404"}
    assert _requests(after, **labels) - _requests(before, **labels) == 2, [
        k for k in after if "resourcegroups" in str(k)
    ]
    # The latency histogram of the same route: cumulative buckets up to +Inf, whose count matches the requests.
    route = (("method", "GET"), ("route", GROUP_ROUTE))
    count = after[("halyard_http_request_seconds_count", route)]
    assert after[("halyard_http_request_seconds_bucket", tuple(sorted((*route, ("le", "+Inf")))))] == count
    buckets = sorted(
        (float(dict(labels)["le"]), value)
        for (name, labels), value in after.items()
        if name == "halyard_http_request_seconds_bucket"
        and dict(labels).get("route") == GROUP_ROUTE
        and dict(labels).get("method") == "GET"  # the session's server also serves other tests' PUTs and DELETEs
    )
    assert [value for _, value in buckets] == sorted(value for _, value in buckets)  # cumulative
    # The scrape before this one was counted too, under its own template.
    assert _requests(after, method="GET", route="/metrics", status="200") >= 1
    # Names never reach the labels: routes are templates, the group's name and the subscription appear nowhere.
    assert missing not in text and server.admin["subscription"] not in text
    assert not re.search(r'route="[^"]*/subscriptions/[0-9a-f-]{36}', text)
