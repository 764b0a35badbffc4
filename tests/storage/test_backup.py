"""Backup and restore as docs/operations.md tells operators: an online copy of the database (SQLite's backup API,
``pg_dump``) plus the data directory's keys, restored elsewhere, serves what was there at backup time."""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.storage.arm import (
    CLUSTERS,
    agent_public_key,
    cluster_path,
    create_cluster,
    put_cluster,
    put_group,
)
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

# The command docs/operations.md gives for SQLite (Python's sqlite3 is there wherever Halyard runs).
SQLITE_BACKUP = "import sqlite3, sys; sqlite3.connect(sys.argv[1]).backup(d := sqlite3.connect(sys.argv[2])); d.close()"
# What a backup must hold besides the database: the data key opens the sealed signing keys and secrets.
DATA_DIR_FILES = ("data.key", "admin.json", "tls")


def test_online_backup_restores_elsewhere(
    fresh_db_server: ServerProcess, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    server = fresh_db_server.start()
    sub = server.admin["subscription"]
    key = agent_public_key()
    with server.client() as client:
        put_group(client, sub, "kept")
        create_cluster(client, sub, "kept", "before", key)

        backup = tmp_path / "backup"
        backup.mkdir()
        for name in DATA_DIR_FILES:
            source = server.data_dir / name
            (shutil.copytree if source.is_dir() else shutil.copy2)(source, backup / name)
        pg: PostgresServer | None = None
        if server.database_url:
            pg = request.getfixturevalue("postgres_server")
            dump = pg.dump(server.database_url.rsplit("/", 1)[1])
        else:
            db = str(server.data_dir / "halyard.db")
            subprocess.run([sys.executable, "-c", SQLITE_BACKUP, db, str(backup / "halyard.db")], check=True)

        assert put_cluster(client, sub, "kept", "after", key).status_code == 201  # not in the backup
    server.stop()

    url = pg.restore(dump, f"r_{uuid.uuid4().hex[:16]}") if pg else None
    restored = ServerProcess(backup, free_port(), database_url=url)
    try:
        restored.start()
        with restored.client() as client:  # the admin's secret and the signing keys came back with it
            got = client.get(cluster_path(sub, "kept", "before"), params={"api-version": CLUSTERS})
            assert got.status_code == 200 and got.json()["properties"]["provisioningState"] == "Succeeded"
            after = client.get(cluster_path(sub, "kept", "after"), params={"api-version": CLUSTERS})
            assert after.status_code == 404
            create_cluster(client, sub, "kept", "restored", agent_public_key())
    finally:
        restored.stop()
