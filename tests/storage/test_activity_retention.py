"""The activity log's retention: events older than the setting are pruned (in batches), newer ones kept, by the loop
the server runs from its start."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from sqlalchemy import func, insert, select

from halyard.controlplane.activity import log
from halyard.controlplane.activity.events import Actor, event
from halyard.core.clock import ManualClock
from halyard.store import Database
from halyard.store.models import ActivityEvent

NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
CLUSTER = "/subscriptions/s1/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c"


async def _seeded(tmp_path: Path, ages_in_days: list[float]) -> Database:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'halyard.db'}")
    await db.migrate()
    actor = Actor("app", "oid", "ServicePrincipal", "t1")
    rows = []
    for i, age in enumerate(ages_in_days):
        row = event(at=NOW - dt.timedelta(days=age), correlation_id=f"c{i}", actor=actor, resource_id=CLUSTER,
                    operation_name="Microsoft.Kubernetes/connectedClusters/write", http_method="PUT",
                    status="Succeeded", status_code=200)  # fmt: skip
        rows.append({c.key: getattr(row, c.key) for c in ActivityEvent.__table__.columns})
    async with db.transaction() as session:
        await session.execute(insert(ActivityEvent), rows)
    return db


async def _ages(db: Database) -> list[str]:
    async with db.session() as session:
        return sorted((await session.scalars(select(ActivityEvent.correlation_id))).all())


async def test_prune_removes_what_is_older_than_the_cut_in_batches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(log, "PRUNE_BATCH", 2)  # three batches for five old events
    db = await _seeded(tmp_path, [1, 89.9, 90.1, 91, 200, 365, 400])
    try:
        assert await log.prune(db, NOW - dt.timedelta(days=90)) == 5
        assert await _ages(db) == ["c0", "c1"]
        assert await log.prune(db, NOW - dt.timedelta(days=90)) == 0
    finally:
        await db.close()


async def test_the_servers_loop_prunes_at_start_with_the_setting(tmp_path: Path) -> None:
    db = await _seeded(tmp_path, [0.5, 2, 3])
    task = asyncio.create_task(log.keep_retention(db, ManualClock(NOW), retention_days=1))
    try:
        for _ in range(200):
            async with db.session() as session:
                if await session.scalar(select(func.count()).select_from(ActivityEvent)) == 1:
                    break
            await asyncio.sleep(0.01)
        assert await _ages(db) == ["c0"]
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await db.close()
