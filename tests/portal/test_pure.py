"""The portal's pure parts: table rows from API bodies, the status filter and counts, the CSRF check, sessions."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from halyard.controlplane.portal import fleet
from halyard.controlplane.portal.security import CSP, csrf_ok
from halyard.controlplane.portal.sessions import Sessions
from halyard.core.clock import ManualClock
from halyard.core.sealing import Sealer
from halyard.store import Database

pytestmark = pytest.mark.unit
OWN = "https://halyard.example:8443"
ID = "/subscriptions/s1/resourceGroups/Rg-A/providers/Microsoft.Kubernetes/connectedClusters/"


def _body(name: str, status: str, **props: object) -> dict[str, object]:
    return {"id": ID + name, "name": name, "tags": {"env": "<b>x</b>"},
            "properties": {"connectivityStatus": status, **props}}  # fmt: skip


def test_a_row_flattens_what_the_api_rendered() -> None:
    r = fleet.row(_body("c1", "Connected", totalNodeCount=3, totalCoreCount=8, agentVersion="1.4.0",
                        privateLinkScopeResourceId="/x/privateLinkScopes/scope-a", gateway={"id": "/x/gateways/gw"}))  # fmt: skip
    assert (r.group, r.subscription, r.nodes, r.cores, r.private_link, r.gateway) == (
        "Rg-A",
        "s1",
        3,
        8,
        "scope-a",
        "gw",
    )
    assert r.tags == {"env": "<b>x</b>"}  # kept as text: the template escapes it
    bare = fleet.row({"id": ID + "c2", "name": "c2"})
    assert (bare.status, bare.nodes, bare.gateway) == ("", None, "")


def test_status_and_name_filters_counts_and_sort() -> None:
    rows = [fleet.row(_body(n, s, totalNodeCount=i)) for i, (n, s) in
            enumerate([("web-1", "Connected"), ("web-2", "Offline"), ("db-1", "Offline"), ("x", "Weird")])]  # fmt: skip
    assert [r.name for r in rows if fleet.Criteria(status="Offline", name="WEB").matches(r)] == ["web-2"]
    assert not fleet.Criteria(group="rg-a").local and fleet.Criteria(name="w").local
    answer = {"Connected": 1, "Offline": 2, "Weird": 1, "Bad": "x"}
    assert fleet.counted(answer) == {"Connected": 1, "Connecting": 0, "Offline": 2, "Expired": 0, "Weird": 1}
    assert fleet.counted(None) == dict.fromkeys(fleet.STATUSES, 0)
    assert fleet.orderby("lastSeen", True) == {"$orderby": "properties/lastConnectivityTime desc"}
    assert fleet.orderby("name", False) == {"$orderby": "name"} and fleet.orderby("nodes", False) == {}


def test_previous_pages_are_a_bounded_stack_of_tokens() -> None:
    back = fleet.pushed("", "")  # leaving the first page
    back = fleet.pushed(back, "tok2")
    assert fleet.popped(back) == ("tok2", fleet.FIRST) and fleet.popped(fleet.FIRST) == ("", "")
    assert fleet.popped("") is None
    deep = ""
    for i in range(200):
        deep = fleet.pushed(deep, f"t{i}")
    assert len(deep.split(",")) == fleet.BACK_DEPTH and fleet.popped(deep) == ("t199", deep.rsplit(",", 1)[0])


def test_csrf_needs_the_sessions_token_and_the_own_origin() -> None:
    assert csrf_ok("t0ken", "t0ken", OWN, OWN) and csrf_ok("t0ken", "t0ken", None, OWN)
    assert csrf_ok("t0ken", "t0ken", "https://HALYARD.example:8443", OWN)
    assert not csrf_ok("t0ken", "other", OWN, OWN)
    assert not csrf_ok("t0ken", None, OWN, OWN) and not csrf_ok("", "", OWN, OWN)
    assert not csrf_ok("t0ken", "t0ken", "https://evil.example", OWN)
    assert not csrf_ok("t0ken", "t0ken", "null", OWN)  # an opaque origin (sandboxed frame, data: page)
    assert "'unsafe-inline'" not in CSP and "'unsafe-eval'" not in CSP and "frame-ancestors 'none'" in CSP


async def test_sign_ins_are_spent_once_and_expire_and_sessions_end_idle_or_late(tmp_path: Path) -> None:
    clock = ManualClock()
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'halyard.db'}")
    await db.migrate()
    sessions = Sessions(db, Sealer(Fernet.generate_key()), clock)
    try:
        state, pending = await sessions.begin_sign_in("/portal/clusters")
        digest = base64.urlsafe_b64encode(hashlib.sha256(pending.verifier.encode()).digest()).rstrip(b"=").decode()
        assert pending.challenge == digest and len(pending.verifier) >= 43
        assert await sessions.finish_sign_in(state) == pending
        assert await sessions.finish_sign_in(state) is None  # spent
        late, _ = await sessions.begin_sign_in("/portal/clusters")
        clock.advance(11 * 60)
        assert await sessions.finish_sign_in(late) is None
        key = await sessions.create("alice", "access", "refresh", 3600)
        session = await sessions.get(key)
        assert session is not None and not sessions.needs_refresh(session)
        clock.advance(3550)
        assert sessions.needs_refresh(session)
        # One refresh at a time: a second claim waits for the first to land (or its claim to lapse).
        assert await sessions.claim_refresh(session) and not await sessions.claim_refresh(session)
        fresh = await sessions.refreshed(key, session, "access-2", "refresh-2", 3600)
        assert (await sessions.get(key)) == fresh and not sessions.needs_refresh(fresh)
        clock.advance(9 * 3600)  # idle past 8 h
        assert (
            await sessions.get(key) is None and await sessions.get("nope") is None and await sessions.get(None) is None
        )
        # Busy, but past the absolute lifetime: ended too; ended rows are pruned.
        busy = await sessions.create("bob", "a", "r", 3600)
        for _ in range(25):
            clock.advance(3600)
            await sessions.get(busy)
        assert await sessions.get(busy) is None
        await sessions.create("carol", "a", "r", 3600)
        clock.advance(9 * 3600)
        assert await sessions.prune() == 1
    finally:
        await db.close()
