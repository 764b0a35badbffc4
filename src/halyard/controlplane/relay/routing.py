"""Which replica holds which cluster's tunnel, kept in the database so that any replica can reach any cluster.

Replicas on one PostgreSQL database sit behind a load balancer: a cluster's tunnel lands on one of them, its users'
requests on any. Each replica writes a route (cluster → this replica) when a tunnel registers and removes it when
the tunnel closes; a replica elsewhere looks the route up and forwards (:mod:`halyard.controlplane.relay.peers`).

A replica that crashes removes nothing, so routes are only believed while their replica's lease lives: each replica
renews a lease row every ``RENEW_EVERY`` seconds, and a route of a replica whose lease lapsed is ignored at once and
deleted (with the lease row) by whichever replica renews next once it has been lapsed ``FORGET_AFTER`` seconds. A
replica that finds its own lease gone (it was cut off from the database that long) writes it and all its routes
again. A cluster whose agent dials another replica gets a new route there, which replaces the old one.

A local tunnel never needs the table: the relay looks here only when it has none, and on SQLite (one server) not at
all.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.core.clock import Clock
from halyard.store import Database
from halyard.store.models import RelayReplica, RelayRoute

log = logging.getLogger("halyard.relay")
LEASE = 15.0  # seconds a replica is believed alive after its last renewal
RENEW_EVERY = 5.0  # three renewals per lease: one slow or failed write does not lapse it
FORGET_AFTER = 60.0  # seconds after a lease lapsed that its rows are deleted


@dataclass(frozen=True)
class Route:
    """Where a cluster's tunnel is: the replica holding it and the address its peers reach it at."""

    replica_id: str
    peer_address: str


