"""Several replicas on one PostgreSQL database, as docs/operations.md deploys them: started together on an empty
database they bootstrap once, any replica serves what another wrote, with tokens any of them issued, and a replica
without the shared data key refuses to start."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from tests.storage.arm import CLUSTERS, agent_public_key, cluster_path, put_cluster, put_group, wait_async_operation
from tests.storage.replicas import replicas_of
from tests.storage.stored import query
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
REPLICAS = 3


def _start(replica: ServerProcess, errors: list[BaseException]) -> None:
    try:
        replica.start(60)
    except FileNotFoundError:
        pass  # only the replica that bootstrapped writes admin.json; readiness was already checked
    except BaseException as exc:
        errors.append(exc)


async def test_replicas_started_together_bootstrap_once_and_share_everything(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    replicas = replicas_of(url, tmp_path, REPLICAS)
    try:
        errors: list[BaseException] = []
        await asyncio.gather(*(asyncio.to_thread(_start, r, errors) for r in replicas))
        assert errors == [], [str(e)[-2000:] for e in errors]
        bootstrapped = [r for r in replicas if r.admin]
        assert len(bootstrapped) == 1, "exactly one replica bootstraps the empty database"
        for r in replicas:
            r.admin = bootstrapped[0].admin
        assert await query(replicas[0], "SELECT count(*) FROM tenants") == [(1,)]

        sub = replicas[0].admin["subscription"]
        token = replicas[1].token()  # issued by one replica, accepted by all
        clients = [r.client(token) for r in replicas]
        try:
            put_group(clients[0], sub, "shared")
            created = put_cluster(clients[1], sub, "shared", "c1", agent_public_key())
            assert created.status_code == 201, created.text
            assert wait_async_operation(clients[2], created)["status"] == "Succeeded"
            for client in clients:
                got = client.get(cluster_path(sub, "shared", "c1"), params={"api-version": CLUSTERS})
                assert got.status_code == 200 and got.json()["properties"]["provisioningState"] == "Succeeded"
        finally:
            for client in clients:
                client.close()

        stranger = ServerProcess(tmp_path / "stranger", free_port(), database_url=url,
                                 env={"HALYARD_DATA_KEY": Fernet.generate_key().decode()})  # fmt: skip
        replicas.append(stranger)
        with pytest.raises(RuntimeError, match="does not open with this data key"):
            stranger.start(60)
    finally:
        for r in replicas:
            r.stop()
