"""SIGKILL in the middle of a burst of concurrent PUTs: every acknowledged write survives, the store stays consistent,
and operations the dead process left InProgress are finished by the next one."""

from __future__ import annotations

import asyncio
import signal
import time
from dataclasses import dataclass, field

import httpx
import pytest

from tests.storage.arm import (
    CLUSTERS,
    NAMESPACE,
    RESOURCES,
    agent_public_key,
    cluster_body,
    cluster_path,
    group_path,
    list_all,
)
from tests.storage.stored import execute, integrity_problems, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

WRITERS = 8
KILL_AFTER = 80  # acknowledged cluster PUTs before the kill; the writers keep going until the server is gone
LEASE_SECONDS = 15  # halyard.controlplane.arm.operations.LEASE

# Every tenth cluster's provisioning operation is born claimed (for an hour), as if a worker had taken it the moment
# it was written and were still running it at the kill, however fast the machine finishes the others. After the kill
# its lease is set to what the dead worker would have left (at most LEASE from now). What the restarted process must
# do with such leftovers (on SQLite release the dead process's leases at once; on PostgreSQL wait for them to lapse)
# is then the same as for an operation the kill really interrupted.
HOLD = {
    "sqlite": [
        "CREATE TRIGGER test_hold_operation AFTER INSERT ON operations WHEN NEW.target_id LIKE '%0' BEGIN "
        "UPDATE operations SET lease_until = strftime('%Y-%m-%d %H:%M:%f000', 'now', '+1 hour') WHERE id = NEW.id; END"
    ],
    "postgres": [
        "CREATE FUNCTION test_hold_operation() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "NEW.lease_until := now() + interval '1 hour'; RETURN NEW; END $$",
        "CREATE TRIGGER test_hold_operation BEFORE INSERT ON operations FOR EACH ROW "
        "WHEN (NEW.target_id LIKE '%0') EXECUTE FUNCTION test_hold_operation()",
    ],
}
UNHOLD = {
    "sqlite": [
        "DROP TRIGGER test_hold_operation",
        "UPDATE operations SET lease_until = strftime('%Y-%m-%d %H:%M:%f000', 'now', "
        f"'+{LEASE_SECONDS} seconds') WHERE status = 'InProgress' AND target_id LIKE '%0'",
    ],
    "postgres": [
        "DROP TRIGGER test_hold_operation ON operations",
        "DROP FUNCTION test_hold_operation()",
        f"UPDATE operations SET lease_until = now() + interval '{LEASE_SECONDS} seconds' "
        "WHERE status = 'InProgress' AND target_id LIKE '%0'",
    ],
}


@dataclass
class Acknowledged:
    groups: set[str] = field(default_factory=set)
    clusters: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)  # (group, name) -> tags sent
    cut_off: int = 0  # writers that lost their connection to the kill
    unexpected: list[str] = field(default_factory=list)


async def _writer(client: httpx.AsyncClient, sub: str, key: str, writer: int, acked: Acknowledged) -> None:
    """Alternate a new group and a new cluster in it, recording only what the server answered 2xx to."""
    seq = 0
    while True:
        seq += 1
        group, name = f"w{writer}-g{seq}", f"w{writer}-c{seq}"
        tags = {"writer": str(writer), "seq": str(seq)}
        try:
            response = await client.put(
                group_path(sub, group), params={"api-version": RESOURCES}, json={"location": "eastus"}
            )
            if not response.is_success:
                acked.unexpected.append(f"group {group}: {response.status_code} {response.text}")
                return
            acked.groups.add(group)
            response = await client.put(
                cluster_path(sub, group, name), params={"api-version": CLUSTERS}, json=cluster_body(key, tags)
            )
            if not response.is_success:
                acked.unexpected.append(f"cluster {name}: {response.status_code} {response.text}")
                return
            acked.clusters[(group, name)] = tags
        except httpx.TransportError:
            acked.cut_off += 1
            return


