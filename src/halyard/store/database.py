"""The database handle: engine, sessions, SQLite durability settings, migrations at start."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from halyard.store.changes import CommitWatch

MIGRATIONS = Path(__file__).parent / "migrations"
# Key of the PostgreSQL advisory lock replicas take for their start-up work (any constant of our own; "HALYARD").
STARTUP_LOCK = 0x48414C59415244


async def lock_key(session: AsyncSession, key: str) -> None:
    """``Database.lock`` for code given a session but not the database (a resource type's behaviour, whose
    ``WriteContext`` holds the write's transaction): the same advisory lock, the dialect read from the session."""
    if session.get_bind().dialect.name == "sqlite":
        return
    lock_id = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": lock_id})


class Database:
    """One per process. SQLite (WAL, fully synchronous commits) or PostgreSQL via asyncpg."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {}
        if self.is_sqlite:
            # Each connection is a thread of aiosqlite's and four PRAGMAs to open: the default pool (5, overflow 10)
            # opened and closed one for about one request in eight under 16 concurrent clients (bench/arm_crud.py).
            kwargs.update(connect_args={"timeout": 30}, pool_size=20, max_overflow=20)
        else:
            # No pre-ping: it doubled the round trips of every request (bench/arm_crud.py). Connections are recycled
            # instead, and a connection PostgreSQL dropped fails one request, which the client retries.
            kwargs.update(
                pool_size=30, max_overflow=20, pool_recycle=1800
            )  # new connections cost PostgreSQL ~3 ms CPU each
        self.engine: AsyncEngine = create_async_engine(url, **kwargs)
        if self.is_sqlite:
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)
        self.changes = CommitWatch()
        self._sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=self.changes.session_class
        )
        # SQLite has one writer; queueing writers here avoids "database is locked" storms under bursts.
        self._write_lock = asyncio.Lock() if self.is_sqlite else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """A read session (no commit)."""
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed on success, rolled back on error. The commit is durable when this returns."""
        if self._write_lock is not None:
            async with self._write_lock, self._sessions() as session, session.begin():
                yield session
        else:
            async with self._sessions() as session, session.begin():
                yield session

    async def lock(self, session: AsyncSession, key: str) -> None:
        """Serialize the writers of one key (a resource id, a group) until the session's transaction ends.

        On PostgreSQL two requests creating the same name would both find nothing and both insert (one failing on the
        primary key), and two If-Match updates could both pass the ETag check: a transaction-level advisory lock on
        the key makes the second wait and then see the first's commit. SQLite's writers are already serialized.
        """
        await lock_key(session, key)

    @asynccontextmanager
    async def startup_lock(self) -> AsyncIterator[None]:
        """Hold while migrating and bootstrapping: replicas starting together on one PostgreSQL database would
        otherwise race to create the same tables (one fails to start) and bootstrap two tenants. The lock is tied to
        a connection, so a replica that dies holding it releases it. SQLite has one server process: nothing to do."""
        if self.is_sqlite:
            yield
            return
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK})
            await conn.commit()
            try:
                yield
            finally:
                await conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK})
                await conn.commit()

    async def migrate(self) -> None:
        """Bring the schema to the newest revision (Alembic), idempotently."""
        async with self.engine.begin() as conn:
            await conn.run_sync(_upgrade)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))

    async def close(self) -> None:
        await self.engine.dispose()


def _upgrade(connection: Connection) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit acknowledged to a client survives power loss and SIGKILL, not only a process crash.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
