"""Replicas keep private link enforcement's facts per cluster; a scope made private on one replica is refused on
another within a second (PostgreSQL NOTIFY on commit to resources, migration 0007), and made public again, served."""

from __future__ import annotations

import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import CC_API
from tests.storage.arm import put_group
from tests.storage.replicas import replicas_of
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
HC = {"api-version": "2026-07-15"}
BOUND = 1.0  # seconds, as for role assignments (docs/security.md)


def _beat_within(replica: ServerProcess, agent: Agent, status: int, bound: float) -> None:
    start = time.monotonic()
    while True:
        r = httpx.post(f"{replica.url}/dp/v1/heartbeat", json={"agentVersion": "1.0.0"}, headers=agent.headers,
                       verify=replica.ca)  # fmt: skip
        if r.status_code == status:
            return
        assert time.monotonic() - start < bound, f"still {r.status_code} after {bound} s: {r.text}"
        time.sleep(0.02)


def _public(admin: httpx.Client, scope: str, value: str) -> None:
    r = admin.patch(scope, params=HC, json={"properties": {"publicNetworkAccess": value}})
    assert r.status_code == 200, r.text


def test_a_scope_made_private_on_one_replica_is_enforced_on_another_within_a_second(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    a, b = replicas_of(url, tmp_path, 2)
    try:
        a.start(60)
        shutil.copy(a.data_dir / "admin.json", b.data_dir / "admin.json")  # only the first replica bootstraps
        b.start(60)
        sub = a.admin["subscription"]
        put_group(a.client(), sub, "pl")
        scope = f"/subscriptions/{sub}/resourceGroups/pl/providers/Microsoft.HybridCompute/privateLinkScopes/s"
        agent = connect(a, "pl", "cc-cached")
        with a.client() as admin_a:
            r = admin_a.put(
                scope, params=HC, json={"location": "eastus", "properties": {"publicNetworkAccess": "Enabled"}}
            )
            assert r.status_code in (200, 201), r.text
            cluster = admin_a.get(agent.path, params=CC_API).json()
            cluster["properties"] |= {"privateLinkState": "Enabled", "privateLinkScopeResourceId": scope}
            body = {k: cluster[k] for k in ("location", "identity", "properties")}
            assert admin_a.put(agent.path, params=CC_API, json=body).status_code in (200, 201)
            for _ in range(3):  # served, and served again from what replica b kept
                _beat_within(b, agent, 200, BOUND)
            _public(admin_a, scope, "Disabled")
            _beat_within(b, agent, 403, BOUND)
            _public(admin_a, scope, "Enabled")
            _beat_within(b, agent, 200, BOUND)
    finally:
        b.stop()
        a.stop()
