"""Fixtures shared by the whole suite. Every process a test starts is stopped by the fixture that started it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.isolation import isolate
from tests.support.postgres import BACKENDS, PostgresServer
from tests.support.processes import ServerProcess, free_port


def pytest_configure(config: pytest.Config) -> None:
    """Before any test and any xdist worker starts: nothing the session does can leave this machine
    (tests/support/isolation.py)."""
    isolate()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One control plane on SQLite for the session (tests create their own resource groups)."""
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data", free_port()).start()
    yield proc
    proc.stop()


@pytest.fixture
def fresh_server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A control plane of the test's own, for tests that restart, kill or reconfigure it."""
    proc = ServerProcess(tmp_path / "data", free_port())
    yield proc
    proc.stop()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL (fsync on, 127.0.0.1 only) for the session; fails loudly when it is not installed."""
    pg = PostgresServer().start()
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def postgres(postgres_server: PostgresServer) -> str:
    """The URL (``postgresql+asyncpg://...``) of a database of the session's PostgreSQL."""
    return postgres_server.create_database("halyard")


@pytest.fixture(scope="session", params=BACKENDS)
def db_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A control plane per storage backend for the session: a test using it runs on SQLite and on PostgreSQL."""
    data_dir = tmp_path_factory.mktemp(f"server-{request.param}") / "data"
    url = None
    if request.param == "postgres":
        # A database of its own each time: a worker of a parallel run may set this fixture up twice, and a second
        # server's new data key cannot open what the first sealed into a shared database.
        url = request.getfixturevalue("postgres_server").create_database(
            f"halyard_{data_dir.parent.name.replace('-', '_')}"
        )
    proc = ServerProcess(data_dir, free_port(), database_url=url).start()
    yield proc
    proc.stop()
