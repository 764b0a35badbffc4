"""Desired configuration delivered to a cluster's agents within a second of the write, on any replica.

An agent long-polls ``GET /dp/v1/configurations?since=VERSION``: the answer comes at once when the cluster's desired
configuration is not at ``VERSION``, else when a write changes it, else after the hold (about 30 s). The version is
a digest of the configuration itself, so it moves with every change that matters to the cluster (a new extension,
new settings, one deleted, a newer version on its release train) and with nothing else.

Waking: this replica's commits are seen as they happen (the session's flush and commit events name the clusters
whose extensions changed); other replicas' through PostgreSQL ``NOTIFY`` sent inside the writing transaction, so
it is delivered on commit only, naming the cluster. A wake costs each of that cluster's waiters one read; a
reconnection of the listener wakes every waiter (what changed meanwhile is unknown): see decision 009.

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
from collections.abc import Iterable
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
HOLD_SECONDS = 30.0
WAITERS_PER_CLUSTER = 4  # extension-manager and config-agent, with room for a reconnection of each
WAITERS_TOTAL = 20_000
_CHANGED = "halyard.configuration.changed"
EVERY_CLUSTER = "*"  # the payload when a published extension type changed: every cluster may be concerned


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
    ) -> None:
        self._db = db
        self._behaviour = behaviour
        self._flux = flux
        self._per_cluster = per_cluster
        self._total_limit = total
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.presence = Presence()  # the agents whose first poll this replica recorded (agentpresence.py)
        self._total = 0
        self._draining = False
        self._postgres = not db.is_sqlite
        self._listener = Listener(db.url, CHANNEL, self._wake_all, self._notified) if self._postgres else None
        event.listen(db.changes.session_class, "after_flush", self._flushed)
        event.listen(db.changes.session_class, "after_commit", self._committed)
        event.listen(db.changes.session_class, "after_rollback", self._rolled_back)

    @property
    def waiting(self) -> int:
        return self._total

    def drain(self) -> None:
        """The server is shutting down: every waiting poll answers now (with what is current), so no agent's poll
        holds the graceful shutdown for its 30 s; the agents poll again, another replica or the restarted one."""
        self._draining = True
        self._wake_all()

    async def watch(self) -> None:
        """Hear other replicas' writes, for ever (nothing to hear on SQLite: one server per file)."""
        if self._listener is not None:
            await self._listener.run_forever()

    async def desired(self, cluster_key: str, kind: str = EXTENSIONS) -> dict[str, Any]:
        """The cluster's desired configuration with its version; protected settings in clear (for its agents only)."""
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

    async def wait(self, cluster_key: str, since: str | None, hold: float, kind: str = EXTENSIONS) -> dict[str, Any]:
        """The desired configuration once its version is not ``since``, or as it is after ``hold`` seconds."""
        waiters = self._waiters.setdefault(cluster_key, set())
        if len(waiters) >= self._per_cluster or self._total >= self._total_limit:
            if not waiters:
                del self._waiters[cluster_key]
            raise TooManyRequests(
                "Too many agents are waiting for this cluster's configuration; poll again later.",
                code="TooManyWaiters",
            )
        woken = asyncio.Event()
        waiters.add(woken)  # before the first read: a write committed after it wakes this waiter
        self._total += 1
        try:
            loop = asyncio.get_running_loop()
            deadline = loop.time() + hold
            while True:
                woken.clear()
                current = await self.desired(cluster_key, kind)
                remaining = deadline - loop.time()
                if current["version"] != since or remaining <= 0 or self._draining:
                    return current
                try:
                    await asyncio.wait_for(woken.wait(), remaining)
                except TimeoutError:
                    pass
        finally:
            waiters.discard(woken)
            self._total -= 1
            if not waiters:
                self._waiters.pop(cluster_key, None)

    # ---- wakes ---------------------------------------------------------------------------------------------------

    def _wake(self, cluster_keys: Iterable[str]) -> None:
        for key in cluster_keys:
            for woken in self._waiters.get(key, ()):
                woken.set()

    def _wake_all(self) -> None:
        self._wake(list(self._waiters))

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
    if rtype is not None and isinstance(rtype.behaviour, ExtensionBehaviour):
        return ConfigurationDelivery(cp.db, rtype.behaviour, flux)
    return ConfigurationDelivery(cp.db, ExtensionBehaviour(cp.sealer), flux)  # a server built without the type
