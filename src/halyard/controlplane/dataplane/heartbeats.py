"""Heartbeats: an agent's report of the cluster, written onto its connectedCluster resource."""

from __future__ import annotations

import asyncio
import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from halyard.api.agents import Heartbeat, HeartbeatReply
from halyard.controlplane.configuration.agentpresence import CONFIGURATION_AGENTS, presence_reports
from halyard.controlplane.dataplane.status import connectivity_status
from halyard.controlplane.his.identities import ClusterIdentities
from halyard.controlplane.identity.tokens import Caller
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import TooManyRequests, Unauthenticated
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import ClusterIdentity, Resource, ResourceReport
from halyard.store.reports import Report, put_reports

# Writable properties the agents detect; shown when the user left them empty (reported under "detected").
DETECTED = ("distribution", "infrastructure")
REPORTER = "dp"  # the data plane's report row on a connected cluster
# Beats per commit at most: bounds a transaction's length (and the write lock's hold on SQLite).
MAX_BATCH = 500
# Beats waiting for a commit at most: beyond, shed load with 429 + Retry-After rather than queue without bound (a
# herd of agents reconnecting at once backs off, jittered, instead of toppling the server).
MAX_PENDING = 5000
MAX_WRITE_WINDOW = 60.0


@dataclass
class _Pending:
    object_id: str
    beat: Heartbeat
    at: dt.datetime
    done: asyncio.Future[ReplyBasis]


