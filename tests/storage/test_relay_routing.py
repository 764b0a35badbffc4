"""The relay's routing table on each backend: routes written and removed as tunnels come and go, the newest tunnel
wins, and a replica whose lease lapsed is never routed to (its rows are forgotten), while one that was only cut off
from the database writes its lease and routes again."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from halyard.controlplane.relay.routing import Route, Routing
from halyard.core.clock import ManualClock
from halyard.store import Database
from tests.support.postgres import BACKENDS, PostgresServer

CLUSTER = "/subscriptions/S/resourceGroups/G/providers/Microsoft.Kubernetes/connectedClusters/C"
LEASE, FORGET = 15.0, 60.0


@pytest.fixture(params=BACKENDS)
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "postgres":
        pg: PostgresServer = request.getfixturevalue("postgres_server")
        url = pg.create_database(f"t_{uuid.uuid4().hex[:16]}")
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'halyard.db'}"
    database = Database(url)
    await database.migrate()
    yield database
    await database.close()


async def _replica(db: Database, clock: ManualClock, address: str) -> Routing:
    routing = Routing(db, clock, address, lease=LEASE, renew_every=3600, forget_after=FORGET)
    await routing.start()
    return routing


async def _rows(db: Database, table: str) -> list[tuple[object, ...]]:
    async with db.session() as session:
        return [tuple(r) for r in await session.execute(text(f"SELECT * FROM {table}"))]


async def test_routes_follow_tunnels_and_the_newest_wins(db: Database) -> None:
    clock = ManualClock()
    a, b = await _replica(db, clock, "10.0.0.1:8443"), await _replica(db, clock, "10.0.0.2:8443")
    assert await b.lookup(CLUSTER) is None

    on_a = await a.register(CLUSTER)
    assert await b.lookup(CLUSTER.upper()) == Route(a.replica_id, "10.0.0.1:8443")  # ids compare as ARM's do
    assert await a.lookup(CLUSTER) is None  # a replica's own tunnels are never looked up: it holds them

    on_b = await b.register(CLUSTER)  # the agent dialled again and landed on b
    assert await a.lookup(CLUSTER) == Route(b.replica_id, "10.0.0.2:8443")
    await a.unregister(CLUSTER, on_a)  # a notices its old tunnel closed: b's route stays
    assert await a.lookup(CLUSTER) == Route(b.replica_id, "10.0.0.2:8443")

    # The agent dials b again before b has removed its previous tunnel's route: the new one stays.
    again = await b.register(CLUSTER)
    await b.unregister(CLUSTER, on_b)
    assert await a.lookup(CLUSTER) == Route(b.replica_id, "10.0.0.2:8443")
    clock.advance(LEASE + FORGET + 1)
    await a.renew()  # b was cut off long enough: a forgets its lease and route
    assert await a.lookup(CLUSTER) is None
    await b.renew()  # b is back and writes the route of the tunnel it holds, as registered
    assert await a.lookup(CLUSTER) == Route(b.replica_id, "10.0.0.2:8443")

    await b.unregister(CLUSTER, again)
    assert await a.lookup(CLUSTER) is None
    await a.stop()
    await b.stop()
    assert await _rows(db, "relay_routes") == [] and await _rows(db, "relay_replicas") == []


async def test_a_lapsed_replica_is_not_routed_to_and_is_forgotten(db: Database) -> None:
    clock = ManualClock()
    crashed, alive = await _replica(db, clock, "10.0.0.1:8443"), await _replica(db, clock, "10.0.0.2:8443")
    await crashed.register(CLUSTER)
    assert await alive.lookup(CLUSTER) is not None

    clock.advance(LEASE / 2)
    await alive.renew()  # crashed renews no more
    assert await alive.lookup(CLUSTER) is not None
    clock.advance(LEASE / 2 + 1)
    await alive.renew()
    assert await alive.lookup(CLUSTER) is None  # lapsed: ignored at once, though its rows are still there
    assert len(await _rows(db, "relay_routes")) == 1

    clock.advance(FORGET)
    await alive.renew()
    assert await _rows(db, "relay_routes") == []
    assert [r[0] for r in await _rows(db, "relay_replicas")] == [alive.replica_id]
    await alive.stop()


async def test_a_replica_cut_off_long_enough_to_be_forgotten_writes_its_routes_again(db: Database) -> None:
    clock = ManualClock()
    cut_off, other = await _replica(db, clock, "10.0.0.1:8443"), await _replica(db, clock, "10.0.0.2:8443")
    await cut_off.register(CLUSTER)
    clock.advance(LEASE + FORGET + 1)
    await other.renew()  # forgets cut_off and its route
    assert await other.lookup(CLUSTER) is None

    await cut_off.renew()  # back: its lease was gone, so it writes it and the tunnels it still holds
    assert await other.lookup(CLUSTER) == Route(cut_off.replica_id, "10.0.0.1:8443")
    await cut_off.stop()
    await other.stop()


async def test_a_route_whose_write_failed_is_written_with_the_next_renewal(db: Database, tmp_path: Path) -> None:
    clock = ManualClock()
    holder, other = await _replica(db, clock, "10.0.0.1:8443"), await _replica(db, clock, "10.0.0.2:8443")
    broken = Database(f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'nowhere.db'}")  # cannot even open
    holder._db = broken  # the database is unreachable while the tunnel registers
    await holder.register(CLUSTER)  # logged, not raised: the tunnel works locally meanwhile
    holder._db = db
    assert await other.lookup(CLUSTER) is None
    await holder.renew()
    assert await other.lookup(CLUSTER) == Route(holder.replica_id, "10.0.0.1:8443")
    await broken.close()
    await holder.stop()
    await other.stop()
