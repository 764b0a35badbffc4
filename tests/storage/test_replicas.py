"""Several replicas on one PostgreSQL database, as docs/operations.md deploys them: started together on an empty
database they bootstrap once, any replica serves what another wrote, with tokens any of them issued, and a replica
without the shared data key refuses to start."""

from __future__ import annotations

import asyncio
import shutil
import uuid
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from halyard.core.pki import ensure_server_tls
from tests.storage.arm import CLUSTERS, agent_public_key, cluster_path, put_cluster, put_group, wait_async_operation
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
    # What the operator shares between replicas: the data key, the CA (or --tls-cert), the public URL.
    shared_tls = ensure_server_tls(tmp_path / "shared-tls", "halyard", ["localhost"], ["127.0.0.1"])
    env = {"HALYARD_DATA_KEY": Fernet.generate_key().decode()}
    ports = [free_port() for _ in range(REPLICAS)]
    public_url = f"https://127.0.0.1:{ports[0]}"  # stands in for the load balancer's address
    replicas = []
    for i, port in enumerate(ports):
        data_dir = tmp_path / f"replica{i}"
        (data_dir / "tls").mkdir(parents=True)
        for path in (shared_tls.ca_cert, shared_tls.ca_key):
            shutil.copy(path, data_dir / "tls" / path.name)
        replicas.append(
            ServerProcess(data_dir, port, database_url=url, env=env, extra_args=["--public-url", public_url])
        )
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
