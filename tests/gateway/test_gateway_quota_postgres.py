"""The 5-gateways-per-subscription quota holds on PostgreSQL when creates race (replicas, concurrent requests).

Each create counts the subscription's gateways in its own transaction; without a lock two creates both count 4 and
both insert. The race is made certain, not likely: every create's transaction, once it has counted and inserted,
waits before committing until all the others have done the same (or, as when the quota lock makes them wait for
it, a moment has passed).
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.app import create_app
from halyard.controlplane.gateway.links import GATEWAY_TYPE_KEY
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Resource
from tests.support.inprocess import sign_in_admin
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

GW_API = {"api-version": "2024-07-31-preview"}
CREATES = 8
BARRIER_WAIT = 0.3  # seconds a create waits for the others before it commits (the lock keeps them out)


class RacingDatabase(Database):
    """Holds each gateway-inserting transaction before its commit until every racing create got there too."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.arrived = 0
        self.everyone = asyncio.Event()

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with super().transaction() as session:
            yield session
            if any(isinstance(o, Resource) and o.type_key == GATEWAY_TYPE_KEY for o in session.new):
                self.arrived += 1
                if self.arrived >= CREATES:
                    self.everyone.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.everyone.wait(), BARRIER_WAIT)


async def test_racing_creates_never_exceed_five_gateways_per_subscription(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    db = RacingDatabase(postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}"))
    app = create_app(Settings(data_dir=tmp_path, insecure_http=True), db=db)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as c:
        admin = await sign_in_admin(c, tmp_path)
        group = f"/subscriptions/{admin['subscription']}/resourceGroups/quota"
        assert (await c.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})).is_success
        gateways = f"{group}/providers/Microsoft.HybridCompute/gateways"

        async def create(i: int) -> int:
            r = await c.put(f"{gateways}/gw{i}", params=GW_API, json={"location": "eastus"})
            assert r.status_code in (201, 409), r.text
            if r.status_code == 409:
                assert r.json()["error"]["code"] == "GatewayQuotaExceeded", r.text
            return r.status_code

        statuses = await asyncio.gather(*(create(i) for i in range(CREATES)))
        listed = (await c.get(gateways, params=GW_API)).json()["value"]
        assert sorted(statuses) == [201] * 5 + [409] * (CREATES - 5)
        assert len(listed) == 5
