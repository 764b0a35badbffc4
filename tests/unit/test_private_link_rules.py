"""The enforcement table (issue 13) as a pure function, every row, and its facts kept until a resource changes; the
address plan; endpoint listener parsing; troubleshoot's refusals."""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import event

from halyard.cli.privatelinkchecks import refusal_checks
from halyard.controlplane.agentfacing.arrival import PUBLIC, Arrival, ArrivalKind
from halyard.controlplane.agentfacing.endpoints import EndpointMaps
from halyard.controlplane.agentfacing.enforcement import (
    SERVED,
    Enforcement,
    Facts,
    PrivateLinkRefused,
    Rule,
    decide,
    recent_refusals,
)
from halyard.controlplane.agentfacing.listening import parse_listener
from halyard.controlplane.network.addressing import next_free
from halyard.controlplane.privatelink.scopes import SCOPES
from halyard.core.clock import ManualClock
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Resource

S, T = "/s/scope-s", "/s/scope-t"
VIA = Arrival(
    ArrivalKind.PRIVATE_ENDPOINT, "/subscriptions/x/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/e"
)
GATEWAY = Arrival(ArrivalKind.GATEWAY, "/g")

ROWS = [
    (Facts(S, False, S, "Approved"), VIA, Rule.APPROVED_ENDPOINT),
    (Facts(S, True), PUBLIC, Rule.PUBLIC_ACCESS_ENABLED),
    (Facts(S, False), PUBLIC, Rule.PUBLIC_ACCESS_DISABLED),
    (Facts(S, False), GATEWAY, Rule.PUBLIC_ACCESS_DISABLED),  # a gateway is not a private path
    (Facts(S, True, T, "Approved"), VIA, Rule.ENDPOINT_OF_ANOTHER_SCOPE),
    (Facts(S, True, S, "Pending"), VIA, Rule.ENDPOINT_NOT_APPROVED),
    (Facts(S, True, S, "Rejected"), VIA, Rule.ENDPOINT_NOT_APPROVED),
    (Facts(S, True, S, None), VIA, Rule.ENDPOINT_NOT_APPROVED),  # its connection deleted
    (Facts(S, True, None), VIA, Rule.ENDPOINT_UNKNOWN),
    (Facts(None, None), PUBLIC, Rule.PUBLIC_NO_SCOPE),
    (Facts(None, None, S, "Approved"), VIA, Rule.ENDPOINT_NOT_FOR_CLUSTER),
    (Facts(None, None, None), VIA, Rule.ENDPOINT_UNKNOWN),
    (Facts(S, None), PUBLIC, Rule.SCOPE_MISSING),
    (Facts(S, None, S, "Approved"), VIA, Rule.SCOPE_MISSING),
]


@pytest.mark.parametrize(("facts", "arrival", "rule"), ROWS)
def test_each_row_of_the_table(facts: Facts, arrival: Arrival, rule: Rule) -> None:
    assert decide(facts, arrival) is rule


def test_only_three_rules_serve() -> None:
    assert SERVED == {Rule.APPROVED_ENDPOINT, Rule.PUBLIC_ACCESS_ENABLED, Rule.PUBLIC_NO_SCOPE}


def test_addresses_skip_the_reserved_ones_and_run_out() -> None:
    subnet = ipaddress.IPv4Network("10.0.0.0/29")  # .0 network, .1-.3 reserved, .4-.6 usable, .7 broadcast; .6 kept
    assert next_free(subnet, []) == "10.0.0.4"
    assert next_free(subnet, ["10.0.0.4"]) == "10.0.0.5"
    assert next_free(subnet, ["10.0.0.4", "10.0.0.5"]) is None


def test_endpoint_listeners_parse_and_refuse_what_is_not_one() -> None:
    pe = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/e"
    assert parse_listener(f"10.1.0.4:443={pe}") == ("10.1.0.4", 443, pe)
    for bad in (f"10.1.0.4={pe}", f"host:443={pe}", "10.1.0.4:443=/subscriptions/s", f"10.1.0.4:0={pe}"):
        with pytest.raises(ValueError):
            parse_listener(bad)


