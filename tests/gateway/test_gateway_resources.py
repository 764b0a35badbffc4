"""Microsoft.HybridCompute gateways and the clusters' settings/default link, in process (the pipeline's contract for
these types is tests/api/test_resource_contract.py's; this is what is theirs alone)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from halyard.controlplane.app import create_app
from halyard.core.settings import Settings
from tests.api.helpers import cluster_body
from tests.support.inprocess import sign_in_admin

GW_API = {"api-version": "2024-07-31-preview"}
SDK_API = {"api-version": "2026-07-15"}
CC_API = {"api-version": "2024-07-01-preview"}
RG_API = {"api-version": "2024-11-01"}


class Plane:
    def __init__(self, client: httpx.AsyncClient, subscription: str) -> None:
        self.c = client
        self.sub = subscription

    async def group(self) -> str:
        path = f"/subscriptions/{self.sub}/resourceGroups/rg-{uuid.uuid4().hex[:8]}"
        assert (await self.c.put(path, params=RG_API, json={"location": "eastus"})).status_code == 201
        return path

    async def done(self, r: httpx.Response) -> dict[str, Any]:
        assert r.status_code in (200, 201), r.text
        url = r.headers["Azure-AsyncOperation"]
        deadline = time.monotonic() + 20
        while (status := (await self.c.get(url)).json())["status"] == "InProgress":
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        assert status["status"] == "Succeeded", status
        body: dict[str, Any] = r.json()
        return body

    async def gateway(self, group: str, name: str, **properties: Any) -> dict[str, Any]:
        path = f"{group}/providers/Microsoft.HybridCompute/gateways/{name}"
        await self.done(await self.c.put(path, params=GW_API, json={"location": "eastus", "properties": properties}))
        r = await self.c.get(path, params=GW_API)
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    async def cluster(self, group: str, **properties: Any) -> str:
        path = f"{group}/providers/Microsoft.Kubernetes/connectedClusters/cc-{uuid.uuid4().hex[:6]}"
        await self.done(await self.c.put(path, params=CC_API, json=cluster_body(**properties)))
        return path


@pytest.fixture(scope="module")
async def plane(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Plane]:
    data = tmp_path_factory.mktemp("gateways")
    app = create_app(Settings(data_dir=data, insecure_http=True, domain="example.test"))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        admin = await sign_in_admin(c, Path(data))
        yield Plane(c, str(admin["subscription"]))


async def test_a_gateway_is_created_in_seconds_with_its_one_endpoint(plane: Plane) -> None:
    group = await plane.group()
    gw = await plane.gateway(group, "gw1")
    props = gw["properties"]
    assert props["provisioningState"] == "Succeeded" and props["gatewayType"] == "Public"
    assert props["allowedFeatures"] == ["*"]
    assert props["gatewayEndpoint"].endswith(".gw.example.test") and uuid.UUID(props["gatewayId"])
    # The id and endpoint survive an update (az arcgateway update is GET then PUT of the body).
    body = {"location": "eastus", "properties": {**props, "allowedFeatures": ["cluster-connect"]}}
    again = await plane.done(await plane.c.put(gw["id"], params=GW_API, json=body))
    assert again["properties"]["gatewayEndpoint"] == props["gatewayEndpoint"]
    assert again["properties"]["allowedFeatures"] == ["cluster-connect"]
    r = await plane.c.patch(gw["id"], params=SDK_API, json={"properties": {"allowedFeatures": ["bogus"]}})
    assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidAllowedFeatures", r.text
    r = await plane.c.patch(gw["id"], params=SDK_API, json={"tags": {"a": "b"}})
    assert r.status_code == 200 and r.json()["tags"] == {"a": "b"}  # PATCH is synchronous, as the SDK expects


async def test_the_sixth_gateway_of_a_subscription_is_refused_and_nothing_is_stored(plane: Plane) -> None:
    group = await plane.group()
    listed = await plane.c.get(f"/subscriptions/{plane.sub}/providers/Microsoft.HybridCompute/gateways", params=GW_API)
    for i in range(5 - len(listed.json()["value"])):
        await plane.gateway(group, f"q{i}")
    path = f"{group}/providers/Microsoft.HybridCompute/gateways/sixth"
    r = await plane.c.put(path, params=GW_API, json={"location": "eastus"})
    assert r.status_code == 409 and r.json()["error"]["code"] == "GatewayQuotaExceeded", r.text
    assert "at most 5" in r.json()["error"]["message"]
    assert (await plane.c.get(path, params=GW_API)).status_code == 404
    for item in (await plane.c.get(f"{group}/providers/Microsoft.HybridCompute/gateways", params=GW_API)).json()[
        "value"
    ]:
        r = await plane.c.delete(item["id"], params=SDK_API)
        assert r.status_code == 202  # hybridcompute 10.0.0 accepts 202/204 only
        await plane.done(httpx.Response(200, json={}, headers=r.headers))


async def test_settings_default_links_the_cluster_and_the_cluster_shows_it(plane: Plane) -> None:
    group = await plane.group()
    gw = await plane.gateway(group, "linkme")
    cluster = await plane.cluster(group)
    settings = f"{cluster}/providers/Microsoft.HybridCompute/settings/default"
    body = {"properties": {"gatewayProperties": {"gatewayResourceId": gw["id"]}}}
    linked = await plane.done(await plane.c.put(settings, params=GW_API, json=body))
    assert linked["properties"]["gatewayProperties"]["gatewayResourceId"] == gw["id"]
    assert linked["properties"]["tenantId"]
    shown = (await plane.c.get(cluster, params=CC_API)).json()["properties"]["gateway"]
    assert shown == {"enabled": True, "resourceId": gw["id"]}
    # Only 'default' exists.
    r = await plane.c.put(cluster + "/providers/Microsoft.HybridCompute/settings/other", params=GW_API, json=body)
    assert r.status_code == 400
    # The newest CLI's shape: PATCH the cluster's gateway.
    r = await plane.c.patch(cluster, params=CC_API, json={"properties": {"gateway": {"enabled": False}}})
    assert r.status_code in (200, 202), r.text
    assert (await plane.c.get(cluster, params=CC_API)).json()["properties"]["gateway"] == {"enabled": False}
    r = await plane.c.patch(cluster, params=CC_API, json={"properties": {"gateway": {"resourceId": gw["id"]}}})
    assert r.status_code in (200, 202), r.text
    assert (await plane.c.get(cluster, params=CC_API)).json()["properties"]["gateway"]["enabled"] is True


async def test_bad_links_are_refused_with_one_clear_error_and_change_nothing(plane: Plane) -> None:
    group = await plane.group()
    cluster = await plane.cluster(group)
    settings = f"{cluster}/providers/Microsoft.HybridCompute/settings/default"

    async def link(gateway_id: str) -> dict[str, Any]:
        body = {"properties": {"gatewayProperties": {"gatewayResourceId": gateway_id}}}
        r = await plane.c.put(settings, params=GW_API, json=body)
        assert r.status_code in (400, 404), r.text
        error: dict[str, Any] = r.json()["error"]
        return error

    assert (await link("/subscriptions/nope/gateways/x"))["code"] == "InvalidGatewayResourceId"
    missing = f"/subscriptions/{plane.sub}/resourceGroups/g/providers/Microsoft.HybridCompute/gateways/none"
    assert (await link(missing))["code"] == "GatewayNotFound"
    assert (await plane.c.get(settings, params=GW_API)).status_code == 404
    assert "gateway" not in (await plane.c.get(cluster, params=CC_API)).json()["properties"]


async def test_gateway_and_private_link_together_are_refused_both_ways(plane: Plane) -> None:
    group = await plane.group()
    gw = await plane.gateway(group, "nopl")
    scope = f"{group}/providers/Microsoft.HybridCompute/privateLinkScopes/pls"
    made = await plane.c.put(scope, params={"api-version": "2025-01-13"}, json={"location": "eastus"})
    assert made.status_code in (200, 201), made.text  # private link checks the scope exists
    private = await plane.cluster(group, privateLinkState="Enabled", privateLinkScopeResourceId=scope)
    body = {"properties": {"gatewayProperties": {"gatewayResourceId": gw["id"]}}}
    r = await plane.c.put(f"{private}/providers/Microsoft.HybridCompute/settings/default", params=GW_API, json=body)
    assert r.status_code == 400 and r.json()["error"]["code"] == "GatewayWithPrivateLink", r.text

    public = await plane.cluster(group)
    await plane.done(
        await plane.c.put(f"{public}/providers/Microsoft.HybridCompute/settings/default", params=GW_API, json=body)
    )
    current = (await plane.c.get(public, params=CC_API)).json()
    current["properties"].update(privateLinkState="Enabled", privateLinkScopeResourceId=scope)
    r = await plane.c.put(public, params=CC_API, json=current)
    assert r.status_code == 400 and r.json()["error"]["code"] == "GatewayWithPrivateLink", r.text


async def test_linking_needs_the_settings_default_write_action(plane: Plane) -> None:
    r = await plane.c.get("/providers/Microsoft.HybridCompute/operations", params=GW_API)
    names = {o["name"] for o in r.json()["value"]}
    assert "Microsoft.Kubernetes/connectedClusters/settings/default/write" in names
    assert {"Microsoft.HybridCompute/gateways/read", "Microsoft.HybridCompute/gateways/write"} <= names


async def test_deleting_settings_default_unlinks_the_cluster_with_the_deletion(plane: Plane) -> None:
    group = await plane.group()
    gw = await plane.gateway(group, "unlinkme")
    cluster = await plane.cluster(group)
    settings = f"{cluster}/providers/Microsoft.HybridCompute/settings/default"
    body = {"properties": {"gatewayProperties": {"gatewayResourceId": gw["id"]}}}
    await plane.done(await plane.c.put(settings, params=GW_API, json=body))
    assert (await plane.c.get(cluster, params=CC_API)).json()["properties"]["gateway"]["enabled"] is True
    linked = (await plane.c.get(f"{gw['id']}/linkedClusters", params=GW_API)).json()["value"]
    assert [c["clusterId"] for c in linked] == [cluster.lower()]

    r = await plane.c.delete(settings, params=GW_API)
    assert r.status_code == 202, r.text
    await plane.done(httpx.Response(200, json={}, headers=r.headers))
    assert (await plane.c.get(settings, params=GW_API)).status_code == 404
    assert (await plane.c.get(cluster, params=CC_API)).json()["properties"]["gateway"] == {"enabled": False}
    # The gateway lists no linked cluster any more.
    linked = (await plane.c.get(f"{gw['id']}/linkedClusters", params=GW_API)).json()["value"]
    assert linked == []

    # Linked again, then the cluster deleted: the settings go with it and nothing is left behind.
    await plane.done(await plane.c.put(settings, params=GW_API, json=body))
    r = await plane.c.delete(cluster, params=CC_API)
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        await plane.done(httpx.Response(200, json={}, headers=r.headers))
    assert (await plane.c.get(settings, params=GW_API)).status_code == 404
