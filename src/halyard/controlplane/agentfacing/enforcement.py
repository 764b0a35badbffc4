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

``decide`` is the table, pure; ``enforce`` reads the few rows it needs (the cluster, its scope, the endpoint and its
connection: primary-key reads) and raises the 403 naming the rule. A gateway arrival counts as public here (the
gateway's own allow-list is its issue's).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from halyard.controlplane.agentfacing.arrival import Arrival, ArrivalKind
from halyard.core.errors import HalyardError
from halyard.store.models import Resource

if TYPE_CHECKING:
    from halyard.store import Database


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
    status = 403


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


async def enforce(db: Database, counts: Counter[str], cluster_id: str, arrival: Arrival) -> Facts:
    """What the request was served on (the facts read), or PrivateLinkRefused (403) naming the rule that refused
    it; each decision counted by rule (``Listeners.refusals``, exported by ``EnforcementCollector``)."""
    facts = await facts_of(db, cluster_id, arrival)
    rule = decide(facts, arrival)
    counts[rule.value] += 1
    if rule in SERVED:
        return facts
    message = _MESSAGES[rule].format(
        scope=facts.cluster_scope or "", via=arrival.via or "", status=facts.endpoint_status or "missing"
    )
    raise PrivateLinkRefused(message, code=rule.value)


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
