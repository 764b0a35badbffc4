"""Hostile input (issue 11): no stored value, body or misbehaving cluster breaks the service for anyone else.

Each test sends what a hostile caller sent, then checks both the answer (4xx, never 5xx) and that what every other
caller reads (the lists, the resource) still works.
"""

from __future__ import annotations

import json

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import CC_API, RG_API, cluster_body, cluster_path, group_path, make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

LONE_SURROGATE = b'"\\ud800"'
NUL = b'"a\\u0000b"'


def _raw(c: httpx.Client, method: str, path: str, params: dict[str, str], body: bytes) -> httpx.Response:
    return c.request(method, path, params=params, content=body, headers={"Content-Type": "application/json"})


def _lists_work(server: ServerProcess, c: httpx.Client) -> None:
    sub = f"/subscriptions/{server.admin['subscription']}"
    assert c.get(f"{sub}/resourcegroups", params=RG_API).status_code == 200
    assert c.get(f"{sub}/resources", params=RG_API).status_code == 200
    clusters = f"{sub}/providers/Microsoft.Kubernetes/connectedClusters"
    assert c.get(clusters, params=CC_API).status_code == 200


@pytest.mark.parametrize("value", [LONE_SURROGATE, b'"\\udc00"', b'"\\ud800\\u0041"', NUL])
def test_unencodable_text_in_a_group_is_refused_and_never_stored(server: ServerProcess, value: bytes) -> None:
    group = make_group(server)
    with server.client() as c:
        r = _raw(c, "PATCH", group_path(server, group), RG_API, b'{"tags":{"x":' + value + b"}}")
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "InvalidRequestContent"
        r = _raw(c, "PUT", group_path(server, group), RG_API, b'{"location":"eastus","managedBy":' + value + b"}")
        assert r.status_code == 400, r.text
        assert c.get(group_path(server, group), params=RG_API).json()["tags"] == {}
        _lists_work(server, c)


def test_a_valid_surrogate_pair_is_text_and_is_kept(server: ServerProcess) -> None:
    group = make_group(server)
    with server.client() as c:
        r = _raw(c, "PATCH", group_path(server, group), RG_API, b'{"tags":{"emoji":"\\ud83d\\ude00"}}')
        assert r.status_code == 200, r.text
        assert c.get(group_path(server, group), params=RG_API).json()["tags"] == {"emoji": "\U0001f600"}


@pytest.mark.parametrize(
    "field",
    [
        b'"tags":{"x":%s}',
        b'"tags":{%s:"x"}',
        b'"properties":{"agentPublicKeyCertificate":"AAAA","arcAgentryConfigurations":[{"feature":"f","settings":{"k":%s}}]}',
        b'"properties":{"agentPublicKeyCertificate":"AAAA","distribution":%s}',
    ],
)
def test_unencodable_text_in_a_cluster_is_refused_and_lists_still_work(server: ServerProcess, field: bytes) -> None:
    group = make_group(server)
    name = unique("cc")
    base = cluster_body()
    body = json.dumps(base).encode()[:-1] + b"," + field % LONE_SURROGATE + b"}"
    with server.client() as c:
        r = _raw(c, "PUT", cluster_path(server, group, name), CC_API, body)
        assert r.status_code == 400, r.text
        assert c.get(cluster_path(server, group, name), params=CC_API).status_code == 404
        _lists_work(server, c)


def test_tag_limits_are_arms(server: ServerProcess) -> None:
    group = make_group(server)
    path = group_path(server, group)
    with server.client() as c:
        fifty = {f"k{i}": "v" for i in range(50)}
        assert c.patch(path, params=RG_API, json={"tags": fifty}).status_code == 200
        for tags in (
            {f"k{i}": "v" for i in range(51)},
            {"k" * 513: "v"},
            {"k": "v" * 257},
            {"a/b": "v"},
        ):
            r = c.patch(path, params=RG_API, json={"tags": tags})
            assert r.status_code == 400, (list(tags)[:1], r.text)
            assert r.json()["error"]["code"] == "InvalidRequestContent"
        assert c.get(path, params=RG_API).json()["tags"] == fifty
        name = unique("cc")
        r = c.put(cluster_path(server, group, name), params=CC_API, json={**cluster_body(), "tags": {"k": "v" * 257}})
        assert r.status_code == 400, r.text


