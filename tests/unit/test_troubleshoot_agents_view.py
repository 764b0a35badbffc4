"""troubleshoot from where the agents run (issue 13): when the agents record their view, which hosts they look at,
and the checks made of a record and of the cluster's agent pods, each failure with its fix."""

from __future__ import annotations

import datetime as dt

from halyard.agent.diagnostics import FIRST_WAIT, LEAST, PERIOD, Written, due, hosts_of
from halyard.api.agents import EndpointMap
from halyard.api.diagnostics import AgentIssue, AgentsView, Diagnostics, NameView
from halyard.cli.agentchecks import cluster_side, recorded_name_checks
from halyard.cli.privatelinkchecks import Check
from halyard.kube.agentpods import Stuck
from halyard.kube.agentsview import AgentDeployment, AgentsInCluster

NOW = dt.datetime(2026, 12, 6, 12, 0, tzinfo=dt.UTC)
RID = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c"
ZONE = "privatelink.halyard.local"
PRIVATE = [f"u.{member}.{ZONE}" for member in ("his", "dp", "relay", "management")]


def _at(seconds: float) -> dt.datetime:
    return NOW + dt.timedelta(seconds=seconds)


def test_the_agents_record_once_the_first_beat_was_tried_on_change_and_every_few_minutes() -> None:
    assert not due(_at(1), NOW, None, None, tried=False)  # starting: wait for the first beat ...
    assert due(_at(1), NOW, None, None, tried=True)
    assert due(_at(FIRST_WAIT), NOW, None, None, tried=False)  # ... but not for ever
    last = Written(_at(10), None)
    assert not due(_at(20), NOW, last, None, tried=True)  # nothing changed
    assert not due(_at(20), NOW, last, "403 refused", tried=True)  # changed, but within LEAST of the last record
    assert due(_at(10 + LEAST), NOW, last, "403 refused", tried=True)
    assert due(_at(10 + PERIOD), NOW, last, None, tried=True)  # every PERIOD anyway
    failing = Written(_at(10), "403 refused")
    assert due(_at(10 + LEAST), NOW, failing, None, tried=True)  # recovered: recorded too
    assert not due(_at(10 + LEAST), NOW, failing, "403 refused", tried=True)


def test_the_hosts_looked_at_are_the_maps_each_once_heartbeat_first() -> None:
    endpoints = EndpointMap(
        management="https://u.management.z:8443/", login="https://u.management.z:8443/", his="https://u.his.z/his",
        dp="https://u.dp.z/dp", agentAudience="a", tenant="t",
    )  # fmt: skip
    assert hosts_of(endpoints) == [
        ("u.dp.z", 443, ["dp"]),
        ("u.his.z", 443, ["his"]),
        ("u.management.z", 8443, ["relay", "login", "management"]),  # no relay in the map: beside management
    ]


def _view(host: str, **fields: object) -> NameView:
    return NameView(services=[host.split(".")[1]], host=host, port=443, **fields)  # type: ignore[arg-type]


def _record(names: list[NameView], *, age: float = 30, state: str = "Succeeded", **agents: object) -> Diagnostics:
    return Diagnostics(
        resourceId=RID, observedAt=NOW - dt.timedelta(seconds=age), mode="in-cluster", host="resource-sync-7d9",
        agentVersion="1.0.0", endpointsVersion="v", agents=AgentsView(state=state, lastBeat=NOW, **agents),  # type: ignore[arg-type]
        names=names,
    )  # fmt: skip


def _by_check(checks: list[Check]) -> dict[str, Check]:
    return {c.check: c for c in checks}


def test_a_name_the_agents_resolve_to_the_wrong_address_fails_from_their_view_with_the_fix() -> None:
    good = {"addresses": ["10.1.0.4"], "tcp": True, "tls": True, "certificateNotAfter": NOW + dt.timedelta(days=80)}
    names = [_view(PRIVATE[0], **good), _view(PRIVATE[2], **good), _view(PRIVATE[3], **good),
             _view(PRIVATE[1], addresses=["10.9.9.9"], tcp=False, tcpError="ConnectionRefusedError")]  # fmt: skip
    checks = _by_check(recorded_name_checks(_record(names), PRIVATE, {"10.1.0.4"}, NOW))
    dp = checks[f"resolve {PRIVATE[1]}"]
    assert not dp.ok and dp.detail.startswith("from the agents (in-cluster on resource-sync-7d9, 30 s ago): 10.9.9.9")
    assert "(expected 10.1.0.4)" in dp.detail and "dns-config" in dp.fix
    tcp = checks[f"TCP {PRIVATE[1]}:443"]
    assert not tcp.ok and "halyard endpoint run" in tcp.fix
    his = checks[f"TLS {PRIVATE[0]}"]
    assert his.ok and "expires in 80 days" in his.detail
    assert checks["agents' endpoint map"].ok