async def _burst_then_kill(server: ServerProcess, key: str) -> Acknowledged:
    sub = server.admin["subscription"]
    acked = Acknowledged()
    headers = {"Authorization": f"Bearer {server.token()}"}
    limits = httpx.Limits(max_connections=WRITERS)
    async with httpx.AsyncClient(base_url=server.url, verify=server.ca, headers=headers, limits=limits) as client:
        writers = [asyncio.create_task(_writer(client, sub, key, w, acked)) for w in range(WRITERS)]
        deadline = time.monotonic() + 60
        while len(acked.clusters) < KILL_AFTER and not any(w.done() for w in writers):
            assert time.monotonic() < deadline, f"only {len(acked.clusters)} PUTs acknowledged in 60s"
            await asyncio.sleep(0.005)
        await asyncio.to_thread(server.stop, signal.SIGKILL)
        await asyncio.wait_for(asyncio.gather(*writers), 30)
    assert acked.unexpected == []
    assert acked.cut_off == WRITERS, "every writer should have been cut off by the kill, mid-burst"
    return acked


async def _wait_all_succeeded(server: ServerProcess, client: httpx.Client, sub: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while True:
        clusters, _ = list_all(client, f"/subscriptions/{sub}/providers/{NAMESPACE}/connectedClusters", top=1000)
        pending = [c["name"] for c in clusters if c["properties"]["provisioningState"] != "Succeeded"]
        running = await query(server, "SELECT count(*) FROM operations WHERE status = 'InProgress'")
        if not pending and running == [(0,)]:
            return
        assert time.monotonic() < deadline, f"not provisioned {timeout}s after restart: {pending[:10]}, {running}"
        await asyncio.sleep(0.2)


async def test_sigkill_mid_burst_keeps_every_acknowledged_write(fresh_db_server: ServerProcess) -> None:
    server = fresh_db_server.start()
    backend = "postgres" if server.database_url else "sqlite"
    sub = server.admin["subscription"]
    key = agent_public_key()
    await execute(server, *HOLD[backend])
    acked = await _burst_then_kill(server, key)
    await execute(server, *UNHOLD[backend])

    # The database as the dead process left it: consistent, and with work still to finish.
    assert await integrity_problems(server) == []
    half_written = await query(
        server,
        "SELECT r.id FROM resources r WHERE NOT EXISTS "
        "(SELECT 1 FROM operations o WHERE lower(o.target_id) = r.id_key)",
    )
    assert half_written == [], "a resource row was committed without the operation written in its transaction"
    held = {(group, name) for group, name in acked.clusters if name.endswith("0")}
    assert held, f"no cluster PUT held an operation: {sorted(acked.clusters)[:10]}"
    left = await query(server, "SELECT target_id FROM operations WHERE status = 'InProgress'")
    in_progress = {target.lower() for (target,) in left}
    unfinished = [c for c in sorted(held) if cluster_path(sub, *c).lower() not in in_progress]
    assert not unfinished, f"held operations were finished before the kill: {unfinished}"

    server.start()
    with server.client() as client:
        for group in sorted(acked.groups):
            got = client.get(group_path(sub, group), params={"api-version": RESOURCES})
            assert got.status_code == 200, f"acknowledged group {group} lost: {got.text}"
        for (group, name), tags in sorted(acked.clusters.items()):
            got = client.get(cluster_path(sub, group, name), params={"api-version": CLUSTERS})
            assert got.status_code == 200, f"acknowledged cluster {group}/{name} lost: {got.text}"
            assert got.json()["tags"] == tags
            assert got.json()["properties"]["agentPublicKeyCertificate"] == key
        await _wait_all_succeeded(server, client, sub)
        provisioned = client.get(cluster_path(sub, *min(acked.clusters)), params={"api-version": CLUSTERS}).json()
        assert provisioned["identity"]["principalId"]
    assert await integrity_problems(server) == []
