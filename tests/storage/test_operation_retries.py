"""The real server retries an operation whose work fails unexpectedly once its lease lapses, then gives it up: the
operation and its resource end Failed instead of Provisioning for ever. The store's own trigger stands for the
broken backend; the test lapses each lease in the store instead of waiting it out (15 s a retry)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path

import pytest

from halyard.controlplane.arm.operations import LEASE, MAX_ATTEMPTS
from tests.storage.arm import CLUSTERS, agent_public_key, cluster_path, put_cluster, put_group
from tests.storage.stored import execute, query
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

# Giving the cluster its identity writes resources.identity: refused, as a database constraint would.
BACKEND_DOWN = (
    "CREATE TRIGGER test_backend_down BEFORE UPDATE OF identity ON resources WHEN NEW.name = 'doomed' "
    "BEGIN SELECT RAISE(ABORT, 'the provisioning backend is down'); END"
)


async def _attempts(server: ServerProcess, target: str) -> tuple[int, str, dt.datetime | None]:
    (row,) = await query(
        server, "SELECT attempts, status, lease_until FROM operations WHERE lower(target_id) = :t", t=target.lower()
    )
    attempts, status, lease = row
    if isinstance(lease, str):  # SQLite hands back the stored text through a plain query
        lease = dt.datetime.fromisoformat(lease).replace(tzinfo=dt.UTC)
    return int(attempts), str(status), lease


async def test_unexpected_failures_are_retried_after_the_lease_then_given_up(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        await execute(server, BACKEND_DOWN)
        sub = server.admin["subscription"]
        target = cluster_path(sub, "retries", "doomed")
        with server.client() as client:
            put_group(client, sub, "retries")
            created = put_cluster(client, sub, "retries", "doomed", agent_public_key())
            assert created.status_code == 201, created.text

            for attempt in range(1, MAX_ATTEMPTS + 1):
                deadline = time.monotonic() + 30
                while (seen := await _attempts(server, target))[0] < attempt:
                    assert time.monotonic() < deadline, f"attempt {attempt} never ran: {seen}"
                    await asyncio.sleep(0.1)
                attempts, status, lease = seen
                assert attempts == attempt, seen
                if attempt == MAX_ATTEMPTS:
                    break
                # Failed unexpectedly: still InProgress, held by its lease (not retried at once, in a loop).
                assert status == "InProgress", seen
                assert lease is not None and lease > dt.datetime.now(dt.UTC) + LEASE / 2, seen
                await execute(
                    server,
                    "UPDATE operations SET lease_until = '2000-01-01 00:00:00.000000' "
                    f"WHERE lower(target_id) = '{target.lower()}'",
                )

            deadline = time.monotonic() + 30
            while (status := client.get(created.headers["Azure-AsyncOperation"]).json())["status"] == "InProgress":
                assert time.monotonic() < deadline, f"the operation was not given up: {status}"
                await asyncio.sleep(0.1)
            assert status["status"] == "Failed"
            assert status["error"] == {"code": "InternalServerError", "message": "The operation failed."}
            shown = client.get(target, params={"api-version": CLUSTERS}).json()
            assert shown["properties"]["provisioningState"] == "Failed"
        assert (await _attempts(server, target))[:2] == (MAX_ATTEMPTS, "Failed")
        assert server.whole_log().count('msg="operation failed"') == MAX_ATTEMPTS
    finally:
        server.stop()
