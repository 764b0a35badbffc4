"""The activity log's pure parts: the ``$filter`` grammar and window, ``$select``, where an event belongs, the
EventData it renders as, and the CLI's filter built from az's options."""

from __future__ import annotations

import datetime as dt

import pytest

from halyard.cli import activitylog
from halyard.cli.errors import CliError
from halyard.controlplane.activity import events, query
from halyard.controlplane.activity.render import event_data
from halyard.core.errors import InvalidRequest

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.UTC)
KEEP = dt.timedelta(days=90)
CLUSTER = "/subscriptions/s1/resourceGroups/RG/providers/Microsoft.Kubernetes/connectedClusters/c1"


def parse(text: str | None, select: str | None = None) -> query.ActivityQuery:
    return query.parse(text, select, now=NOW, retention=KEEP)


def test_azs_bare_timestamps_and_quoted_ones_are_utc() -> None:
    bare = parse("eventTimestamp ge 2026-12-06T01:00:00.123456 and eventTimestamp le 2026-12-06T07:00:00 and "
                 f"resourceId eq '{CLUSTER}'")  # fmt: skip
    assert bare.start == dt.datetime(2026, 12, 6, 1, 0, 0, 123456, tzinfo=dt.UTC)
    assert bare.end == dt.datetime(2026, 12, 6, 7, tzinfo=dt.UTC) and bare.resource_id == CLUSTER
    quoted = parse("eventTimestamp ge '2026-12-06T01:00:00.1234567Z' AND resourceUri eq 'x' and caller eq 'a@b'")
    assert quoted.start.microsecond == 123456 and quoted.end == NOW  # no end: now
    assert quoted.caller == "a@b"
    offset = parse("eventTimestamp ge '2026-12-06T03:00:00+02:00'")
    assert offset.start == dt.datetime(2026, 12, 6, 1, tzinfo=dt.UTC)


def test_an_end_in_the_future_is_now_and_quotes_are_doubled() -> None:
    q = parse("eventTimestamp ge '2026-12-06T00:00:00Z' and eventTimestamp le '2030-01-01T00:00:00Z' and "
              "resourceGroupName eq 'it''s' and status eq 'failed' and levels eq 'Error,Informational'")  # fmt: skip
    assert q.end == NOW and q.resource_group == "it's" and q.status == "Failed"
    assert q.levels == ("Error", "Informational")


