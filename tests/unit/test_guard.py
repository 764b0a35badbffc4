"""guard's own decisions: what it asks the control plane, what it answers alone, and how long it remembers."""

from __future__ import annotations

import base64
import json
import ssl
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from halyard.agent.controlplane import ControlPlaneError
from halyard.agent.guard import BadReview, Decision, DecisionCache, Guard, check_request
from halyard.core.clock import ManualClock

pytestmark = pytest.mark.unit
OID = "6a3f2c1e-0b7d-4e55-9c61-3f1b2a4d5e6f"
GROUP = "0f9e8d7c-6b5a-4c3d-8e2f-1a0b9c8d7e6f"
PODS = {"namespace": "a", "verb": "list", "group": "", "version": "v1", "resource": "pods", "name": ""}


def test_system_and_non_directory_users_get_no_opinion() -> None:
    assert check_request({"user": "system:kube-scheduler", "resourceAttributes": PODS}) == Decision(
        False, False, "Azure does not have opinion for this user."
    )
    decision = check_request({"user": "alice", "groups": [GROUP], "resourceAttributes": PODS})
    assert isinstance(decision, Decision) and not decision.allowed and not decision.denied


def test_the_request_asks_about_the_object_id_and_directory_groups_only() -> None:
    body = check_request(
        {
            "user": OID.upper(),
            "groups": [GROUP, "system:authenticated", GROUP.upper()],
            "resourceAttributes": {**PODS, "name": "p1", "version": "v1"},
        }
    )
    assert body == {
        "user": OID,
        "groups": [GROUP],
        "resourceAttributes": {"namespace": "a", "verb": "list", "group": "", "resource": "pods", "subresource": ""},
    }


