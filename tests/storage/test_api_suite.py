"""The representative API suite, run unchanged against a server on SQLite and one on PostgreSQL (``db_server``)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.storage.arm import (
    CLUSTERS,
    NAMESPACE,
    RESOURCES,
    agent_public_key,
    cluster_body,
    cluster_path,
    create_cluster,
    group_path,
    list_all,
    put_cluster,
    put_group,
    wait_async_operation,
    wait_location,
)
from tests.storage.stored import integrity_problems
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


@pytest.fixture
def client(db_server: ServerProcess) -> Iterator[httpx.Client]:
    with db_server.client() as c:
        yield c


@pytest.fixture
def sub(db_server: ServerProcess) -> str:
    return str(db_server.admin["subscription"])


@pytest.fixture
def group(client: httpx.Client, sub: str) -> str:
    name = f"rg-{uuid.uuid4().hex[:10]}"
    put_group(client, sub, name)
    return name


@pytest.fixture(scope="module")
def key() -> str:
    return agent_public_key()


@pytest.fixture
async def aclient(db_server: ServerProcess) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {db_server.token()}"}
    async with httpx.AsyncClient(base_url=db_server.url, verify=db_server.ca, headers=headers, timeout=60) as c:
        yield c


def test_resource_group_crud(client: httpx.Client, sub: str) -> None:
    name = f"Rg-{uuid.uuid4().hex[:10]}"
    path = group_path(sub, name)
    v = {"api-version": RESOURCES}
    created = client.put(path, params=v, json={"location": "westeurope", "tags": {"team": "a"}})
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["provisioningState"] == "Succeeded"
    again = client.put(path, params=v, json={"location": "westeurope", "tags": {"team": "b"}})
    assert again.status_code == 200 and again.json()["tags"] == {"team": "b"}
    moved = client.put(path, params=v, json={"location": "eastus"})
    assert moved.status_code == 409 and moved.json()["error"]["code"] == "InvalidResourceGroupLocation"

    got = client.get(path.replace("resourceGroups", "resourcegroups").lower(), params=v)
    assert got.status_code == 200 and got.json()["name"] == name and got.json()["location"] == "westeurope"
    assert client.head(path, params=v).status_code == 204
    patched = client.patch(path, params=v, json={"tags": {"team": "c", "env": "dev"}})
    assert patched.status_code == 200 and patched.json()["tags"] == {"team": "c", "env": "dev"}
    listed = client.get(f"/subscriptions/{sub}/resourceGroups", params=v).json()["value"]
    assert [g["tags"] for g in listed if g["name"] == name] == [{"team": "c", "env": "dev"}]

    deleted = client.delete(path, params=v)
    assert deleted.status_code == 202
    assert wait_location(client, deleted).status_code == 200
    missing = client.get(path, params=v)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceGroupNotFound"
    assert client.head(path, params=v).status_code == 404


def test_connected_cluster_lifecycle(client: httpx.Client, sub: str, group: str, key: str) -> None:
    path = cluster_path(sub, group, "edge-1")
    v = {"api-version": CLUSTERS}
    created = put_cluster(client, sub, group, "edge-1", key)
    assert created.status_code == 201, created.text
    assert created.json()["properties"]["provisioningState"] == "Accepted"
    assert created.headers["Retry-After"] and created.headers["ETag"]
    assert wait_async_operation(client, created)["status"] == "Succeeded"

    got = client.get(path, params=v)
    assert got.status_code == 200
    body = got.json()
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert body["properties"]["connectivityStatus"] == "Connecting"
    assert body["properties"]["agentPublicKeyCertificate"] == key
    assert body["identity"]["principalId"] and body["systemData"]["createdBy"]
    assert body["type"] == f"{NAMESPACE}/connectedClusters"

    patched = client.patch(path, params=v, json={"tags": {"owner": "ops"}})
    assert patched.status_code == 202, patched.text
    assert wait_async_operation(client, patched)["status"] == "Succeeded"
    after = client.get(path, params=v).json()
    assert after["tags"] == {"owner": "ops"} and after["properties"]["provisioningState"] == "Succeeded"
    assert after["identity"]["principalId"] == body["identity"]["principalId"]

    deleted = client.delete(path, params=v)
    assert deleted.status_code == 202
    assert wait_location(client, deleted).status_code == 204
    missing = client.get(path, params=v)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "ResourceNotFound"
    assert client.delete(path, params=v).status_code == 204

    # The activity log holds the three operations, newest first, each Started, Accepted and Succeeded.
    start = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600))
    log = client.get(
        f"/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values",
        params={"api-version": "2015-04-01", "$filter": f"eventTimestamp ge '{start}' and resourceUri eq '{path}'"},
    )
    assert log.status_code == 200, log.text
    events = log.json()["value"]
    assert [(e["operationName"]["value"].rsplit("/", 1)[1], e["status"]["value"]) for e in events] == [
        (verb, status) for verb in ("delete", "write", "write") for status in ("Succeeded", "Accepted", "Started")
    ]
    assert [e["httpRequest"]["method"] for e in events[::3]] == ["DELETE", "PATCH", "PUT"]


def test_list_pages_with_top_and_next_link(client: httpx.Client, sub: str, group: str, key: str) -> None:
    names = [f"c{i:02d}" for i in range(7)]
    for name in names:
        assert put_cluster(client, sub, group, name, key).status_code == 201
    base = f"{group_path(sub, group)}/providers/{NAMESPACE}/connectedClusters"
    items, pages = list_all(client, base, top=3)
    assert [c["name"] for c in items] == names and pages == 3
    first = client.get(base, params={"api-version": CLUSTERS, "$top": 3}).json()
    assert len(first["value"]) == 3 and "%24top=3" in first["nextLink"]
    everything, _ = list_all(client, f"/subscriptions/{sub}/providers/{NAMESPACE}/connectedClusters", top=2)
    mine = [c["name"] for c in everything if c["id"].lower().startswith(group_path(sub, group).lower() + "/")]
    assert mine == names
    assert len({c["id"].lower() for c in everything}) == len(everything)  # no page repeats a row


def test_etag_preconditions(client: httpx.Client, sub: str, group: str, key: str) -> None:
    path = cluster_path(sub, group, "tagged")
    v = {"api-version": CLUSTERS}
    absent = put_cluster(client, sub, group, "tagged", key, **{"If-Match": '"nope"'})
    assert absent.status_code == 412 and absent.json()["error"]["code"] == "PreconditionFailed"
    created = put_cluster(client, sub, group, "tagged", key, **{"If-None-Match": "*"})
    assert created.status_code == 201
    wait_async_operation(client, created)
    etag = client.get(path, params=v).headers["ETag"]

    assert put_cluster(client, sub, group, "tagged", key, **{"If-None-Match": "*"}).status_code == 412
    assert put_cluster(client, sub, group, "tagged", key, **{"If-Match": '"stale"'}).status_code == 412
    stale_patch = client.patch(path, params=v, json={"tags": {"a": "b"}}, headers={"If-Match": '"stale"'})
    assert stale_patch.status_code == 412
    stale_delete = client.delete(path, params=v, headers={"If-Match": '"stale"'})
    assert stale_delete.status_code == 412
    assert client.get(path, params=v).headers["ETag"] == etag  # refused writes changed nothing

    updated = client.put(path, params=v, json=cluster_body(key, {"v": "2"}), headers={"If-Match": etag})
    assert updated.status_code == 200 and updated.headers["ETag"] != etag
    wait_async_operation(client, updated)
    reused = client.put(path, params=v, json=cluster_body(key, {"v": "3"}), headers={"If-Match": etag})
    assert reused.status_code == 412
    assert client.get(path, params=v).json()["tags"] == {"v": "2"}


def test_group_delete_cascades_to_its_clusters(client: httpx.Client, sub: str, group: str, key: str) -> None:
    for name in ("a", "b", "c"):
        create_cluster(client, sub, group, name, key)
    other = f"rg-{uuid.uuid4().hex[:10]}"
    put_group(client, sub, other)
    create_cluster(client, sub, other, "a", key)  # same name elsewhere: must survive

    deleted = client.delete(group_path(sub, group), params={"api-version": RESOURCES})
    assert deleted.status_code == 202 and deleted.headers["Retry-After"]
    assert wait_location(client, deleted).status_code == 200

    for name in ("a", "b", "c"):
        assert client.get(cluster_path(sub, group, name), params={"api-version": CLUSTERS}).status_code == 404
    assert client.get(group_path(sub, group), params={"api-version": RESOURCES}).status_code == 404
    listed, _ = list_all(client, f"/subscriptions/{sub}/providers/{NAMESPACE}/connectedClusters")
    assert not [c for c in listed if f"/resourcegroups/{group}/".lower() in c["id"].lower()]
    assert client.get(cluster_path(sub, other, "a"), params={"api-version": CLUSTERS}).status_code == 200


def test_provider_registration(client: httpx.Client, sub: str, group: str, key: str) -> None:
    v = {"api-version": RESOURCES}
    provider = client.get(f"/subscriptions/{sub}/providers/{NAMESPACE}", params=v)
    assert provider.status_code == 200 and provider.json()["registrationState"] == "Registered"
    create_cluster(client, sub, group, "in-use", key)
    refused = client.post(f"/subscriptions/{sub}/providers/{NAMESPACE}/unregister", params=v)
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "ProviderUnregistrationConflict"
    registered = client.post(f"/subscriptions/{sub}/providers/{NAMESPACE}/register", params=v)
    assert registered.status_code == 200 and registered.json()["registrationState"] == "Registered"
    assert client.get(f"/subscriptions/{sub}/providers/{NAMESPACE}", params=v).json()["registrationState"] == (
        "Registered"
    )


async def test_concurrent_creates_of_one_name(aclient: httpx.AsyncClient, sub: str, key: str) -> None:
    """Same-name creates racing: one creates (201), the others update what it created (200); never a 5xx."""
    group = f"rg-{uuid.uuid4().hex[:10]}"
    v = {"api-version": RESOURCES}
    groups = await asyncio.gather(*(aclient.put(group_path(sub, group), params=v, json={"location": "eastus"})
                                    for _ in range(8)))  # fmt: skip
    assert sorted(r.status_code for r in groups) == [200] * 7 + [201], [r.text for r in groups]
    body = cluster_body(key)
    clusters = await asyncio.gather(*(aclient.put(cluster_path(sub, group, "same"), params={"api-version": CLUSTERS},
                                                  json=body) for _ in range(8)))  # fmt: skip
    assert sorted(r.status_code for r in clusters) == [200] * 7 + [201], [r.text for r in clusters]


async def test_writes_racing_a_group_deletion_leave_no_orphans(
    db_server: ServerProcess, aclient: httpx.AsyncClient, sub: str, key: str
) -> None:
    """PUTs into a group while it is being deleted are refused (409) or land before and are deleted with it."""
    group = f"rg-{uuid.uuid4().hex[:10]}"
    cv = {"api-version": CLUSTERS}
    assert (
        await aclient.put(group_path(sub, group), params={"api-version": RESOURCES}, json={"location": "eastus"})
    ).is_success
    for name in ("a", "b", "c"):
        assert (await aclient.put(cluster_path(sub, group, name), params=cv, json=cluster_body(key))).status_code == 201
    deleted = await aclient.delete(group_path(sub, group), params={"api-version": RESOURCES})
    assert deleted.status_code == 202
    codes: collections.Counter[str] = collections.Counter()

    async def writer(w: int) -> None:
        """PUT new clusters into the group until it is gone."""
        deadline = time.monotonic() + 120
        for i in itertools.count():
            r = await aclient.put(cluster_path(sub, group, f"late-{w}-{i}"), params=cv, json=cluster_body(key))
            codes[f"{r.status_code} {r.json()['error']['code'] if r.status_code >= 400 else ''}".strip()] += 1
            if r.status_code == 404:
                return
            assert time.monotonic() < deadline, f"group {group} still there after 120s: {codes}"

    await asyncio.gather(*(writer(w) for w in range(4)))
    assert set(codes) <= {"201", "409 ResourceGroupBeingDeleted", "404 ResourceGroupNotFound"}, codes
    assert codes["404 ResourceGroupNotFound"] == 4
    while (await aclient.get(deleted.headers["Location"])).status_code == 202:
        await asyncio.sleep(0.1)
    page = (await aclient.get(f"/subscriptions/{sub}/providers/{NAMESPACE}/connectedClusters", params=cv)).json()
    listed = page["value"]
    while page.get("nextLink"):
        page = (await aclient.get(page["nextLink"])).json()
        listed += page["value"]
    assert not [c["id"] for c in listed if f"/resourcegroups/{group}/" in c["id"].lower()]
    assert await integrity_problems(db_server) == []
