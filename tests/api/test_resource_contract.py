"""The ARM contract every declared resource type keeps, run against each of them: the server's own types and a
throw-away type of each placement (group, subscription, tenant, child, extension).

CRUD with the async-operation headers clients poll, ETag preconditions, systemData, RBAC (a Reader reads and cannot
write, a principal without a role neither), 404s naming what is missing, paging with nextLink, the provider's
listings, and delete cascading to children and extensions. A type declared without an example body in
``tests/api/resource_examples.py`` fails here: new types are tested the day they are declared.

In-process (ASGI, no TLS): what is under test is the pipeline's contract, not the transport.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from halyard.controlplane.app import create_app
from halyard.controlplane.arm.resourcetypes import Placement, ResourceType, ResourceTypes
from halyard.controlplane.plane import TypeServices
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.reports import Report, put_reports
from tests.api.resource_examples import EXAMPLES, FIXED_NAMES, play_agents, play_agents_started, prepare_examples
from tests.api.throwaway_types import (
    EXTENSIONS,
    GATE_REPORTER,
    NAMESPACE,
    WIDGET_LIMIT,
    declare_with_throwaways,
    example,
)
from tests.support.inprocess import secret_token, sign_in_admin

pytestmark = pytest.mark.e2e

RG_API = {"api-version": "2024-11-01"}
CLUSTERS_KEY = "microsoft.kubernetes/connectedclusters"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
OPERATION_DEADLINE = 20.0


@dataclass
class Plane:
    client: httpx.AsyncClient
    types: ResourceTypes
    admin: dict[str, Any]
    transport: httpx.ASGITransport
    db: Database

    @property
    def subscription(self) -> str:
        return str(self.admin["subscription"])

    async def as_principal(self, role: str | None, scope: str) -> httpx.AsyncClient:
        """A client signed in as a new service principal, holding ``role`` at ``scope`` (or nothing)."""
        r = await self.client.post(
            "/providers/Halyard.Directory/servicePrincipals",
            params={"api-version": "2026-01-01"},
            json={"displayName": f"sp-{uuid.uuid4().hex[:8]}"},
        )
        assert r.status_code == 201, r.text
        sp = r.json()
        if role is not None:
            r = await self.client.put(
                f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                params={"api-version": "2022-04-01"},
                json={"properties": {"roleDefinitionId": role, "principalId": sp["id"]}},
            )
            assert r.status_code == 201, r.text
        client = httpx.AsyncClient(transport=self.transport, base_url="http://t")
        client.headers["Authorization"] = (
            f"Bearer {await secret_token(client, self.admin, sp['appId'], sp['password'])}"
        )
        return client


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Plane]:
    data = tmp_path_factory.mktemp("contract")
    app = create_app(Settings(data_dir=data, insecure_http=True), types=declare_with_throwaways)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        admin = await sign_in_admin(c, Path(data))
        await prepare_examples(c, admin["subscription"])
        yield Plane(c, app.state.plane.types, admin, transport, app.state.plane.db)


def _declared() -> list[ResourceType]:
    """The declared types, built without services: none is used until a request arrives."""
    unused: Any = object()
    return declare_with_throwaways(TypeServices(settings=Settings(), clock=unused, sealer=unused, his=unused)).all()


TYPES = [t.full_type for t in _declared()]


def _example(rtype: ResourceType) -> dict[str, Any]:
    if rtype.namespace in (NAMESPACE, EXTENSIONS):
        return example(rtype.key)
    factory = EXAMPLES.get(rtype.key)
    assert factory is not None, (
        f"resource type {rtype.full_type} has no example body: add one to tests/api/resource_examples.py"
    )
    return factory()


def _name(rtype: ResourceType, prefix: str) -> str:
    return FIXED_NAMES.get(rtype.key) or f"{prefix}{uuid.uuid4().hex[:8]}"


def _api(rtype: ResourceType) -> dict[str, str]:
    return {"api-version": rtype.api_versions[0]}


async def _wait(plane: Plane, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + OPERATION_DEADLINE
    while True:
        r = await plane.client.get(url)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        if body["status"] != "InProgress":
            return body
        await play_agents(plane.db, plane.types, body["resourceId"])
        assert r.headers["Retry-After"].isdigit()
        assert time.monotonic() < deadline, f"operation {url} still InProgress after {OPERATION_DEADLINE} s"
        await asyncio.sleep(0.05)


async def _container(plane: Plane, rtype: ResourceType) -> dict[str, str]:
    """Route parameters naming a fresh container for a resource of this type (its parents created)."""
    if rtype.parent is not None:
        parent_params, _ = await _create(plane, rtype.parent)
        return parent_params
    params = {"subscriptionId": plane.subscription}
    if rtype.placement is Placement.GROUP:
        group = f"rg-{uuid.uuid4().hex[:8]}"
        r = await plane.client.put(
            f"/subscriptions/{plane.subscription}/resourceGroups/{group}", params=RG_API, json={"location": "eastus"}
        )
        assert r.status_code == 201, r.text
        params["resourceGroupName"] = group
    return params


async def _create(plane: Plane, rtype: ResourceType, container: dict[str, str] | None = None) -> tuple[dict, str]:
    """Create a resource of this type (and its parents); wait for its operation. Its parameters and path."""
    params = dict(container if container is not None else await _container(plane, rtype))
    params[rtype.name_param] = _name(rtype, "r")
    path = rtype.item_path.format(**params)
    r = await plane.client.put(path, params=_api(rtype), json=_example(rtype))
    assert r.status_code == 201, r.text
    status = await _wait(plane, r.headers["Azure-AsyncOperation"])
    assert status["status"] == "Succeeded", status
    if rtype.key == CLUSTERS_KEY:  # its extensions and Flux configurations are written and waited on
        await play_agents_started(plane.db, path)
    return params, path


@pytest.mark.parametrize("full_type", TYPES)
async def test_create_read_update_delete_with_async_operations(plane: Plane, full_type: str) -> None:
    rtype = plane.types.get(full_type)
    assert rtype is not None
    container = await _container(plane, rtype)
    params = {**container, rtype.name_param: _name(rtype, "c")}
    path = rtype.item_path.format(**params)
    c = plane.client

    r = await c.get(path)
    assert r.status_code == 400 and r.json()["error"]["code"] == "MissingApiVersionParameter"
    r = await c.get(path, params=_api(rtype))
    assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceNotFound", r.text

    r = await c.put(path, params=_api(rtype), json=_example(rtype))
    assert r.status_code == 201, r.text
    created = r.json()
    assert created["id"] == path and created["type"] == rtype.full_type and created["name"] == params[rtype.name_param]
    assert created["properties"]["provisioningState"] == "Accepted"
    assert created["systemData"]["createdBy"] == plane.admin["clientId"]
    assert r.headers["ETag"] and r.headers["Retry-After"].isdigit()
    status = await _wait(plane, r.headers["Azure-AsyncOperation"])
    assert status["status"] == "Succeeded" and status["resourceId"] == path

    r = await c.get(path, params=_api(rtype))
    assert r.status_code == 200, r.text
    etag = r.headers["ETag"]
    assert r.json()["properties"]["provisioningState"] == "Succeeded"

    # Preconditions: a stale If-Match and If-None-Match: * on an existing resource are refused.
    r = await c.put(path, params=_api(rtype), json=_example(rtype), headers={"If-Match": '"stale"'})
    assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
    r = await c.put(path, params=_api(rtype), json=_example(rtype), headers={"If-None-Match": "*"})
    assert r.status_code == 412
    r = await c.put(path, params=_api(rtype), json=_example(rtype), headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    await _wait(plane, r.headers["Azure-AsyncOperation"])

    r = await c.patch(path, params=_api(rtype), json={"tags": {"team": "blue"}})
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        assert (
            r.headers["Location"] and (await _wait(plane, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
        )
    r = await c.get(path, params=_api(rtype))
    assert r.json()["tags"] == {"team": "blue"}
    assert r.json()["systemData"]["lastModifiedBy"] == plane.admin["clientId"]

    r = await c.delete(path, params=_api(rtype))
    assert r.status_code == 202 and r.headers["Location"]
    assert (await _wait(plane, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    assert (await c.get(path, params=_api(rtype))).status_code == 404
    assert (await c.delete(path, params=_api(rtype))).status_code == 204


@pytest.mark.parametrize("full_type", TYPES)
async def test_arm_tag_limits_hold_for_every_type(plane: Plane, full_type: str) -> None:
    rtype = plane.types.get(full_type)
    assert rtype is not None
    container = await _container(plane, rtype)
    path = rtype.item_path.format(**container, **{rtype.name_param: FIXED_NAMES.get(rtype.key, "tagged")})
    for tags in ({f"t{i}": "v" for i in range(51)}, {"x" * 513: "v"}, {"k": "v" * 257}, {"a/b": "v"}):
        r = await plane.client.put(path, params=_api(rtype), json={**_example(rtype), "tags": tags})
        assert r.status_code == 400, r.text
        assert "tag" in r.json()["error"]["message"].lower()
    assert (await plane.client.get(path, params=_api(rtype))).status_code == 404  # nothing was stored


@pytest.mark.parametrize("full_type", TYPES)
async def test_lists_page_with_next_link(plane: Plane, full_type: str) -> None:
    rtype = plane.types.get(full_type)
    assert rtype is not None
    container = await _container(plane, rtype)
    made = {(await _create(plane, rtype, container))[1] for _ in range(1 if rtype.key in FIXED_NAMES else 2)}
    url = rtype.collection_path.format(**container)
    seen: set[str] = set()
    r = await plane.client.get(url, params={**_api(rtype), "$top": "1"})
    for _ in range(100):
        assert r.status_code == 200, r.text
        seen |= {item["id"] for item in r.json()["value"]}
        assert len(r.json()["value"]) <= 1
        if "nextLink" not in r.json():
            break
        r = await plane.client.get(r.json()["nextLink"])
    assert made <= seen, (made, seen)
    if rtype.parent is not None:
        assert seen == made  # a parent's list holds its own children only


@pytest.mark.parametrize("full_type", TYPES)
async def test_rbac_reader_reads_and_cannot_write_nobody_reads(plane: Plane, full_type: str) -> None:
    rtype = plane.types.get(full_type)
    assert rtype is not None
    _, path = await _create(plane, rtype)
    # Role assignments are made at the tenant root or under a subscription (a tenant resource has no subscription).
    scope = "" if rtype.placement is Placement.TENANT else f"/subscriptions/{plane.subscription}"
    reader = await plane.as_principal(READER, scope)
    nobody = await plane.as_principal(None, "")
    try:
        assert (await reader.get(path, params=_api(rtype))).status_code == 200
        r = await reader.put(path, params=_api(rtype), json=_example(rtype))
        assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
        assert rtype.action("write") in r.json()["error"]["message"]
        r = await reader.delete(path, params=_api(rtype))
        assert r.status_code == 403
        r = await nobody.get(path, params=_api(rtype))
        assert r.status_code == 403 and rtype.action("read") in r.json()["error"]["message"]
    finally:
        await reader.aclose()
        await nobody.aclose()


@pytest.mark.parametrize("full_type", [t for t in TYPES if "Throwaway" in t or "connectedClusters" in t])
async def test_missing_containers_are_named(plane: Plane, full_type: str) -> None:
    rtype = plane.types.get(full_type)
    assert rtype is not None
    params = {"subscriptionId": plane.subscription, "resourceGroupName": "no-such-group"}
    for t in (rtype, *(p for p in _ancestors(rtype))):
        params[t.name_param] = "missing"
    r = await plane.client.get(rtype.item_path.format(**params), params=_api(rtype))
    assert r.status_code == 404
    expected = {
        Placement.GROUP: "ResourceGroupNotFound",
        Placement.SUBSCRIPTION: "ResourceNotFound",
        Placement.TENANT: "ResourceNotFound",
    }
    root = _ancestors(rtype)[-1] if rtype.parent else rtype
    assert r.json()["error"]["code"] == expected[root.placement], r.text
    if rtype.parent is not None:
        parent_params, _ = await _create(plane, rtype.parent)
        parent_params[rtype.name_param] = "missing"
        bad_parent = {**parent_params, rtype.parent.name_param: "gone"}
        r = await plane.client.put(rtype.item_path.format(**bad_parent), params=_api(rtype), json=_example(rtype))
        assert r.status_code == 404 and r.json()["error"]["code"] == "ParentResourceNotFound", r.text


def _ancestors(rtype: ResourceType) -> list[ResourceType]:
    chain = []
    while rtype.parent is not None:
        rtype = rtype.parent
        chain.append(rtype)
    return chain


async def test_deleting_a_parent_deletes_its_children_and_extensions(plane: Plane) -> None:
    widgets = plane.types.get(f"{NAMESPACE}/widgets")
    parts = plane.types.get(f"{NAMESPACE}/widgets/parts")
    addons = plane.types.get(f"{EXTENSIONS}/addons")
    assert widgets and parts and addons
    widget_params, widget = await _create(plane, widgets)
    _, part = await _create(plane, parts, widget_params)
    _, addon = await _create(plane, addons, widget_params)
    assert part.startswith(widget + "/parts/") and addon.startswith(widget + f"/providers/{EXTENSIONS}/addons/")
    listed = await plane.client.get(f"/subscriptions/{plane.subscription}/resources", params=RG_API)
    ids = {x["id"] for x in listed.json()["value"]}
    assert widget in ids and part not in ids and addon not in ids  # as ARM: top-level resources only
    r = await plane.client.delete(widget, params=_api(widgets))
    assert (await _wait(plane, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    for path, rtype in ((widget, widgets), (part, parts), (addon, addons)):
        r = await plane.client.get(path, params=_api(rtype))
        assert r.status_code == 404, (path, r.text)
    r = await plane.client.get(f"/subscriptions/{plane.subscription}/resources", params=RG_API)
    assert not [x for x in r.json()["value"] if x["id"].lower().startswith(widget.lower())]


async def test_deleting_a_group_deletes_nested_resources(plane: Plane) -> None:
    widgets = plane.types.get(f"{NAMESPACE}/widgets")
    parts = plane.types.get(f"{NAMESPACE}/widgets/parts")
    assert widgets and parts
    widget_params, _ = await _create(plane, widgets)
    _, part = await _create(plane, parts, widget_params)
    group = f"/subscriptions/{plane.subscription}/resourceGroups/{widget_params['resourceGroupName']}"
    r = await plane.client.delete(group, params=RG_API)
    assert r.status_code == 202
    deadline = time.monotonic() + OPERATION_DEADLINE
    while (await plane.client.get(group, params=RG_API)).status_code != 404:
        assert time.monotonic() < deadline, "group still there"
        await asyncio.sleep(0.05)
    assert (await plane.client.get(part, params=_api(parts))).status_code == 404


async def test_a_behaviour_enforces_a_rule_read_from_the_store(plane: Plane) -> None:
    """Quota widgets are limited per subscription by their behaviour, counting in the write's own transaction."""
    widgets = plane.types.get(f"{NAMESPACE}/quotaWidgets")
    assert widgets is not None
    r = await plane.client.get(
        f"/subscriptions/{plane.subscription}/providers/{NAMESPACE}/quotaWidgets", params=_api(widgets)
    )
    for item in r.json()["value"]:  # what earlier tests left
        d = await plane.client.delete(item["id"], params=_api(widgets))
        await _wait(plane, d.headers["Azure-AsyncOperation"])
    container = await _container(plane, widgets)
    for _ in range(WIDGET_LIMIT):
        await _create(plane, widgets, container)
    path = widgets.item_path.format(**container, resourceName="one-too-many")
    r = await plane.client.put(path, params=_api(widgets), json=_example(widgets))
    assert r.status_code == 409 and r.json()["error"]["code"] == "WidgetLimitReached", r.text
    assert (await plane.client.get(path, params=_api(widgets))).status_code == 404


