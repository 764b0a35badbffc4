"""An operation whose work keeps failing unexpectedly is retried after its lease, then given up: the resource must
end Failed with its operation, not stay Provisioning for ever. In-process app on SQLite, with a clock we move."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from halyard.controlplane.app import create_app
from halyard.controlplane.arm.operations import LEASE, MAX_ATTEMPTS
from halyard.core.clock import ManualClock
from halyard.core.settings import Settings
from tests.storage.arm import CLUSTERS, agent_public_key, cluster_body, cluster_path, group_path
from tests.support.inprocess import sign_in_admin

pytestmark = pytest.mark.unit


async def test_unexpected_provisioning_errors_end_in_failed(tmp_path: Path) -> None:
    clock = ManualClock()
    settings = Settings(data_dir=tmp_path, insecure_http=True)
    app = create_app(settings, clock=clock)
    cp = app.state.plane
    attempts = 0

    async def broken(_resource: object, _ctx: object) -> None:
        nonlocal attempts
        attempts += 1
        raise RuntimeError("the provisioning backend is down")

    cp.types.get("Microsoft.Kubernetes/connectedClusters").behaviour.provision = broken
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        admin = await sign_in_admin(client, tmp_path)
        sub = admin["subscription"]
        await client.put(group_path(sub, "g"), params={"api-version": "2024-11-01"}, json={"location": "eastus"})
        created = await client.put(
            cluster_path(sub, "g", "c"), params={"api-version": CLUSTERS}, json=cluster_body(agent_public_key())
        )
        assert created.status_code == 201

        for attempt in range(1, MAX_ATTEMPTS + 1):
            for _ in range(3000):  # the worker runs it once its lease has lapsed
                if attempts >= attempt:
                    break
                cp.operations.kick()
                await asyncio.sleep(0.01)
            assert attempts == attempt, f"attempt {attempt} did not run after the lease lapsed ({attempts} ran)"
            clock.advance(LEASE.total_seconds() + 1)
        status = await client.get(created.headers["Azure-AsyncOperation"])
        for _ in range(500):
            if status.json()["status"] != "InProgress":
                break
            await asyncio.sleep(0.01)
            status = await client.get(created.headers["Azure-AsyncOperation"])
        assert status.json()["status"] == "Failed"
        got = await client.get(cluster_path(sub, "g", "c"), params={"api-version": CLUSTERS})
        assert got.json()["properties"]["provisioningState"] == "Failed"
        assert attempts == MAX_ATTEMPTS