def test_connect_flags_are_checked_as_az_checks_them() -> None:
    from halyard.cli.errors import UsageError
    from halyard.cli.onboarding import private_link_choice

    scope = "/subscriptions/s/resourceGroups/g/providers/Microsoft.HybridCompute/privateLinkScopes/p"
    assert private_link_choice("true", scope) == scope
    assert private_link_choice("false", None) is None and private_link_choice(None, None) is None
    for enable, given in (("true", None), ("false", scope), (None, scope), ("yes", scope)):
        with pytest.raises(UsageError):
            private_link_choice(enable, given)


def test_a_refusal_fails_troubleshoot_while_recent_and_is_shown_after() -> None:
    now = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
    entry = {"rule": "PrivateEndpointConnectionNotApproved", "arrival": "privateEndpoint /pe"}
    recent = refusal_checks([{**entry, "time": "2026-12-06T11:58:00Z"}], now)[0]
    assert not recent.ok and "approve" in recent.fix and "PrivateEndpointConnectionNotApproved" in recent.detail
    old = refusal_checks([{**entry, "time": "2026-12-06T10:00:00Z"}] * 5, now)[0]
    assert old.ok and old.fix == "" and old.detail.endswith("(+2 older)")
    assert refusal_checks([], now)[0].ok


async def test_enforcement_reads_a_clusters_facts_once_until_a_resource_changes(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await db.migrate()
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    scope_id = "/providers/Microsoft.HybridCompute/privateLinkScopes/s"
    cluster_id = "/providers/Microsoft.Kubernetes/connectedClusters/c"

    def row(rid: str, kind: str, properties: dict[str, object]) -> Resource:
        return Resource(id_key=rid.lower(), id=rid, subscription_id=None, group_key="", parent_key=None,
                        type_key=kind.lower(), type=kind, name=rid.rsplit("/", 1)[1], location="eastus", tags={},
                        properties=properties, provisioning_state="Succeeded", etag="e", created_at=now,
                        changed_at=now)  # fmt: skip

    async with db.transaction() as session:
        session.add(row(scope_id, SCOPES, {"publicNetworkAccess": "Enabled", "privateLinkScopeId": "u"}))
        session.add(row(cluster_id, "Microsoft.Kubernetes/connectedClusters",
                        {"privateLinkState": "Enabled", "privateLinkScopeResourceId": scope_id}))  # fmt: skip
    statements: list[str] = []
    event.listen(db.engine.sync_engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    clock = ManualClock(now)
    enforcement = Enforcement(db, Counter(), EndpointMaps(Settings()), clock)
    try:
        assert (await enforcement.enforce(cluster_id, PUBLIC)).scope_uuid == "u"
        assert any("resources" in s for s in statements)  # read from the store once
        statements.clear()
        await enforcement.enforce(cluster_id, PUBLIC)
        assert statements == []  # then kept: no read on the next request
        async with db.transaction() as session:  # the scope goes private (any commit to resources)
            scope = await session.get(Resource, scope_id.lower())
            assert scope is not None
            scope.properties = {**scope.properties, "publicNetworkAccess": "Disabled"}
        with pytest.raises(PrivateLinkRefused) as refused:
            await enforcement.enforce(cluster_id, PUBLIC)
        assert refused.value.code == Rule.PUBLIC_ACCESS_DISABLED.value
        assert (await recent_refusals(db, cluster_id))[0]["rule"] == Rule.PUBLIC_ACCESS_DISABLED.value
        with pytest.raises(PrivateLinkRefused):  # the same refusal again at once: counted, not written again
            await enforcement.enforce(cluster_id, PUBLIC)
        assert len(await recent_refusals(db, cluster_id)) == 1
        clock.advance(6)
        with pytest.raises(PrivateLinkRefused):
            await enforcement.enforce(cluster_id, PUBLIC)
        assert len(await recent_refusals(db, cluster_id)) == 2
    finally:
        await db.close()
