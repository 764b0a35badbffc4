"""A configuration's operation waits for its cluster's agent only so long (``extension_wait_seconds``): on a cluster
whose agent polled once and is silent now, an extension's create and delete, and a Flux configuration's create, fail
with ClusterDidNotReport (in process, a one-second wait). A cluster that never ran the agent is refused at once
instead: ``test_agent_presence.py``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import delete

from halyard.controlplane.app import create_app
from halyard.controlplane.arm.paths import ResourceId
from halyard.core.settings import Settings
from halyard.store.models import ResourceReport
from tests.api.helpers import cluster_body
from tests.api.resource_examples import play_agents_started, play_extension_manager
from tests.support.inprocess import sign_in_admin

pytestmark = pytest.mark.e2e
EXT_API = {"api-version": "2025-03-01"}
FLUX_API = {"api-version": "2025-04-01"}


@pytest.fixture
async def app_client(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, Any], Any]]:
    app = create_app(Settings(data_dir=tmp_path, insecure_http=True, extension_wait_seconds=1))
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        admin = await sign_in_admin(c, tmp_path)
        yield c, admin, app.state.plane


async def _finished(c: httpx.AsyncClient, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        body: dict[str, Any] = (await c.get(url)).json()
        if body["status"] != "InProgress":
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} still InProgress")


async def test_a_cluster_that_never_reports_fails_create_and_delete_naming_its_connectivity(
    app_client: tuple[httpx.AsyncClient, dict[str, Any], Any],
) -> None:
    c, admin, plane = app_client
    group = f"/subscriptions/{admin['subscription']}/resourceGroups/rg-deadline"
    assert (await c.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})).status_code == 201
    cluster = f"{group}/providers/Microsoft.Kubernetes/connectedClusters/silent"
    r = await c.put(cluster, params={"api-version": "2024-01-01"}, json=cluster_body())
    assert (await _finished(c, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    await play_agents_started(plane.db, cluster)  # its agents polled once, and went silent
    path = f"{cluster}/providers/Microsoft.KubernetesConfiguration/extensions/flux"
    r = await c.put(path, params=EXT_API, json={"properties": {"extensionType": "microsoft.flux"}})
    assert r.status_code == 201, r.text
    status = await _finished(c, r.headers["Azure-AsyncOperation"])
    assert status["status"] == "Failed" and status["error"]["code"] == "ClusterDidNotReport", status
    message = status["error"]["message"]
    assert "connectivityStatus is Connecting" in message and "last connected: never" in message, message
    assert (await c.get(path, params=EXT_API)).json()["properties"]["provisioningState"] == "Failed"

    d = await c.delete(path, params=EXT_API)
    status = await _finished(c, d.headers["Azure-AsyncOperation"])
    assert status["status"] == "Failed" and "forceDelete=true" in status["error"]["message"], status
    assert (await c.get(path, params=EXT_API)).json()["properties"]["provisioningState"] == "Deleting"
    # The cluster reports after all: a DELETE again completes.
    d = await c.delete(path, params=EXT_API)
    await play_extension_manager(plane.db, plane.types, path)
    assert (await _finished(c, d.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    assert (await c.get(path, params=EXT_API)).status_code == 404


async def test_a_flux_configuration_waits_for_a_silent_config_agent_as_an_extension_does(
    app_client: tuple[httpx.AsyncClient, dict[str, Any], Any],
) -> None:
    c, admin, plane = app_client
    group = f"/subscriptions/{admin['subscription']}/resourceGroups/rg-deadline-flux"
    assert (await c.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})).status_code == 201
    cluster = f"{group}/providers/Microsoft.Kubernetes/connectedClusters/silent"
    r = await c.put(cluster, params={"api-version": "2024-01-01"}, json=cluster_body())
    assert (await _finished(c, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    await play_agents_started(plane.db, cluster)
    path = f"{cluster}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/apps"
    body = {"properties": {"gitRepository": {"url": "https://127.0.0.1:9/r.git", "repositoryRef": {"branch": "main"}},
                           "kustomizations": {"k": {"path": "k"}}}}  # fmt: skip
    r = await c.put(path, params=FLUX_API, json=body)
    assert r.status_code == 201, r.text
    status = await _finished(c, r.headers["Azure-AsyncOperation"])
    assert status["status"] == "Failed" and status["error"]["code"] == "ClusterDidNotReport", status
    assert "config-agent did not report" in status["error"]["message"] and "1 s" in status["error"]["message"]
    assert (await c.get(path, params=FLUX_API)).json()["properties"]["provisioningState"] == "Failed"


async def test_on_a_cluster_that_never_ran_the_agents_a_delete_completes_at_once(
    app_client: tuple[httpx.AsyncClient, dict[str, Any], Any],
) -> None:
    """Nothing was ever installed there (resources written before the rule, or restored from a snapshot): nobody
    to wait for, for either kind."""
    c, admin, plane = app_client
    group = f"/subscriptions/{admin['subscription']}/resourceGroups/rg-never-ran"
    assert (await c.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})).status_code == 201
    cluster = f"{group}/providers/Microsoft.Kubernetes/connectedClusters/c"
    r = await c.put(cluster, params={"api-version": "2024-01-01"}, json=cluster_body())
    assert (await _finished(c, r.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
    await play_agents_started(plane.db, cluster)
    ext = f"{cluster}/providers/Microsoft.KubernetesConfiguration/extensions/flux"
    flux = f"{cluster}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/apps"
    body = {"properties": {"gitRepository": {"url": "https://127.0.0.1:9/r.git", "repositoryRef": {"branch": "main"}},
                           "kustomizations": {"k": {"path": "k"}}}}  # fmt: skip
    assert (
        await c.put(ext, params=EXT_API, json={"properties": {"extensionType": "microsoft.flux"}})
    ).status_code == 201
    assert (await c.put(flux, params=FLUX_API, json=body)).status_code == 201
    async with plane.db.transaction() as session:  # the cluster as if its agents had never polled
        await session.execute(
            delete(ResourceReport).where(
                ResourceReport.id_key == ResourceId.parse(cluster).key,
                ResourceReport.reporter.in_(["extension-manager", "config-agent"]),
            )
        )
    for path, api in ((ext, EXT_API), (flux, FLUX_API)):
        d = await c.delete(path, params=api)
        assert d.status_code in (200, 202, 204), d.text
        if d.status_code == 202:
            assert (await _finished(c, d.headers["Azure-AsyncOperation"]))["status"] == "Succeeded"
        assert (await c.get(path, params=api)).status_code == 404
    r = await c.put(ext, params=EXT_API, json={"properties": {"extensionType": "microsoft.flux"}})
    assert r.status_code == 409 and r.json()["error"]["code"] == "AgentNotRunning", r.text
