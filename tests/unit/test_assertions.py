"""auth-proxy's check of the relay's assertions: only the control plane's keys, only this cluster, at most five
minutes, each assertion once; anything else refused before a byte reaches the API server."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from halyard.agent.authproxy import AssertionRefused, AssertionVerifier

pytestmark = pytest.mark.unit
CLUSTER = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c"
ISSUER = "https://cp/tenant/v2.0"
KEY = ec.generate_private_key(ec.SECP256R1())
OTHER_KEY = ec.generate_private_key(ec.SECP256R1())


def _jwks() -> dict[str, Any]:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key()))
    return {"keys": [{**public, "kid": "k1", "use": "sig", "alg": "ES256"}]}


def _verifier(now: float) -> AssertionVerifier:
    http = httpx.AsyncClient(transport=httpx.MockTransport(lambda request: httpx.Response(200, json=_jwks())))
    return AssertionVerifier(http, jwks_url="https://cp/tenant/discovery/v2.0/keys", issuer=ISSUER,
                             cluster_id=CLUSTER, now=lambda: now)  # fmt: skip


def _assertion(key: ec.EllipticCurvePrivateKey = KEY, kid: str = "k1", **claims: Any) -> str:
    now = int(time.time())
    body = {"aud": CLUSTER.upper(), "iss": ISSUER, "iat": now, "nbf": now - 60, "exp": now + 300,
            "oid": "0b7ad3e8-5c2c-4d2e-9b1a-2f7c1c9d0e11", "uti": uuid.uuid4().hex, "groups": [], **claims}  # fmt: skip
    return jwt.encode(body, key, algorithm="ES256", headers={"kid": kid})


async def test_a_good_assertion_names_the_principal_and_works_once() -> None:
    verifier = _verifier(time.time())
    assertion = _assertion()
    principal = await verifier.verify(assertion)  # the cluster id compares without case, as ARM ids do
    assert principal.object_id == "0b7ad3e8-5c2c-4d2e-9b1a-2f7c1c9d0e11" and principal.groups == ()
    with pytest.raises(AssertionRefused, match="already used"):
        await verifier.verify(assertion)


@pytest.mark.parametrize(
    ("assertion", "reason"),
    [
        (lambda: _assertion(OTHER_KEY), "Signature verification failed"),
        (lambda: _assertion(kid="k2"), "unknown key"),
        (lambda: _assertion(aud=CLUSTER.replace("/c", "/other")), "another cluster"),
        (lambda: _assertion(iss="https://elsewhere/tenant/v2.0"), "issuer"),
        (lambda: _assertion(exp=int(time.time()) + 3600), "longer than five minutes"),
        (lambda: _assertion(exp=int(time.time()) - 120), "expired"),
        (lambda: "not.a.jwt", "not a JWT"),
        (lambda: jwt.encode({"aud": CLUSTER}, "s" * 32, algorithm="HS256", headers={"kid": "k1"}), "alg"),
    ],
)
async def test_forged_foreign_stale_and_misdirected_assertions_are_refused(assertion: Any, reason: str) -> None:
    with pytest.raises(AssertionRefused) as refused:
        await _verifier(time.time()).verify(assertion())
    assert reason.lower() in str(refused.value).lower()


async def test_the_keys_come_from_the_login_service_the_agents_follow_now() -> None:
    asked: list[str] = []

    def keys(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(200, json=_jwks())

    where = ["https://cp"]
    http = httpx.AsyncClient(transport=httpx.MockTransport(keys))
    verifier = AssertionVerifier(http, jwks_url=lambda: f"{where[0]}/tenant/discovery/v2.0/keys", issuer=ISSUER,
                                 cluster_id=CLUSTER, now=time.time)  # fmt: skip
    where[0] = "https://abcd.management.privatelink.halyard.local"  # the cluster joined a scope: a new map
    await verifier.verify(_assertion())
    assert asked == ["https://abcd.management.privatelink.halyard.local/tenant/discovery/v2.0/keys"]