class Heartbeats:
    """Records heartbeats with group commit: beats arriving while a commit is in flight share the next one.

    A beat that only repeats what was stored less than ``window`` ago, onto a resource no one has written since, is
    checked (identity alive, certificate valid, resource etag unchanged) but not written: at 10,000 clusters that
    halves the writes and keeps reads to one query per batch. The etag check is what lets a user's change (a pinned
    agent version, auto-upgrade off) reach the agents with their next beat, whichever replica took the change.

    With one writer (SQLite) and a durable commit per transaction, one commit per beat caps a server at a few
    hundred beats a second; batching keeps every beat durable before it is acknowledged while the commit count
    follows the load instead of the beat count. At low load a batch is a single beat, so nothing waits.
    """

    def __init__(self, db: Database, clock: Clock, settings: Settings, identities: ClusterIdentities) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._identities = identities
        self._catalog = settings.agent_catalog
        self._pending: list[_Pending] = []
        self._writer: asyncio.Task[None] | None = None
        self._stored: dict[str, _Stored] = {}
        # An unchanged beat is written at most this often; in between, only the identity is checked (one read for a
        # whole batch). lastConnectivityTime is then at most this stale, a tenth of the offline threshold at most.
        self.window = dt.timedelta(seconds=min(MAX_WRITE_WINDOW, settings.offline_threshold_seconds / 10))

    async def record(self, caller: Caller, beat: Heartbeat) -> HeartbeatReply:
        """Store what the agent observed and when; the identity is re-checked on every beat (revocation)."""
        if len(self._pending) >= MAX_PENDING:
            raise TooManyRequests(
                "The data plane is busy; retry after the indicated time.",
                headers={"Retry-After": str(random.randint(1, 10))},
            )
        now = self._clock.now()
        item = _Pending(caller.object_id, beat, now, asyncio.get_running_loop().create_future())
        self._pending.append(item)
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._drain(), name="heartbeat-writer")
        basis = await item.done
        return HeartbeatReply(
            connectivityStatus=connectivity_status(
                basis.status_properties(), now, dt.timedelta(seconds=self._settings.offline_threshold_seconds)
            ),
            heartbeatSeconds=self._settings.heartbeat_interval_seconds,
            desiredAgentVersion=basis.desired_version,
            agentAutoUpgrade=basis.auto_upgrade or "Enabled",
            targetAgentVersion=self._catalog.target(basis.auto_upgrade, basis.desired_version),
        )

    async def _drain(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                results = await self._write(batch)
            except Exception as exc:
                if len(batch) > 1:
                    # A beat the store refuses must not fail the others committed with it: each alone, again.
                    await self._write_alone(batch)
                elif not batch[0].done.done():
                    batch[0].done.set_exception(exc)
                continue
            _settle(batch, results)

    async def _write_alone(self, batch: list[_Pending]) -> None:
        for item in batch:
            if item.done.done():
                continue  # the caller went away
            try:
                results = await self._write([item])
            except Exception as exc:  # the store refuses this beat: it fails alone
                item.done.set_exception(exc)
                continue
            _settle([item], results)

    async def _write(self, batch: list[_Pending]) -> list[ReplyBasis | Exception]:
        """Check every beat's identity with one read; write only the beats that change what is stored."""
        results: list[ReplyBasis | Exception | None] = [None] * len(batch)
        live = await self._identities.live({item.object_id for item in batch})
        to_write = []
        for index, item in enumerate(batch):
            identity = live.get(item.object_id)
            problem = self._identities.problem(identity, item.at)
            if problem is not None or identity is None:
                results[index] = problem
                continue
            stored = self._stored.get(item.object_id)
            if (
                stored is not None
                and stored.fingerprint == _fingerprint(item.beat)
                and stored.etag == identity.resource_etag  # a user write (a new pin, say) is answered at once
                and item.at - stored.at < self.window
            ):
                results[index] = stored.basis
            else:
                to_write.append(index)
        if to_write:
            async with self._db.transaction() as session:
                # The identities again (a delete may have come since the read) and their resources, which are read,
                # never written: what a beat says goes into the cluster's own report row (one upsert for the whole
                # batch), so a user's write between this read and the commit is never overwritten.
                ids = {batch[index].object_id for index in to_write}
                identities = {
                    row.principal_id: row
                    for row in await session.scalars(
                        select(ClusterIdentity).where(ClusterIdentity.principal_id.in_(ids))
                    )
                }
                keys = {row.resource_key for row in identities.values()}
                resources = {
                    row.id_key: row for row in await session.scalars(select(Resource).where(Resource.id_key.in_(keys)))
                }
                # The previous reports, for what a beat may leave out (metadata not gathered yet): it is kept.
                previous = {
                    row.id_key: row.properties
                    for row in await session.scalars(
                        select(ResourceReport).where(
                            ResourceReport.id_key.in_(keys), ResourceReport.reporter == REPORTER
                        )
                    )
                }
                reports: dict[str, Report] = {}
                presence: list[Report] = []
                written: dict[str, _Stored] = {}
                for index in to_write:
                    item = batch[index]
                    row = identities.get(item.object_id)
                    problem = self._identities.problem(row, item.at)
                    if problem is not None or row is None:
                        results[index] = problem
                        continue
                    resource = resources.get(row.resource_key)
                    if resource is None or resource.provisioning_state == "Deleting":
                        results[index] = Unauthenticated(
                            "The connected cluster is being deleted.", code="ClusterIdentityRevoked"
                        )
                        continue
                    before = previous.get(row.resource_key)
                    values = reported(item.beat, item.at, before)
                    reports[row.resource_key] = Report(row.resource_key, REPORTER, values, item.at)
                    if values.get("configurationAgents") != (before or {}).get("configurationAgents"):
                        presence += presence_reports(row.resource_key, values["configurationAgents"], item.at)
                    basis = ReplyBasis.of(resource.properties, item.at, row.cert_not_after)
                    results[index] = basis
                    written[item.object_id] = _Stored(item.at, _fingerprint(item.beat), basis, resource.etag)
                await put_reports(session, [*reports.values(), *presence])
            self._stored.update(written)  # only once committed: a refused batch is written again, beat by beat
        return [r if r is not None else RuntimeError("heartbeat not processed") for r in results]


@dataclass(frozen=True, slots=True)
class ReplyBasis:
    """The few stored properties a heartbeat's reply is computed from.

    Kept per cluster between writes instead of the resource's whole properties: at 10,000 clusters those dicts were
    a few hundred thousand objects that every full garbage collection walked, pausing the event loop (and every
    beat in flight) for 100-300 ms. This is two objects per cluster.
    """

    last_connectivity: str | None
    certificate_expiry: str | None
    desired_version: str | None
    auto_upgrade: str | None

    @classmethod
    def of(cls, properties: dict[str, Any], beat_at: dt.datetime, certificate_expiry: dt.datetime | None) -> ReplyBasis:
        """From what the user wrote (the agent-version pin), the beat's time and the certificate's expiry."""
        profile = properties.get("arcAgentProfile") or {}
        return cls(
            isoformat(beat_at),
            isoformat(certificate_expiry) if certificate_expiry else None,
            profile.get("desiredAgentVersion"),
            profile.get("agentAutoUpgrade"),
        )

    def status_properties(self) -> dict[str, Any]:
        """The properties ``connectivity_status`` reads."""
        return {
            "lastConnectivityTime": self.last_connectivity,
            "managedIdentityCertificateExpirationTime": self.certificate_expiry,
        }


def _settle(batch: list[_Pending], results: list[ReplyBasis | Exception]) -> None:
    for item, result in zip(batch, results, strict=True):
        if item.done.done():
            continue  # the caller went away
        if isinstance(result, Exception):
            item.done.set_exception(result)
        else:
            item.done.set_result(result)


@dataclass(frozen=True, slots=True)
class _Stored:
    """What this process last wrote for a cluster identity (so an unchanged beat need not be written again)."""

    at: dt.datetime
    fingerprint: str
    basis: ReplyBasis
    etag: str  # the resource's, when written: the basis holds until a user write changes it


def _fingerprint(beat: Heartbeat) -> str:
    return beat.model_dump_json()


def reported(beat: Heartbeat, now: dt.datetime, previous: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a heartbeat reports about the cluster: its ``dp`` report. Metadata the beat leaves out (not gathered
    yet, as when resource-sync starts before metadata-operator) keeps its previous value."""
    previous = previous or {}
    values: dict[str, Any] = {"agentVersion": beat.agentVersion, "lastConnectivityTime": isoformat(now)}
    for key in ("kubernetesVersion", "totalNodeCount", "totalCoreCount"):
        value = getattr(beat, key)
        if value is not None:
            values[key] = value
        elif key in previous:
            values[key] = previous[key]
    detected = {**previous.get("detected", {}), **{key: getattr(beat, key) for key in DETECTED if getattr(beat, key)}}
    if detected:
        values["detected"] = detected
    profile: dict[str, Any] = {
        "agentErrors": [
            {"message": e.message, "severity": e.severity, "component": e.component, "time": isoformat(e.time)}
            for e in beat.agentErrors
        ]
    }
    if beat.agentState is not None:
        profile["agentState"] = beat.agentState
    values["arcAgentProfile"] = profile
    # Which optional agents run (cluster-connect, azure-rbac): not rendered, read by the relay to explain a refusal.
    if beat.features is not None:
        values["features"] = sorted(set(beat.features))
    elif "features" in previous:
        values["features"] = previous["features"]
    # Which agents act on its configuration: recorded as if they had polled (agentpresence.py), not rendered.
    if beat.configurationAgents is not None:
        values["configurationAgents"] = sorted(set(beat.configurationAgents) & CONFIGURATION_AGENTS)
    elif "configurationAgents" in previous:
        values["configurationAgents"] = previous["configurationAgents"]
    return values
