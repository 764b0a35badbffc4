"""Desired configuration delivered to a cluster's agents within a second of the write, on any replica.

An agent long-polls ``GET /dp/v1/configurations?since=VERSION``: the answer comes at once when the cluster's desired
configuration is not at ``VERSION``, else when a write changes it, else after the hold (up to
``long_poll_seconds``, 5 min, as a Kubernetes watch: an idle fleet renews a poll per cluster every few minutes, not
every 25 s). The version is a digest of the configuration itself, so it moves with every change that matters to the
cluster (a new extension, new settings, one deleted, a newer version on its release train) and with nothing else.

Renewing costs no read: the process remembers the version it last read per cluster, forgotten at the cluster's next
wake (below), so a poll whose ``since`` is that version waits without reading the store; an agent that says
``If-None-Match`` with it is answered ``304 Not Modified`` at the end of the hold, again without a read. A read that
a wake overtook is not remembered; on PostgreSQL nothing is remembered while the change listener is not listening.

Waking: this replica's commits are seen as they happen (the session's flush and commit events name the clusters
whose extensions changed, or that are being deleted); other replicas' through PostgreSQL ``NOTIFY`` sent inside the
writing transaction, so it is delivered on commit only, naming the cluster. A wake costs each of that cluster's
waiters one read (and one check that its identity is still alive: a deleted cluster's poll ends 401); a
reconnection of the listener wakes every waiter (what changed meanwhile is unknown): see decision 009. Shutting
down answers every waiter at once without reading (304, or what it read last for an agent that did not say
``If-None-Match``).

Two kinds are delivered, each with its own version so that one agent is not woken by the other's changes:
``extensions`` (extension-manager, ``/dp/v1/configurations``) and ``fluxConfigurations`` (config-agent,
``/dp/v1/fluxConfigurations``: Flux and source-control configurations in the one engine shape of
``fluxrules.engine_entry``, those being deleted included and marked, so that the agent removes their objects and
says so).

Bounded: a few waiters per cluster, a total per replica; past either the agent is told 429 and polls later.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, select, text
from sqlalchemy.orm import Session

from halyard.controlplane.configuration.agentpresence import Presence
from halyard.controlplane.configuration.extensions import ExtensionBehaviour, desired_entry
from halyard.controlplane.configuration.fluxconfigs import FLUX_KEY, SOURCE_CONTROL_KEY, FluxConfigurationBehaviour
from halyard.controlplane.configuration.fluxrules import engine_entry
from halyard.controlplane.configuration.published import TYPE_KEY as PUBLISHED_KEY
from halyard.controlplane.configuration.published import catalog_of
from halyard.core.errors import TooManyRequests
from halyard.store.database import Database
from halyard.store.models import Resource
from halyard.store.notify import Listener

if TYPE_CHECKING:
    from halyard.controlplane.plane import ControlPlane

CHANNEL = "halyard_configuration"
EXTENSIONS_KEY = "microsoft.kubernetesconfiguration/extensions"
GITOPS_TYPES = frozenset({FLUX_KEY, SOURCE_CONTROL_KEY})
CONFIGURATION_TYPES = frozenset({EXTENSIONS_KEY, *GITOPS_TYPES})
EXTENSIONS = "extensions"
FLUX = "fluxConfigurations"
MAX_FLUX_CONFIGURATIONS = 500  # per cluster, per answer: a bounded reply
HOLD_SECONDS = 300.0  # the default bound of a hold (settings.long_poll_seconds)
SPREAD = 0.1  # an unchanged poll of a minute or more ends at random in the last tenth of its hold: a fleet's
SPREAD_FROM = 60.0  # renewals (after a restart, a push to all) do not stay bunched up; a short hold is exact
CLUSTERS_KEY = "microsoft.kubernetes/connectedclusters"
WAITERS_PER_CLUSTER = 4  # extension-manager and config-agent, with room for a reconnection of each
WAITERS_TOTAL = 20_000
_CHANGED = "halyard.configuration.changed"
EVERY_CLUSTER = "*"  # the payload when a published extension type changed: every cluster may be concerned


GONE: dict[str, Any] = {}  # what :meth:`ConfigurationDelivery.wait` returns when its agent hung up first


class _Waiter(asyncio.Event):
    """One held poll: set by a wake (``rung``: its cluster changed), by its hold's timer, by its agent hanging up
    or by the server's shutdown. One object and one timer per poll, no task of its own: a fleet's thousands of
    held polls cost what they must (docs/benchmarks.md, memory per held poll)."""

    rung = False

    def ring(self) -> None:
        self.rung = True
        self.set()


def version_of(extensions: list[dict[str, Any]]) -> str:
    canonical = json.dumps(extensions, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:32]


class ConfigurationDelivery:
    def __init__(
        self,
        db: Database,
        behaviour: ExtensionBehaviour,
        flux: FluxConfigurationBehaviour | None = None,
        *,
        per_cluster: int = WAITERS_PER_CLUSTER,
        total: int = WAITERS_TOTAL,
        longest: float = HOLD_SECONDS,
    ) -> None:
        self._db = db
        self._behaviour = behaviour
        self._flux = flux
        self._per_cluster = per_cluster
        self._total_limit = total
        self.longest = longest  # the longest hold this server grants (settings.long_poll_seconds)
        self._waiters: dict[str, set[_Waiter]] = {}
        self.presence = Presence()  # the agents whose first poll this replica recorded (agentpresence.py)
        self._total = 0
        self._draining = False
        self._postgres = not db.is_sqlite
        self._listener = Listener(db.url, CHANNEL, self._wake_all, self._notified) if self._postgres else None
        # The version last read per (cluster, kind), while no wake of that cluster came since the read began: a
        # wake bumps ``_wakes`` and stamps the cluster (``_woken_at``); a wake of all stamps ``_all_woken_at``.
        self._known: dict[tuple[str, str], str] = {}
        self._wakes = 0
        self._woken_at: dict[str, int] = {}
        self._all_woken_at = 0
        # Counters for /metrics (deliverymetrics.py): desired-state reads, and polls that began or ended on what
        # this process knew without one.
        self.reads = 0
        self.unread = 0
        event.listen(db.changes.session_class, "after_flush", self._flushed)
        event.listen(db.changes.session_class, "after_commit", self._committed)
        event.listen(db.changes.session_class, "after_rollback", self._rolled_back)

    @property
    def waiting(self) -> int:
        return self._total

    def drain(self) -> None:
        """The server is shutting down: every waiting poll answers now, without a read (304 to an agent that sent
        ``If-None-Match``), so no agent's poll holds the graceful shutdown; the agents poll again, another replica
        or the restarted one."""
        self._draining = True
        for waiters in self._waiters.values():
            for woken in waiters:
                woken.set()

    async def watch(self) -> None:
        """Hear other replicas' writes, for ever (nothing to hear on SQLite: one server per file)."""
        if self._listener is not None:
            await self._listener.run_forever()

    async def desired(self, cluster_key: str, kind: str = EXTENSIONS) -> dict[str, Any]:
        """The cluster's desired configuration with its version; protected settings in clear (for its agents only)."""
        self.reads += 1
        if kind == FLUX:
            return await self._desired_flux(cluster_key)
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(Resource)
                    .where(Resource.parent_key == cluster_key, Resource.type_key == EXTENSIONS_KEY)
                    .order_by(Resource.id_key)
                )
            ).all()
            catalog = await catalog_of(session) if rows else None
        extensions = [
            desired_entry(r, catalog, self._behaviour.unseal(r))
            for r in rows
            if r.provisioning_state != "Deleting" and catalog
        ]
        # Named apart: an agent that restarted mid-deletion (and so never knew the release) still reports it gone.
        removing = sorted(r.name for r in rows if r.provisioning_state == "Deleting")
        return {
            "version": version_of([*extensions, {"removing": removing}]),
            "extensions": extensions,
            "removing": removing,
        }

    async def _desired_flux(self, cluster_key: str) -> dict[str, Any]:
        async with self._db.session() as session:
            rows = (
                await session.scalars(
                    select(Resource)
                    .where(Resource.parent_key == cluster_key, Resource.type_key.in_(GITOPS_TYPES))
                    .order_by(Resource.id_key)
                    .limit(MAX_FLUX_CONFIGURATIONS)
                )
            ).all()
        entries = []
        for row in rows:
            kind = "fluxConfiguration" if row.type_key == FLUX_KEY else "sourceControlConfiguration"
            protected = self._flux.protected(row) if self._flux is not None else {}
            entry = engine_entry(kind, row.name, row.id, row.etag, row.properties, protected)
            entry["deleting"] = row.provisioning_state == "Deleting"
            entries.append(entry)
        return {"version": version_of(entries), FLUX: entries}

    async def _read(self, cluster_key: str, kind: str) -> dict[str, Any]:
        """The desired state, its version remembered unless a wake of the cluster came while it was read."""
        began = self._wakes
        current = await self.desired(cluster_key, kind)
        trusted = self._listener is None or self._listener.listening
        if trusted and max(self._woken_at.get(cluster_key, 0), self._all_woken_at) <= began:
            if len(self._known) >= 2 * self._total_limit:  # bounded: forgetting only costs reads
                self._known.clear()
            self._known[(cluster_key, kind)] = current["version"]
        return current

    def _unmoved(self, cluster_key: str, kind: str, since: str | None) -> bool:
        """Whether this process knows, without a read, that the cluster's ``kind`` is still at ``since``."""
        return since is not None and self._known.get((cluster_key, kind)) == since

    async def wait(
        self,
        cluster_key: str,
        since: str | None,
        hold: float,
        kind: str = EXTENSIONS,
        *,
        unchanged_ok: bool = False,
        recheck: Callable[[], Awaitable[None]] | None = None,
        gone: asyncio.Future[Any] | None = None,
    ) -> dict[str, Any] | None:
        """The desired configuration once its version is not ``since``, or when the hold ends; None then (and when
        the server shuts down) if ``unchanged_ok`` (the agent said ``If-None-Match``: nothing is read), else the
        configuration as it is; :data:`GONE` as soon as ``gone`` is done (the agent hung up). ``recheck`` runs
        after each wake before anything is read (it raises when the caller may no longer read: its cluster
        deleted)."""
        waiters = self._waiters.setdefault(cluster_key, set())
        if len(waiters) >= self._per_cluster or self._total >= self._total_limit:
            if not waiters:
                del self._waiters[cluster_key]
            raise TooManyRequests(
                "Too many agents are waiting for this cluster's configuration; poll again later.",
                code="TooManyWaiters",
            )
        woken = _Waiter()
        waiters.add(woken)  # before the first read: a write committed after it wakes this waiter
        self._total += 1
        loop = asyncio.get_running_loop()
        hold = min(hold, self.longest)
        deadline = loop.time() + (hold * (1 - SPREAD * random.random()) if hold >= SPREAD_FROM else hold)
        timer = loop.call_at(deadline, woken.set)
        if gone is not None:
            gone.add_done_callback(lambda _gone: woken.set())
        try:
            current: dict[str, Any] | None = None
            while True:
                if gone is not None and gone.done():
                    return GONE
                if self._draining:
                    return None if unchanged_ok else current or await self._read(cluster_key, kind)
                if woken.rung and recheck is not None:
                    await recheck()
                woken.clear()
                woken.rung = False
                if self._unmoved(cluster_key, kind, since):
                    self.unread += 1
                else:
                    current = await self._read(cluster_key, kind)
                    if current["version"] != since:
                        return current
                if loop.time() >= deadline:
                    return None if unchanged_ok else current or await self._read(cluster_key, kind)
                await woken.wait()
        finally:
            timer.cancel()
            waiters.discard(woken)
            self._total -= 1
            if not waiters:
                self._waiters.pop(cluster_key, None)

    # ---- wakes ---------------------------------------------------------------------------------------------------

    def _wake(self, cluster_keys: Iterable[str]) -> None:
        self._wakes += 1
        if len(self._woken_at) >= 2 * self._total_limit:  # bounded: a wake of all is the conservative stamp
            self._woken_at.clear()
            self._all_woken_at = self._wakes
        for key in cluster_keys:
            self._woken_at[key] = self._wakes
            self._known.pop((key, EXTENSIONS), None)
            self._known.pop((key, FLUX), None)
            for woken in self._waiters.get(key, ()):
                woken.ring()

    def _wake_all(self) -> None:
        self._wakes += 1
        self._all_woken_at = self._wakes
        self._known.clear()
        for waiters in self._waiters.values():
            for woken in waiters:
                woken.ring()

    def _notified(self, payload: str) -> None:
        if payload == EVERY_CLUSTER:
            self._wake_all()
        else:
            self._wake([payload])

    def _flushed(self, session: Session, _context: Any) -> None:
        clusters: set[str] = set()
        for obj in (*session.new, *session.dirty, *session.deleted):
            if not isinstance(obj, Resource):
                continue
            if obj.type_key in CONFIGURATION_TYPES and obj.parent_key:
                clusters.add(obj.parent_key)
            elif obj.type_key == PUBLISHED_KEY:  # a new version may be what a release train now leads to
                clusters.add(EVERY_CLUSTER)
            elif obj.type_key == CLUSTERS_KEY and (obj in session.deleted or obj.provisioning_state == "Deleting"):
                clusters.add(obj.id_key)  # its agents' polls end (401 once its identity is revoked)
        if not clusters:
            return
        session.info.setdefault(_CHANGED, set()).update(clusters)
        if self._postgres:  # delivered by PostgreSQL when (and only if) this transaction commits
            connection = session.connection()
            for key in clusters:
                connection.execute(text("SELECT pg_notify(:channel, :key)"), {"channel": CHANNEL, "key": key[:7900]})

    def _committed(self, session: Session) -> None:
        clusters = session.info.pop(_CHANGED, None)
        if clusters and EVERY_CLUSTER in clusters:
            self._wake_all()
        elif clusters:
            self._wake(clusters)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(_CHANGED, None)


def configuration_delivery(cp: ControlPlane) -> ConfigurationDelivery:
    """The delivery of a control plane, reading extensions the way its declared type stores them."""
    rtype = cp.types.get(EXTENSIONS_KEY)
    flux_type = cp.types.get(FLUX_KEY)
    flux = flux_type.behaviour if flux_type is not None else None
    flux = flux if isinstance(flux, FluxConfigurationBehaviour) else FluxConfigurationBehaviour(cp.sealer)
    longest = cp.settings.long_poll_seconds
    if rtype is not None and isinstance(rtype.behaviour, ExtensionBehaviour):
        return ConfigurationDelivery(cp.db, rtype.behaviour, flux, longest=longest)
    return ConfigurationDelivery(cp.db, ExtensionBehaviour(cp.sealer), flux, longest=longest)  # built without the type
