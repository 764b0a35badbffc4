"""The region move's server side (in process): ``snapshotConfiguration`` saves a cluster's configuration resources with
their protected settings sealed in the store, ``restoreConfiguration`` recreates them under another cluster through
the pipeline; both are authorised (a reader cannot snapshot; restoring needs the right to snapshot the source, so a
principal cannot pull another cluster's secrets onto a cluster it controls) and audited without secrets."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from halyard.controlplane.app import create_app
from halyard.controlplane.arm.resourcetypes import Placement
from halyard.controlplane.configuration.extensions import ExtensionBehaviour
from halyard.controlplane.configuration.snapshots import configuration_types
from halyard.controlplane.plane import TypeServices
from halyard.core.settings import Settings
from halyard.store.models import Resource
from tests.api.helpers import cluster_body
from tests.api.resource_examples import play_agents, play_agents_started
from tests.api.throwaway_types import declare_with_throwaways
from tests.support.inprocess import secret_token, sign_in_admin

pytestmark = pytest.mark.e2e
EXT_API = {"api-version": "2025-03-01"}
MOVE_API = {"api-version": "2026-01-01"}
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
SECRET = "sealed-" + uuid.uuid4().hex


class Plane:
    def __init__(self, client: httpx.AsyncClient, admin: dict[str, Any], app: Any, transport: Any) -> None:
        self.c, self.admin, self.app, self.transport = client, admin, app, transport

    @property
    def plane(self) -> Any:
        return self.app.state.plane

    def group(self, name: str) -> str:
        return f"/subscriptions/{self.admin['subscription']}/resourceGroups/{name}"

    async def principal(self, role: str, scope: str) -> httpx.AsyncClient:
        r = await self.c.post(
            "/providers/Halyard.Directory/servicePrincipals",
            params={"api-version": "2026-01-01"},
            json={"displayName": f"sp-{uuid.uuid4().hex[:8]}"},
        )
        sp = r.json()
        r = await self.c.put(
            f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            json={"properties": {"roleDefinitionId": role, "principalId": sp["id"]}},
        )
        assert r.status_code == 201, r.text
        client = httpx.AsyncClient(transport=self.transport, base_url="http://t")
        token = await secret_token(client, self.admin, sp["appId"], sp["password"])
        client.headers["Authorization"] = f"Bearer {token}"
        return client

    async def finished(self, url: str, path: str) -> dict[str, Any]:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            body: dict[str, Any] = (await self.c.get(url)).json()
            if body["status"] != "InProgress":
                return body
            await play_agents(self.plane.db, self.plane.types, path)
            await asyncio.sleep(0.05)
        raise AssertionError(f"{url} still InProgress")

    async def cluster(self, group: str, name: str) -> str:
        r = await self.c.put(self.group(group), params={"api-version": "2024-11-01"}, json={"location": "eastus"})
        assert r.status_code in (200, 201), r.text
        path = f"{self.group(group)}/providers/Microsoft.Kubernetes/connectedClusters/{name}"
        r = await self.c.put(path, params={"api-version": "2024-01-01"}, json=cluster_body())
        assert (await self.finished(r.headers["Azure-AsyncOperation"], path))["status"] == "Succeeded"
        await play_agents_started(self.plane.db, path)  # its configuration is written and waited on
        return path


@pytest.fixture
async def plane(tmp_path: Path) -> AsyncIterator[Plane]:
    app = create_app(Settings(data_dir=tmp_path, insecure_http=True))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        yield Plane(c, await sign_in_admin(c, tmp_path), app, transport)


def test_every_configuration_type_under_clusters_moves() -> None:
    """Generic: each EXTENSION-placement type of Microsoft.KubernetesConfiguration under connected clusters
    (extensions, Flux and source-control configurations), nothing else."""
    unused: Any = object()
    types = declare_with_throwaways(TypeServices(settings=Settings(), clock=unused, sealer=unused, his=unused))
    moved = configuration_types(types)
    assert sorted(t.full_type for t in moved) == [
        "Microsoft.KubernetesConfiguration/extensions",
        "Microsoft.KubernetesConfiguration/fluxConfigurations",
        "Microsoft.KubernetesConfiguration/sourceControlConfigurations",
    ]
    assert all(t.placement is Placement.EXTENSION for t in moved)


async def test_snapshot_and_restore_carry_protected_settings_and_are_authorised(
    plane: Plane, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="halyard.audit")
    old = await plane.cluster("rg-old", "c1")
    ext = f"{old}/providers/Microsoft.KubernetesConfiguration/extensions/flux"
    body = {"properties": {"extensionType": "microsoft.flux", "configurationProtectedSettings": {"token": SECRET}}}
    r = await plane.c.put(ext, params=EXT_API, json=body)
    assert (await plane.finished(r.headers["Azure-AsyncOperation"], ext))["status"] == "Succeeded"

    reader = await plane.principal(READER, plane.group("rg-old"))
    refused = await reader.post(f"{old}/snapshotConfiguration", params=MOVE_API)
    assert refused.status_code == 403 and "snapshotConfiguration/action" in refused.text, refused.text
    snap = await plane.c.post(f"{old}/snapshotConfiguration", params=MOVE_API)
    assert snap.status_code == 200, snap.text
    saved = snap.json()
    assert [(r["name"], r["properties"]["provisioningState"]) for r in saved["resources"]] == [("flux", "Succeeded")]
    # Every configuration type is listed (the restore recreates each with its own api-version), whether or not the
    # cluster has any of it.
    assert {"type": "Microsoft.KubernetesConfiguration/extensions", "apiVersion": "2025-03-01"} in saved["types"]
    assert {t["type"] for t in saved["types"]} == {
        "Microsoft.KubernetesConfiguration/extensions",
        "Microsoft.KubernetesConfiguration/fluxConfigurations",
        "Microsoft.KubernetesConfiguration/sourceControlConfigurations",
    }
    assert SECRET not in snap.text

    new = await plane.cluster("rg-new", "c2")
    request = {"sourceClusterId": old}
    # Who may write the new cluster but not snapshot the old one cannot bring its secrets over.
    outsider = await plane.principal(CONTRIBUTOR, plane.group("rg-new"))
    refused = await outsider.post(f"{new}/restoreConfiguration", params=MOVE_API, json=request)
    assert refused.status_code == 403 and "snapshotConfiguration/action" in refused.text, refused.text
    r = await plane.c.post(f"{new}/restoreConfiguration", params=MOVE_API, json=request)
    assert r.status_code == 200, r.text
    [created] = r.json()["restored"]
    moved = f"{new}/providers/Microsoft.KubernetesConfiguration/extensions/flux"
    assert created["status"] == "Created" and created["id"].lower() == moved.lower()
    assert (await plane.finished(created["asyncOperation"], moved))["status"] == "Succeeded"
    async with plane.plane.db.session() as session:
        row = await session.get(Resource, moved.lower())
    behaviour = plane.plane.types.get("Microsoft.KubernetesConfiguration/extensions").behaviour
    assert isinstance(behaviour, ExtensionBehaviour)
    assert behaviour.unseal(row) == {"configurationProtectedSettings": {"token": SECRET}}

    again = await plane.c.post(f"{new}/restoreConfiguration", params=MOVE_API, json=request)
    assert [x["status"] for x in again.json()["restored"]] == ["Present"]
    done = await plane.c.post(f"{new}/restoreConfiguration", params=MOVE_API, json={**request, "discardSnapshot": True})
    assert done.status_code == 200, done.text
    gone = await plane.c.post(f"{new}/restoreConfiguration", params=MOVE_API, json=request)
    assert gone.status_code == 404 and gone.json()["error"]["code"] == "SnapshotNotFound"
    bad = await plane.c.post(f"{new}/restoreConfiguration", params=MOVE_API, json={"sourceClusterId": "nope"})
    assert bad.status_code == 400, bad.text

    audit = [r for r in caplog.records if r.name == "halyard.audit"]
    assert [r.getMessage() for r in audit] == ["configuration snapshot"] + ["configuration restore"] * 3
    assert all(SECRET not in str(r.__dict__) for r in audit)
    for client in (reader, outsider):
        await client.aclose()
