"""Private link enforcement: may this cluster be served through the way its connection arrived?

One function for every agent-facing request (``his``, ``dp``, relay and what later issues add), called where the
calling cluster is known (``callers.agent_request``, the relay's agent check). The rule table (issue 13):

| cluster     | arrived via                       | result                                           |
|-------------|-----------------------------------|--------------------------------------------------|
| in scope S  | endpoint approved on S            | served                                           |
| in scope S  | public                            | served only if S has publicNetworkAccess Enabled |
| in scope S  | endpoint of another scope / of S not Approved | refused                              |
| in no scope | public                            | served                                           |
| in no scope | any endpoint                      | refused (no exfiltration through an endpoint)    |

``decide`` is the table, pure; ``facts_of`` reads the few rows it needs (the cluster, its scope, the endpoint and its
connection: primary-key reads); ``Enforcement`` keeps those facts per cluster and arrival until a resource changes
(this replica's commits at once, other replicas' through PostgreSQL ``NOTIFY``), raises the 403 naming the rule
with the endpoint map the cluster should use instead, and records each cluster's recent refusals for
``troubleshoot``. A gateway arrival counts as public here (the gateway's own allow-list is its issue's).
"""

from __future__ import annotations

import enum
import logging
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import select

from halyard.api.agents import ENDPOINTS_INFO, ServiceEndpoints
from halyard.controlplane.agentfacing.arrival import Arrival, ArrivalKind
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import HalyardError
from halyard.store.models import Resource, ResourceReport
from halyard.store.notify import Listener
from halyard.store.reports import Report, put_reports

if TYPE_CHECKING:
    from halyard.controlplane.agentfacing.endpoints import EndpointMaps
    from halyard.store import Database

log = logging.getLogger("halyard.privatelink")
CHANNEL = "halyard_private_link"  # notified by the trigger on resources (migration 0007, PostgreSQL)
MAX_CACHED = 100_000  # (cluster, arrival) pairs whose facts are kept: a few tens of MB at most
REFUSALS_REPORTER = "privatelink-refusals"  # a cluster's recent refusals, kept as a report on it
RECENT_REFUSALS = 10  # the newest refusals kept per cluster
RECORD_EVERY = 5.0  # seconds: the same refusal (cluster, rule, arrival) is recorded at most this often per replica


class Rule(enum.Enum):
    """Each row of the table, by the ARM code a refusal carries (served rows have codes for metrics too)."""

    PUBLIC_NO_SCOPE = "PublicClusterServedPublicly"
    PUBLIC_ACCESS_ENABLED = "PrivateLinkScopePublicAccessEnabled"
    APPROVED_ENDPOINT = "PrivateEndpointApproved"
    PUBLIC_ACCESS_DISABLED = "PrivateLinkScopePublicNetworkAccessDisabled"
    ENDPOINT_OF_ANOTHER_SCOPE = "PrivateEndpointOfAnotherScope"
    ENDPOINT_NOT_APPROVED = "PrivateEndpointConnectionNotApproved"
    ENDPOINT_NOT_FOR_CLUSTER = "PrivateEndpointClusterNotInScope"
    ENDPOINT_UNKNOWN = "PrivateEndpointNotFound"
    SCOPE_MISSING = "PrivateLinkScopeNotFound"


SERVED = frozenset({Rule.PUBLIC_NO_SCOPE, Rule.PUBLIC_ACCESS_ENABLED, Rule.APPROVED_ENDPOINT})


@dataclass(frozen=True)
class Facts:
    """What the table reads: the cluster's scope and, for an endpoint arrival, the endpoint's scope and status."""

    cluster_scope: str | None  # the scope's id key (lower case), None: the cluster is in no scope
    scope_public: bool | None  # publicNetworkAccess Enabled; None: the scope no longer exists
    endpoint_scope: str | None = None  # the arrival endpoint's scope key; None: no such endpoint (any more)
    endpoint_status: str | None = None  # its connection's status
    scope_uuid: str | None = None  # the cluster's scope's privateLinkScopeId (its private names)


def decide(facts: Facts, arrival: Arrival) -> Rule:
    """The table above, pure."""
    private = arrival.kind is ArrivalKind.PRIVATE_ENDPOINT
    if facts.cluster_scope is None:
        if not private:
            return Rule.PUBLIC_NO_SCOPE
        return Rule.ENDPOINT_UNKNOWN if facts.endpoint_scope is None else Rule.ENDPOINT_NOT_FOR_CLUSTER
    if facts.scope_public is None:
        return Rule.SCOPE_MISSING
    if not private:
        return Rule.PUBLIC_ACCESS_ENABLED if facts.scope_public else Rule.PUBLIC_ACCESS_DISABLED
    if facts.endpoint_scope is None:
        return Rule.ENDPOINT_UNKNOWN
    if facts.endpoint_scope != facts.cluster_scope:
        return Rule.ENDPOINT_OF_ANOTHER_SCOPE
    return Rule.APPROVED_ENDPOINT if facts.endpoint_status == "Approved" else Rule.ENDPOINT_NOT_APPROVED