def test_agents_still_on_the_public_map_proxied_or_failing_tls_are_each_said() -> None:
    public = _view("127.0.0.1", addresses=["127.0.0.1"], tcp=True, tls=False, tlsError="SSLCertVerificationError")
    proxied = _view("u.dp.z", via="http://arc-proxy.halyard-system.svc:3129", tcp=True, tls=True)
    checks = _by_check(recorded_name_checks(_record([public, proxied]), PRIVATE, {"10.1.0.4"}, NOW))
    moved = checks["agents' endpoint map"]
    assert not moved.ok and "not the scope's" in moved.detail and "next accepted heartbeat" in moved.fix
    assert not checks["TLS 127.0.0.1"].ok and "certificate" in checks["TLS 127.0.0.1"].fix
    assert checks["resolve u.dp.z"].ok and "left to the proxy http://arc-proxy" in checks["resolve u.dp.z"].detail
    # Without private link any address is right: the public names as the cluster resolves them.
    plain = _by_check(recorded_name_checks(_record([public]), [], set(), NOW))
    assert plain["resolve 127.0.0.1"].ok and "agents' endpoint map" not in plain


def test_the_cluster_side_says_whose_cluster_whether_pods_run_and_the_agents_state() -> None:
    record = _record([], state="Failed", errors=[AgentIssue(component="identity-operator", message="his refused")],
                     beatError="403 PrivateLinkScopePublicNetworkAccessDisabled", beatErrorAt=NOW)  # fmt: skip
    stuck = [Stuck("resource-sync-1", "agent", "ImagePullBackOff", "no such image")]
    inside = AgentsInCluster(RID.upper(), [AgentDeployment("resource-sync", 0, 1), AgentDeployment("guard", 1, 1)],
                             stuck, record)  # fmt: skip
    checks, used = cluster_side(inside, RID, NOW)
    by = _by_check(checks)
    assert used is record
    pods = by["agent pods"]
    assert (
        not pods.ok and "1 of 2" in pods.detail and "ImagePullBackOff" in pods.detail and "--agent-registry" in pods.fix
    )
    state = by["agent state"]
    assert not state.ok and "identity-operator: his refused" in state.detail
    assert "kubectl logs -n halyard-system deploy/identity-operator" in state.fix
    assert not by["heartbeat"].ok and "PrivateLinkScopePublicNetworkAccessDisabled" in by["heartbeat"].detail

    # Local agents: no pods, and said so.
    local = record.model_copy(update={"mode": "local", "host": "edge-box", "agents": AgentsView(state="Succeeded",
                                      lastBeat=NOW - dt.timedelta(seconds=5))})  # fmt: skip
    by = _by_check(cluster_side(AgentsInCluster(RID, [], [], local), RID, NOW)[0])
    assert by["agent pods"].ok and "local process on edge-box" in by["agent pods"].detail
    assert by["heartbeat"].ok and by["heartbeat"].detail == "taken 5 s ago"

    # A stale record is not used: the agents stopped recording.
    checks, used = cluster_side(AgentsInCluster(RID, [], [], _record([], age=3600)), RID, NOW)
    assert used is None and not _by_check(checks)["agents' view"].ok
    # Nothing recorded (older agents): said, names from this machine, not a failure.
    checks, used = cluster_side(AgentsInCluster(RID, [AgentDeployment("resource-sync", 1, 1)]), RID, NOW)
    assert used is None and _by_check(checks)["agents' view"].ok


def test_another_clusters_kubeconfig_fails_only_when_named() -> None:
    other = AgentsInCluster(RID + "-other", record=_record([]))
    (named,), used = cluster_side(other, RID, NOW)
    assert used is None and not named.ok and "connected as" in named.detail and "--kube-config" in named.fix
    (yours,), _ = cluster_side(other, RID, NOW, named=False)
    assert yours.ok and "checked from this machine" in yours.detail
    (bare,), _ = cluster_side(AgentsInCluster(None), RID, NOW)
    assert not bare.ok and "not onboarded" in bare.detail
