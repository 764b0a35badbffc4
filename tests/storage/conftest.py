"""Storage fixtures: a not-yet-started control plane on a fresh database of each backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.postgres import BACKENDS, PostgresServer
from tests.support.processes import ServerProcess, free_port


@pytest.fixture(params=BACKENDS)
def fresh_db_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ServerProcess]:
    """A control plane of the test's own on an empty database (a new one in the session's PostgreSQL); not started."""
    url = None
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        url = pg.create_database(f"t_{uuid.uuid4().hex[:16]}")
    proc = ServerProcess(tmp_path / "data", free_port(), database_url=url)
    yield proc
    proc.stop()