@pytest.mark.parametrize(
    ("text", "says"),
    [
        (None, "required"),
        ("  ", "required"),
        ("resourceGroupName eq 'x'", "eventTimestamp ge"),
        ("eventTimestamp eq '2026-12-06T00:00:00Z'", "not eq"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and eventTimestamp ge '2026-12-06T00:00:00Z'", "twice"),
        ("eventTimestamp ge '2026-09-01T00:00:00Z'", "90 days"),
        ("eventTimestamp ge '2026-12-06T07:00:00Z' and eventTimestamp le '2026-12-06T06:00:00Z'", "before its start"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and resourceUri eq 'a' and resourceId eq 'a'", "At most one"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and caller eq 'a' and caller eq 'b'", "twice"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and caller ge 'a'", "eq only"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and caller eq ''", "needs a value"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and levels eq 'Loud'", "levels are among"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and", "not supported"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' caller eq 'a'", "joined with 'and'"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and substringof('a', caller)", "not supported"),
        ("eventTimestamp ge 'then'", "not a valid eventTimestamp"),
        ("eventTimestamp ge '2026-12-06T00:00:00Z' and resourceUri eq '" + "a" * 5000 + "'", "longer than"),
    ],
)
def test_filters_outside_the_grammar_say_why(text: str | None, says: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        parse(text)
    assert refused.value.code == "InvalidFilterInQueryString" and says in str(refused.value)


def test_select_takes_eventdata_names_in_any_case_with_azs_spaces() -> None:
    assert query.parse_select("caller , STATUS,caller") == ("caller", "status")
    assert query.parse_select(None) == () and query.parse_select(" ") == ()
    with pytest.raises(InvalidRequest) as refused:
        query.parse_select("caller,password")
    assert refused.value.code == "InvalidSelect"


def test_where_an_event_belongs() -> None:
    assert events.target_of(CLUSTER) == events.Target(CLUSTER, "s1", "RG", "Microsoft.Kubernetes",
                                                      "Microsoft.Kubernetes/connectedClusters")  # fmt: skip
    ext = CLUSTER + "/providers/Microsoft.KubernetesConfiguration/extensions/flux"
    assert events.target_of(ext).resource_type == "Microsoft.KubernetesConfiguration/extensions"
    child = "/subscriptions/S2/resourceGroups/g/providers/Microsoft.HybridCompute/privateLinkScopes/p/" \
        "privateEndpointConnections/e"  # fmt: skip
    assert (
        events.target_of(child).resource_type == "Microsoft.HybridCompute/privateLinkScopes/privateEndpointConnections"
    )
    assert events.target_of(child).subscription_id == "s2"
    group = events.target_of("/subscriptions/s1/resourceGroups/g")
    assert (group.resource_group, group.resource_type) == ("g", "Microsoft.Resources/subscriptions/resourceGroups")


def test_an_event_renders_as_eventdata() -> None:
    user = events.Actor("ann@contoso.test", "oid-1", "User", "t1")
    started, failed = (
        events.event(
            at=NOW,
            correlation_id="c1",
            actor=user,
            resource_id=CLUSTER,
            http_method="PUT",
            operation_name="Microsoft.Kubernetes/connectedClusters/write",
            status=status,
            status_code=code,
            error=error,
        )
        for status, code, error in (("Started", None, None), ("Failed", 409, {"code": "Conflict", "message": "no"}))
    )
    body = event_data(failed)
    assert body["caller"] == "ann@contoso.test" and body["level"] == "Error"
    assert body["status"] == {"value": "Failed", "localizedValue": "Failed"}
    assert body["subStatus"]["value"] == "Conflict" and body["eventName"]["value"] == "EndRequest"
    assert body["properties"]["statusMessage"] == '{"error":{"code":"Conflict","message":"no"}}'
    assert all(isinstance(v, str) for v in body["properties"].values())  # Azure's properties are strings
    assert body["claims"]["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] == "ann@contoso.test"
    assert body["id"].startswith(CLUSTER + "/events/") and body["eventTimestamp"] == "2026-12-06T08:00:00.000000Z"
    assert event_data(started, ("caller", "status")) == {
        "caller": "ann@contoso.test", "status": {"value": "Started", "localizedValue": "Started"}
    }  # fmt: skip
    assert event_data(started)["subStatus"]["value"] == "" and event_data(started)["level"] == "Informational"


def test_the_clis_window_and_filter_as_az_builds_them() -> None:
    assert activitylog.parse_offset("1d2h30m") == dt.timedelta(days=1, hours=2, minutes=30)
    assert activitylog.parse_offset("6h") == dt.timedelta(hours=6)
    for bad in ("", "h", "1w", "-1h"):
        with pytest.raises(CliError):
            activitylog.parse_offset(bad)
    hour = dt.timedelta(hours=1)
    assert activitylog.window(NOW, None, None, hour) == (NOW - hour, NOW)
    assert activitylog.window(NOW, NOW - 3 * hour, None, hour) == (NOW - 3 * hour, NOW - 2 * hour)
    assert activitylog.window(NOW, None, NOW - hour, hour) == (NOW - 2 * hour, NOW - hour)
    assert activitylog.parse_moment("2026-12-01", "--start-time") == dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    built = activitylog.build_filter(NOW - hour, NOW, resource_group="it's", caller="ann@contoso.test")
    assert built == ("eventTimestamp ge '2026-12-06T07:00:00.000000Z' and eventTimestamp le "
                     "'2026-12-06T08:00:00.000000Z' and resourceGroupName eq 'it''s' and caller eq 'ann@contoso.test'")  # fmt: skip
    assert parse(built).resource_group == "it's"  # the server reads what the CLI writes
    with pytest.raises(CliError):
        activitylog.build_filter(NOW, NOW, resource_group="g", correlation_id="c")