class Routing:
    """This replica's routes and lease. One per process; ``replica_id`` is new at each start."""

    def __init__(
        self,
        db: Database,
        clock: Clock,
        peer_address: str,
        *,
        lease: float = LEASE,
        renew_every: float = RENEW_EVERY,
        forget_after: float = FORGET_AFTER,
    ) -> None:
        self._db = db
        self._clock = clock
        self.replica_id = uuid.uuid4().hex
        self.peer_address = peer_address
        self._lease = dt.timedelta(seconds=lease)
        self._renew_every = renew_every
        self._forget_after = dt.timedelta(seconds=forget_after)
        # Clusters (lower-cased ids) whose tunnel is here -> when it registered (its route's ``since``, which tells
        # this registration's row from a later one's when the tunnel closes).
        self._held: dict[str, dt.datetime] = {}
        self._unwritten: set[str] = set()  # of those, the ones whose route a failed write left out of the table
        self._last_since = dt.datetime.min.replace(tzinfo=dt.UTC)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Take this replica's lease and keep renewing it until :meth:`stop`."""
        await self._write_lease()
        self._task = asyncio.create_task(self._renew_forever(), name="relay-lease")
        log.info("relay replica leased", extra={"replica": self.replica_id, "peer_address": self.peer_address})

    async def stop(self) -> None:
        """At shutdown: this replica's routes and lease are removed, so no peer tries it in the meantime."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        try:
            async with self._db.transaction() as session:
                await session.execute(delete(RelayRoute).where(RelayRoute.replica_id == self.replica_id))
                await session.execute(delete(RelayReplica).where(RelayReplica.replica_id == self.replica_id))
        except Exception as exc:  # the lease lapses by itself
            log.warning("relay routes not removed at shutdown", extra={"error": str(exc)[:300]})

    async def register(self, cluster_id: str) -> dt.datetime:
        """A tunnel of this cluster is now here; returns what :meth:`unregister` needs when it closes. A failed write
        is retried with the next renewal (the tunnel works locally meanwhile; peers answer 503 for it until then)."""
        key = cluster_id.lower()
        since = max(self._clock.now(), self._last_since + dt.timedelta(microseconds=1))  # unique per registration
        self._last_since = since
        self._held[key] = since
        try:
            async with self._db.transaction() as session:
                await _put_routes(session, {key: since}, self.replica_id)
            self._unwritten.discard(key)
        except Exception as exc:
            self._unwritten.add(key)
            log.warning("relay route not written", extra={"cluster": cluster_id, "error": str(exc)[:300]})
        return since

    async def unregister(self, cluster_id: str, since: dt.datetime) -> None:
        """The tunnel registered at ``since`` closed: its route goes, unless a newer tunnel's (on another replica,
        or on this one if the agent dialled again before this ran) replaced it."""
        key = cluster_id.lower()
        if self._held.get(key) == since:
            del self._held[key]
            self._unwritten.discard(key)
        try:
            async with self._db.transaction() as session:
                await session.execute(
                    delete(RelayRoute).where(
                        RelayRoute.cluster_key == key,
                        RelayRoute.replica_id == self.replica_id,
                        RelayRoute.since == since,
                    )
                )
        except Exception as exc:  # ignored by peers once they find no tunnel here; rewritten if it comes back
            log.warning("relay route not removed", extra={"cluster": cluster_id, "error": str(exc)[:300]})

    async def lookup(self, cluster_id: str) -> Route | None:
        """The live replica other than this one that holds the cluster's tunnel, if any."""
        async with self._db.session() as session:
            row = (
                await session.execute(
                    select(RelayRoute.replica_id, RelayReplica.peer_address)
                    .join(RelayReplica, RelayReplica.replica_id == RelayRoute.replica_id)
                    .where(
                        RelayRoute.cluster_key == cluster_id.lower(),
                        RelayReplica.lease_until > self._clock.now(),
                        RelayRoute.replica_id != self.replica_id,
                    )
                )
            ).first()
        return Route(row[0], row[1]) if row is not None else None

    async def renew(self) -> None:
        """Renew this replica's lease (writing it and every route again if it was forgotten), write the routes a
        failed write left out, and forget the replicas whose lease lapsed long ago."""
        now = self._clock.now()
        pending = set(self._unwritten)
        async with self._db.transaction() as session:
            renewed = await session.execute(
                update(RelayReplica)
                .where(RelayReplica.replica_id == self.replica_id)
                .values(lease_until=now + self._lease, peer_address=self.peer_address)
            )
            if renewed.rowcount == 0:  # type: ignore[attr-defined]
                log.warning("relay lease was forgotten; writing it and this replica's routes again")
                session.add(self._lease_row(now))
                pending |= set(self._held)
            routes = {key: self._held[key] for key in pending if key in self._held}
            if routes:
                await _put_routes(session, routes, self.replica_id)
            lapsed = select(RelayReplica.replica_id).where(RelayReplica.lease_until < now - self._forget_after)
            await session.execute(delete(RelayRoute).where(RelayRoute.replica_id.in_(lapsed)))
            await session.execute(delete(RelayReplica).where(RelayReplica.lease_until < now - self._forget_after))
        self._unwritten -= pending

    async def _write_lease(self) -> None:
        async with self._db.transaction() as session:
            session.add(self._lease_row(self._clock.now()))

    def _lease_row(self, now: dt.datetime) -> RelayReplica:
        return RelayReplica(
            replica_id=self.replica_id, peer_address=self.peer_address, started_at=now, lease_until=now + self._lease
        )

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self._renew_every)
            try:
                await self.renew()
            except Exception as exc:  # the database is away: try again at the next renewal
                log.warning("relay lease not renewed", extra={"error": str(exc)[:300]})


async def _put_routes(session: AsyncSession, routes: dict[str, dt.datetime], replica_id: str) -> None:
    """Point these clusters (-> since when) at ``replica_id`` in one statement (an upsert: the newest tunnel wins)."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    rows = [{"cluster_key": key, "replica_id": replica_id, "since": since} for key, since in sorted(routes.items())]
    statement = insert(RelayRoute).values(rows)
    statement = statement.on_conflict_do_update(
        index_elements=[RelayRoute.cluster_key],
        set_={"replica_id": statement.excluded.replica_id, "since": statement.excluded.since},
    )
    await session.execute(statement)