def test_an_oid_in_extra_names_the_principal_and_v1beta1_group_is_read() -> None:
    body = check_request(
        {
            "user": "alice@contoso.com",
            "extra": {"oid": [OID]},
            "group": [GROUP],
            "nonResourceAttributes": {"path": "/healthz", "verb": "get"},
        }
    )
    assert body == {"user": OID, "groups": [GROUP], "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}


@pytest.mark.parametrize(
    "spec",
    [
        {"resourceAttributes": PODS},
        {"user": OID},
        {"user": OID, "groups": "g", "resourceAttributes": PODS},
        {"user": OID, "groups": [GROUP] * 257, "resourceAttributes": PODS},
        {"user": OID, "extra": {"oid": [OID, OID]}, "resourceAttributes": PODS},
    ],
)
def test_malformed_reviews_are_refused(spec: dict[str, Any]) -> None:
    with pytest.raises(BadReview):
        check_request(spec)


def test_the_cache_forgets_after_its_ttl_and_keeps_the_most_recently_used() -> None:
    clock = ManualClock()
    cache = DecisionCache(clock, ttl=15, max_entries=2)
    yes = Decision(True, False, "ok")
    cache.put("a", yes)
    clock.advance(14.9)
    assert cache.get("a") == yes
    clock.advance(0.1)
    assert cache.get("a") is None and len(cache) == 0
    cache.put("a", yes)
    cache.put("b", yes)
    cache.get("a")
    cache.put("c", yes)
    assert (cache.get("a"), cache.get("b"), cache.get("c")) == (yes, None, yes)


class ControlPlane:
    """The access check as an in-memory control plane: the user ids allowed, and what it was asked."""

    def __init__(self) -> None:
        self.allowed: set[str] = set()
        self.asked: list[dict[str, Any]] = []
        self.fail_with = 0
        self.valid_token = "t1"

    def handle(self, request: httpx.Request) -> httpx.Response:
        if request.headers["Authorization"] != f"Bearer {self.valid_token}":
            return httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken", "message": "expired"}})
        if self.fail_with:
            return httpx.Response(self.fail_with, json={"error": {"code": "X", "message": "failed"}})
        body = json.loads(request.content)
        self.asked.append(body)
        allowed = body["user"] in self.allowed
        return httpx.Response(200, json={"allowed": allowed, "denied": not allowed, "reason": "by the roles"})


class Tokens:
    def __init__(self) -> None:
        self.current, self.minted = "t0", 0

    async def token(self) -> str:
        return self.current

    def forget_token(self) -> None:
        self.minted += 1
        self.current = f"t{self.minted}"


def _guard(cp: ControlPlane, clock: ManualClock, tmp_path: Path, tokens: Tokens | None = None) -> Guard:
    http = httpx.AsyncClient(transport=httpx.MockTransport(cp.handle))
    return Guard(http, "https://cp.example/dp", tokens or Tokens(), clock, tmp_path, ttl=15)


async def test_a_revocation_is_seen_once_the_cached_decision_expires(tmp_path: Path) -> None:
    cp, clock = ControlPlane(), ManualClock()
    cp.valid_token = "t0"
    guard = _guard(cp, clock, tmp_path)
    spec = {"user": OID, "resourceAttributes": PODS}
    cp.allowed.add(OID)
    assert (await guard.review(spec)).allowed
    cp.allowed.clear()  # the role assignment is deleted
    clock.advance(14)
    assert (await guard.review({**spec, "resourceAttributes": {**PODS, "name": "other"}})).allowed  # cached
    clock.advance(1)
    decision = await guard.review(spec)
    assert (decision.allowed, decision.denied) == (False, True)
    assert len(cp.asked) == 2
    cp.allowed.add(OID)
    clock.advance(10)
    assert not (await guard.review(spec)).allowed  # a denial is cached too
    clock.advance(5)
    assert (await guard.review(spec)).allowed


async def test_a_refused_token_is_replaced_once(tmp_path: Path) -> None:
    cp, clock, tokens = ControlPlane(), ManualClock(), Tokens()
    cp.allowed.add(OID)
    guard = _guard(cp, clock, tmp_path, tokens)
    assert (await guard.review({"user": OID, "resourceAttributes": PODS})).allowed
    assert tokens.minted == 1


async def test_control_plane_failures_are_not_cached_and_its_refusals_are(tmp_path: Path) -> None:
    cp, clock = ControlPlane(), ManualClock()
    cp.allowed.add(OID)
    guard = _guard(cp, clock, tmp_path)
    spec = {"user": OID, "resourceAttributes": PODS}
    cp.fail_with = 503
    with pytest.raises(ControlPlaneError):
        await guard.review(spec)
    assert len(guard.cache) == 0
    cp.fail_with = 400
    decision = await guard.review(spec)
    assert (decision.allowed, decision.denied) == (False, True)
    cp.fail_with = 0
    assert not (await guard.review(spec)).allowed  # the 400 is remembered for the ttl, as Arc's guard does


async def test_the_webhook_listens_on_loopback_over_tls_and_answers_in_the_reviews_version(tmp_path: Path) -> None:
    cp, clock = ControlPlane(), ManualClock()
    cp.valid_token = "t0"
    cp.allowed.add(OID)
    guard = _guard(cp, clock, tmp_path)
    await guard.reconcile()
    try:
        config = yaml.safe_load(guard.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == f"https://127.0.0.1:{guard.port}/"
        ca = ssl.create_default_context(cadata=base64.b64decode(cluster["certificate-authority-data"]).decode())
        async with httpx.AsyncClient(verify=ca, base_url=cluster["server"]) as client:
            review = {"apiVersion": "authorization.k8s.io/v1beta1", "kind": "SubjectAccessReview"}
            r = await client.post("/", json={**review, "spec": {"user": OID, "resourceAttributes": PODS}})
            assert r.status_code == 200
            assert r.json() == {**review, "status": {"allowed": True, "reason": "by the roles"}}
            r = await client.post("/", json={**review, "spec": {"user": str(uuid.uuid4()), "resourceAttributes": PODS}})
            assert r.json()["status"] == {"allowed": False, "denied": True, "reason": "by the roles"}
            assert (await client.post("/", content=b"{")).status_code == 400
            assert (await client.post("/", json={**review, "kind": "TokenReview", "spec": {}})).status_code == 400
            assert (await client.post("/", content=b"x" * 70_000)).status_code == 413
            assert (await client.get("/")).status_code == 405
    finally:
        await guard.close()