@pytest.fixture(scope="module")
def agent(server: ServerProcess) -> Agent:
    return connect(server, make_group(server), unique("cc"))


POISONED_BEATS = [
    pytest.param({"agentErrors": [{"message": "m", "severity": "\ud800", "component": "c", "time": "2026-01-01T00:00:00Z"}]}, id="surrogate-severity"),
    pytest.param({"agentErrors": [{"message": "m", "severity": "x" * 300_000, "component": "c", "time": "2026-01-01T00:00:00Z"}]}, id="huge-severity"),
    pytest.param({"agentErrors": [{"message": "m", "severity": "Fatal", "component": "c", "time": "2026-01-01T00:00:00Z"}]}, id="unknown-severity"),
    pytest.param({"agentErrors": [{"message": "m" * 3000, "severity": "Error", "component": "c", "time": "2026-01-01T00:00:00Z"}]}, id="long-message"),
    pytest.param({"agentErrors": [{"message": "m", "component": "c", "time": "2026-01-01T00:00:00Z"}] * 33}, id="too-many-errors"),
    pytest.param({"totalNodeCount": 10**4000}, id="huge-integer"),
    pytest.param({"totalCoreCount": -1}, id="negative"),
    pytest.param({"agentState": "Exploded"}, id="unknown-state"),
    pytest.param({"distribution": "a b\n"}, id="distribution-not-a-token"),
    pytest.param({"agentVersion": "\x00"}, id="nul-version"),
]  # fmt: skip


@pytest.mark.parametrize("extra", POISONED_BEATS)
def test_a_poisoned_heartbeat_is_refused_and_the_cluster_reads_fine(
    server: ServerProcess, agent: Agent, extra: dict[str, object]
) -> None:
    beat = {"agentVersion": "1.0.0", **extra}
    # json.dumps writes a lone surrogate as its \\ud800 escape, as a hostile client would.
    content = json.dumps(beat).encode()
    r = httpx.post(
        f"{server.url}/dp/v1/heartbeat",
        content=content,
        headers={**agent.headers, "Content-Type": "application/json"},
        verify=server.ca,
    )
    assert r.status_code in (400, 413), r.text
    assert "error" in r.json()
    honest = httpx.post(f"{server.url}/dp/v1/heartbeat", json={"agentVersion": "1.0.0", "totalNodeCount": 3},
                        headers=agent.headers, verify=server.ca)  # fmt: skip
    assert honest.status_code == 200, honest.text
    with server.client() as c:
        r = c.get(agent.path, params=CC_API)
        assert r.status_code == 200, r.text
        assert len(r.content) < 64 * 1024
        _lists_work(server, c)


def test_an_oversized_body_is_refused_before_authentication(server: ServerProcess) -> None:
    big = b'{"location":"eastus","tags":{"x":"' + b"x" * (5 * 1024 * 1024) + b'"}}'
    path = group_path(server, unique("rg"))
    with httpx.Client(base_url=server.url, verify=server.ca) as c:
        r = c.put(path, params=RG_API, content=big, headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
        assert r.json()["error"]["code"] == "RequestEntityTooLarge"

        def chunks() -> object:  # no Content-Length: refused once past the limit, not after reading it all
            for _ in range(6):
                yield b"x" * (1024 * 1024)

        r = c.put(path, params=RG_API, content=chunks(), headers={"Content-Type": "application/json"})  # type: ignore[arg-type]
        assert r.status_code == 413, r.text
        token = f"/{server.admin['tenant']}/oauth2/v2.0/token"
        r = c.post(token, content=b"a=" + b"x" * (200 * 1024),
                   headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip
        assert r.status_code == 413, r.text
        r = c.post("/dp/v1/heartbeat", content=b"x" * (200 * 1024), headers={"Content-Type": "application/json"})
        assert r.status_code == 413, r.text