_MESSAGES = {
    Rule.PUBLIC_ACCESS_DISABLED: "The cluster is in private link scope '{scope}', whose publicNetworkAccess is "
    "Disabled: it is served only through an approved private endpoint of that scope, and this connection arrived "
    "publicly. Point the agents at the endpoint (DNS: `halyard network private-endpoint dns-config`), or enable "
    "public access on the scope.",
    Rule.ENDPOINT_OF_ANOTHER_SCOPE: "The connection arrived through private endpoint '{via}', which belongs to "
    "another private link scope than the cluster's ('{scope}').",
    Rule.ENDPOINT_NOT_APPROVED: "The connection arrived through private endpoint '{via}', whose connection to the "
    "cluster's scope '{scope}' is {status}, not Approved. Approve it: `halyard network private-endpoint-connection "
    "approve`.",
    Rule.ENDPOINT_NOT_FOR_CLUSTER: "The connection arrived through private endpoint '{via}', but the cluster is in "
    "no private link scope: an endpoint serves only the clusters of its scope.",
    Rule.ENDPOINT_UNKNOWN: "The connection arrived through private endpoint '{via}', which does not exist (any more).",
    Rule.SCOPE_MISSING: "The cluster names private link scope '{scope}', which does not exist: add the cluster to "
    "an existing scope or disable private link on it.",
}


class PrivateLinkRefused(HalyardError):
    """403 naming the rule; ``endpoints`` (when set) tells the cluster's agents where they are served instead, as
    ARM ``additionalInfo`` (an agent pointed at the wrong address learns the right one from the refusal)."""

    status = 403

    def __init__(self, message: str, *, code: str, facts: Facts) -> None:
        super().__init__(message, code=code)
        self.facts = facts
        self.endpoints: ServiceEndpoints | None = None

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.endpoints is not None:
            info = {"type": ENDPOINTS_INFO, "info": self.endpoints.model_dump(mode="json", exclude_none=True)}
            body["error"]["additionalInfo"] = [info]
        return body


async def facts_of(db: Database, cluster_id: str, arrival: Arrival) -> Facts:
    async with db.session() as session:
        cluster = await session.get(Resource, cluster_id.lower())
        props: dict[str, Any] = cluster.properties if cluster is not None else {}
        scope_id = props.get("privateLinkScopeResourceId") if props.get("privateLinkState") == "Enabled" else None
        scope_key = scope_id.lower() if scope_id else None
        scope_public: bool | None = None
        scope_uuid: str | None = None
        if scope_key is not None:
            scope = await session.get(Resource, scope_key)
            scope_public = None if scope is None else scope.properties.get("publicNetworkAccess") == "Enabled"
            scope_uuid = None if scope is None else scope.properties.get("privateLinkScopeId")
        endpoint_scope = endpoint_status = None
        if arrival.kind is ArrivalKind.PRIVATE_ENDPOINT and arrival.via:
            endpoint = await session.get(Resource, arrival.via.lower())
            kept = (endpoint.properties.get("halyard") or {}) if endpoint is not None else {}
            if kept.get("scope"):
                endpoint_scope = kept["scope"].lower()
                connection = await session.get(Resource, kept["connection"].lower())
                if connection is not None:
                    endpoint_status = connection.properties["privateLinkServiceConnectionState"]["status"]
    return Facts(scope_key, scope_public, endpoint_scope, endpoint_status, scope_uuid)


def refusal(rule: Rule, facts: Facts, arrival: Arrival) -> PrivateLinkRefused:
    message = _MESSAGES[rule].format(
        scope=facts.cluster_scope or "", via=arrival.via or "", status=facts.endpoint_status or "missing"
    )
    return PrivateLinkRefused(message, code=rule.value, facts=facts)


