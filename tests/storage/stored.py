"""What is on disk: the storage tests open the server's database directly to check what the API cannot show."""

from __future__ import annotations

from typing import Any

from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import text

from halyard.store import Database
from halyard.store.database import MIGRATIONS
from tests.support.processes import ServerProcess


def database_url(server: ServerProcess) -> str:
    """The URL the server stores into: its ``--database-url`` or the SQLite file in its data directory."""
    return server.database_url or f"sqlite+aiosqlite:///{server.data_dir / 'halyard.db'}"


def head_revision() -> str:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head


async def query(server: ServerProcess, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of one read-only statement against the server's database."""
    db = Database(database_url(server))
    try:
        async with db.session() as session:
            return [tuple(row) for row in (await session.execute(text(sql), params)).all()]
    finally:
        await db.close()


async def execute(server: ServerProcess, *statements: str) -> None:
    """Statements run in one transaction against the server's database (the test's own changes to the store)."""
    db = Database(database_url(server))
    try:
        async with db.transaction() as session:
            for statement in statements:
                await session.execute(text(statement))
    finally:
        await db.close()


async def integrity_problems(server: ServerProcess) -> list[str]:
    """The backend's own consistency checks (SQLite: integrity and foreign keys; PostgreSQL: amcheck-free basics)."""
    problems: list[str] = []
    if database_url(server).startswith("sqlite"):
        integrity = await query(server, "PRAGMA integrity_check")
        if integrity != [("ok",)]:
            problems += [str(r) for r in integrity]
        problems += [f"foreign key: {r}" for r in await query(server, "PRAGMA foreign_key_check")]
    orphans = await query(
        server,
        "SELECT r.id FROM resources r LEFT JOIN resource_groups g "
        "ON g.subscription_id = r.subscription_id AND g.name_key = r.group_key WHERE g.name_key IS NULL",
    )
    problems += [f"resource without its group: {r[0]}" for r in orphans]
    # A resource still in a transitional state must have an operation that will finish it.
    stuck = await query(
        server,
        "SELECT r.id, r.provisioning_state FROM resources r WHERE r.provisioning_state NOT IN "
        "('Succeeded', 'Failed', 'Canceled') AND NOT EXISTS (SELECT 1 FROM operations o "
        "WHERE lower(o.target_id) = r.id_key AND o.status = 'InProgress')",
    )
    problems += [f"resource {r[0]} left {r[1]} with no operation to finish it" for r in stuck]
    return problems
