"""Writing reports: each reporter replaces its own row of a resource whole, with no read first."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.store.models import ResourceReport


@dataclass(frozen=True)
class Report:
    id_key: str
    reporter: str
    properties: dict[str, Any]
    at: dt.datetime


async def put_reports(session: AsyncSession, reports: Sequence[Report]) -> None:
    """Insert or replace these reports in one statement (an upsert: two replicas' first reports cannot collide)."""
    if not reports:
        return
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(ResourceReport).values(
        [{"id_key": r.id_key, "reporter": r.reporter, "properties": r.properties, "reported_at": r.at} for r in reports]
    )
    statement = statement.on_conflict_do_update(
        index_elements=[ResourceReport.id_key, ResourceReport.reporter],
        set_={"properties": statement.excluded.properties, "reported_at": statement.excluded.reported_at},
    )
    await session.execute(statement)