async def _report(plane: Plane, path: str, **properties: str) -> None:
    """Play the cluster a gated widget waits on: write its report row, as an agent's report route would."""
    async with plane.db.transaction() as session:
        await put_reports(session, [Report(path.lower(), GATE_REPORTER, dict(properties), datetime.now(UTC))])


async def _status(plane: Plane, url: str) -> str:
    r = await plane.client.get(url)
    assert r.status_code == 200, r.text
    return str(r.json()["status"])


async def _gated(plane: Plane, **properties: str) -> tuple[ResourceType, str, httpx.Response]:
    gated = plane.types.get(f"{NAMESPACE}/gatedWidgets")
    assert gated is not None
    params = {**await _container(plane, gated), "resourceName": f"g{uuid.uuid4().hex[:8]}"}
    path = gated.item_path.format(**params)
    r = await plane.client.put(path, params=_api(gated), json={"location": "eastus", "properties": properties})
    assert r.status_code == 201, r.text
    return gated, path, r


async def test_an_operation_waits_for_what_the_cluster_reports(plane: Plane) -> None:
    """A behaviour raising Pending keeps its operation InProgress (not failed, however long) until the report."""
    gated, path, r = await _gated(plane, waitFor="report")
    monitor = r.headers["Azure-AsyncOperation"]
    await asyncio.sleep(0.5)  # ten retries' worth: more than MAX_ATTEMPTS runs, none counted as a failure
    assert await _status(plane, monitor) == "InProgress"
    assert (await plane.client.get(path, params=_api(gated))).json()["properties"]["provisioningState"] == (
        "Provisioning"
    )
    await _report(plane, path, outcome="installed", state="Succeeded")
    assert (await _wait(plane, monitor))["status"] == "Succeeded"

    _, failing, r = await _gated(plane, waitFor="report")
    await _report(plane, failing, outcome="failed")
    status = await _wait(plane, r.headers["Azure-AsyncOperation"])
    assert status["status"] == "Failed" and status["error"]["code"] == "ReportedFailure", status
    assert (await plane.client.get(failing, params=_api(gated))).json()["properties"]["provisioningState"] == "Failed"