class Enforcement:
    """The table applied to every agent-facing request, its facts kept per replica.

    A heartbeat used to cost one to four primary-key reads here. The facts of each (cluster, arrival) are kept
    until a commit touches ``resources`` (every write of a cluster, scope, endpoint or connection does; agents'
    reports do not): this process's commits are seen as they happen, other replicas' through ``NOTIFY`` on
    ``halyard_private_link``. A replica not listening (yet, or after losing its connection) reads the store on
    every request, so a flipped ``publicNetworkAccess`` is never served stale because a notification went missing.
    """

    def __init__(self, db: Database, counts: Counter[str], maps: EndpointMaps, clock: Clock) -> None:
        self._db = db
        self.counts = counts
        self._maps = maps
        self._clock = clock
        self._cached: dict[tuple[str, Arrival], Facts] = {}
        self._generation = 0
        self._recorded: dict[tuple[str, str, str], float] = {}
        self._listener = None if db.is_sqlite else Listener(db.url, CHANNEL, self.invalidate)
        self._followers: list[Callable[[], None]] = []
        db.changes.on_commit(("resources",), self.invalidate)

    def invalidate(self) -> None:
        self._generation += 1
        self._cached.clear()
        for follower in self._followers:
            follower()

    def on_change(self, follower: Callable[[], None]) -> None:
        """Call ``follower`` (cheap, synchronous) whenever what was read may be stale: the ingress re-checks its
        open connections' certificates then."""
        self._followers.append(follower)

    @property
    def generation(self) -> int:
        """Moves on with every change of ``resources`` heard: what was read before it moved may be stale."""
        return self._generation

    @property
    def cacheable(self) -> bool:
        """Whether changes are heard (always on SQLite; on PostgreSQL while listening): else read every time."""
        return self._listener is None or self._listener.listening

    async def watch(self) -> None:
        """Hear other replicas' changes, for ever (nothing to hear on SQLite: one server per file)."""
        if self._listener is not None:
            await self._listener.run_forever()

    async def facts(self, cluster_id: str, arrival: Arrival) -> Facts:
        key = (cluster_id.lower(), arrival)
        cacheable = self.cacheable
        known = self._cached.get(key) if cacheable else None
        if known is not None:
            return known
        generation = self._generation
        facts = await facts_of(self._db, cluster_id, arrival)
        if cacheable and generation == self._generation:  # nothing changed while reading
            if len(self._cached) >= MAX_CACHED:
                self._cached.clear()
            self._cached[key] = facts
        return facts

    async def judge(self, cluster_id: str, arrival: Arrival, facts: Facts) -> None:
        """Count the decision; refuse (403 naming the rule, with the map the cluster should use) and record it."""
        rule = decide(facts, arrival)
        self.counts[rule.value] += 1
        if rule in SERVED:
            return
        refused = refusal(rule, facts, arrival)
        refused.endpoints = self._maps.for_cluster(cluster_id, arrival, facts.scope_uuid)
        await self._record(cluster_id.lower(), rule, arrival)
        raise refused

    async def enforce(self, cluster_id: str, arrival: Arrival) -> Facts:
        """What the request was served on (the facts read), or PrivateLinkRefused (403) naming the rule."""
        facts = await self.facts(cluster_id, arrival)
        await self.judge(cluster_id, arrival, facts)
        return facts

    async def _record(self, cluster_key: str, rule: Rule, arrival: Arrival) -> None:
        """Keep the refusal with the cluster's newest ones (a report on the cluster, so every replica's
        ``troubleshoot`` sees it); a cluster retrying in a loop writes once every few seconds, not per request."""
        marker = (cluster_key, rule.value, str(arrival))
        now = self._clock.now().timestamp()
        if now - self._recorded.get(marker, -RECORD_EVERY) < RECORD_EVERY:
            return
        if len(self._recorded) >= MAX_CACHED:
            self._recorded.clear()
        self._recorded[marker] = now
        entry = {"time": isoformat(self._clock.now()), "rule": rule.value, "arrival": str(arrival)}
        try:
            async with self._db.transaction() as session:
                row = await session.get(ResourceReport, (cluster_key, REFUSALS_REPORTER))
                kept = list((row.properties if row is not None else {}).get("refusals") or [])
                refusals = [entry, *kept][:RECENT_REFUSALS]
                await put_reports(
                    session, [Report(cluster_key, REFUSALS_REPORTER, {"refusals": refusals}, self._clock.now())]
                )
        except Exception as exc:  # never turn a refusal into a 500
            log.warning("could not record a private link refusal", extra={"error": type(exc).__name__})


async def recent_refusals(db: Database, cluster_id: str) -> list[dict[str, Any]]:
    """The cluster's newest refusals, newest first (at most :data:`RECENT_REFUSALS`)."""
    async with db.session() as session:
        properties = await session.scalar(
            select(ResourceReport.properties).where(
                ResourceReport.id_key == cluster_id.lower(), ResourceReport.reporter == REFUSALS_REPORTER
            )
        )
    return list((properties or {}).get("refusals") or [])


class EnforcementCollector(Collector):
    """``halyard_private_link_decisions_total{rule,result}``: what enforcement served and refused, by rule."""

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "halyard_private_link_decisions", "Agent-facing requests by private link rule", labels=["rule", "result"]
        )
        for rule in Rule:
            family.add_metric([rule.value, "served" if rule in SERVED else "refused"], self._counts[rule.value])
        yield family