async def test_provisioning_state_can_follow_the_report(plane: Plane) -> None:
    gated, path, r = await _gated(plane)
    assert (await _wait(plane, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    await _report(plane, path, state="Failed")  # the cluster later failed to upgrade it
    assert (await plane.client.get(path, params=_api(gated))).json()["properties"]["provisioningState"] == "Failed"


async def test_a_deletion_waits_for_the_cluster_unless_forced(plane: Plane) -> None:
    gated, path, r = await _gated(plane, waitFor="report")
    await _report(plane, path, outcome="installed")
    await _wait(plane, r.headers["Azure-AsyncOperation"])
    d = await plane.client.delete(path, params=_api(gated))
    assert d.status_code == 202, d.text
    await asyncio.sleep(0.3)
    assert await _status(plane, d.headers["Azure-AsyncOperation"]) == "InProgress"
    shown = (await plane.client.get(path, params=_api(gated))).json()["properties"]["provisioningState"]
    assert shown == "Deleting"
    await _report(plane, path, outcome="released")
    assert (await _wait(plane, d.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    assert (await plane.client.get(path, params=_api(gated))).status_code == 404

    _, stuck, r = await _gated(plane, waitFor="report")
    await _report(plane, stuck, outcome="installed")
    await _wait(plane, r.headers["Azure-AsyncOperation"])
    d = await plane.client.delete(stuck, params={**_api(gated), "forceDelete": "true"})
    assert (await _wait(plane, d.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    assert (await plane.client.get(stuck, params=_api(gated))).status_code == 404


async def test_a_behaviour_refuses_a_delete_before_anything_changes(plane: Plane) -> None:
    gated, path, r = await _gated(plane, locked="yes")
    await _wait(plane, r.headers["Azure-AsyncOperation"])
    d = await plane.client.delete(path, params=_api(gated))
    assert d.status_code == 409 and d.json()["error"]["code"] == "WidgetLocked", d.text
    body = (await plane.client.get(path, params=_api(gated))).json()
    assert body["properties"]["provisioningState"] == "Succeeded"


async def test_force_delete_is_refused_by_types_that_do_not_take_it(plane: Plane) -> None:
    widgets = plane.types.get(f"{NAMESPACE}/widgets")
    assert widgets is not None and not widgets.force_delete
    _, path = await _create(plane, widgets)
    r = await plane.client.delete(path, params={**_api(widgets), "forceDelete": "true"})
    # Arc's types without the parameter ignore it; Halyard's pipeline never sees it for them (not in the route).
    assert r.status_code == 202, r.text
    await _wait(plane, r.headers["Azure-AsyncOperation"])


async def test_provider_listings_follow_the_declarations(plane: Plane) -> None:
    r = await plane.client.get(f"/subscriptions/{plane.subscription}/providers/{NAMESPACE}", params=RG_API)
    listed = {t["resourceType"] for t in r.json()["resourceTypes"]}
    assert {"widgets", "widgets/parts", "subWidgets", "tenantWidgets"} <= listed
    r = await plane.client.get(f"/providers/{NAMESPACE}/operations", params={"api-version": "2026-01-01"})
    names = {o["name"] for o in r.json()["value"]}
    assert f"{NAMESPACE}/widgets/parts/delete" in names and f"{NAMESPACE}/tenantWidgets/write" in names
    r = await plane.client.get(f"/providers/{EXTENSIONS}/operations", params={"api-version": "2026-01-01"})
    names = {o["name"] for o in r.json()["value"]}
    # An RBAC prefix of its own where the declaration says so (as Arc's settings/default).
    assert "Microsoft.Kubernetes/connectedClusters/settings/write" in names and f"{EXTENSIONS}/addons/read" in names
    r = await plane.client.get("/providers/Microsoft.Kubernetes/operations", params={"api-version": "2026-05-01"})
    names = {o["name"] for o in r.json()["value"]}
    assert "Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action" in names


def test_a_new_type_without_an_example_fails_the_suite() -> None:
    """The guard itself: the suite names the file to add an example to."""
    clusters = next(t for t in _declared() if t.full_type == "Microsoft.Kubernetes/connectedClusters")
    saved = EXAMPLES.pop(clusters.key)
    try:
        with pytest.raises(AssertionError, match=r"resource_examples\.py"):
            _example(clusters)
    finally:
        EXAMPLES[clusters.key] = saved
