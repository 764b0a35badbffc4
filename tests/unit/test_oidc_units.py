"""The relying party's pure checks (identity/oidc.py) and the operator's provider file (identity/providers.py)."""

from __future__ import annotations

import datetime as dt
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from halyard.controlplane.identity.oidc import (
    Discovery,
    FederationRefused,
    external_user,
    key_for,
    verify_id_token,
    wanted_groups,
)
from halyard.controlplane.identity.providers import ClaimMapping, GroupMapping, load

pytestmark = pytest.mark.unit
ISSUER = "https://idp.example/realm"
KEY = ec.generate_private_key(ec.SECP256R1())
JWKS = {"keys": [{**json.loads(jwt.algorithms.ECAlgorithm.to_jwk(KEY.public_key())), "kid": "a", "use": "sig"}]}


def _token(**changes: object) -> str:
    now = int(time.time())
    body = {"iss": ISSUER, "aud": "halyard", "sub": "s1", "iat": now, "exp": now + 300, "nonce": "n1", **changes}
    return jwt.encode({k: v for k, v in body.items() if v is not None}, KEY, algorithm="ES256", headers={"kid": "a"})


def _verify(token: str, *, now: dt.datetime | None = None) -> dict[str, object]:
    found = key_for(token, JWKS, ("ES256",))
    assert found is not None
    return verify_id_token(
        token, found[0], found[1], issuer=ISSUER, client_id="halyard", nonce="n1", now=now or dt.datetime.now(dt.UTC)
    )


def test_an_id_token_is_checked_claim_by_claim() -> None:
    assert _verify(_token())["sub"] == "s1"
    assert _verify(_token(aud=["halyard", "other"], azp="halyard"))["sub"] == "s1"
    for changes, reason in (
        ({"aud": "other"}, "another application"),
        ({"aud": ["halyard", "other"], "azp": "other"}, "authorized party"),
        ({"iss": "https://evil.example"}, "configured issuer"),
        ({"nonce": None}, "no nonce"),
        ({"nonce": "n2"}, "not this sign-in's"),
        ({"sub": None}, "no subject"),
        ({"exp": int(time.time()) - 3600}, "expired"),
        ({"iat": int(time.time()) - 7200, "exp": int(time.time()) + 60}, "replay"),
    ):
        with pytest.raises(FederationRefused, match=reason):
            _verify(_token(**changes))
    with pytest.raises(FederationRefused, match="expired"):
        _verify(_token(), now=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
    with pytest.raises(FederationRefused, match="not accepted"):
        key_for(jwt.encode({"sub": "x"}, "secret-used-as-key-000000000000000", algorithm="HS256"), JWKS, ("ES256",))
    assert key_for(jwt.encode({"a": 1}, KEY, algorithm="ES256", headers={"kid": "b"}), JWKS, ("ES256",)) is None


def test_discovery_must_name_the_configured_issuer_and_https_endpoints() -> None:
    doc = {"issuer": ISSUER, "authorization_endpoint": f"{ISSUER}/auth", "token_endpoint": f"{ISSUER}/token",
           "jwks_uri": f"{ISSUER}/keys", "id_token_signing_alg_values_supported": ["HS256", "ES256"]}  # fmt: skip
    assert Discovery.parse(doc, ISSUER + "/").algorithms == ("ES256",)
    with pytest.raises(FederationRefused, match="names the issuer"):
        Discovery.parse({**doc, "issuer": "https://other.example"}, ISSUER)
    with pytest.raises(FederationRefused, match="https"):
        Discovery.parse({**doc, "token_endpoint": "http://idp.example/token"}, ISSUER)
    with pytest.raises(FederationRefused, match="no algorithm"):
        Discovery.parse({**doc, "id_token_signing_alg_values_supported": ["none", "HS256"]}, ISSUER)


def test_claims_and_groups_map_as_the_operator_said() -> None:
    mapping = ClaimMapping(user_name="email", display_name="given", groups="roles")
    user = external_user({"sub": "s", "email": "A@B.example", "roles": ["ops", "dev", 7]}, mapping)
    assert (user.user_name, user.display_name, user.groups) == ("A@B.example", "A@B.example", ("7", "dev", "ops"))
    with pytest.raises(FederationRefused, match="no 'email' claim"):
        external_user({"sub": "s"}, mapping)
    table = GroupMapping(by_name=False, map={"ops": "halyard-operators", "dev": "9b1f0d6e-0000-4000-8000-000000000001"})
    assert wanted_groups(["ops", "dev", "sales"], table) == (
        "9b1f0d6e-0000-4000-8000-000000000001",
        "halyard-operators",
    )
    assert wanted_groups(["ops", "sales"], GroupMapping(map={"ops": "operators"})) == ("operators",)
    by_name = GroupMapping(by_name=True, map={"ops": "operators"})
    assert wanted_groups(["ops", "sales"], by_name) == ("operators", "sales")


def test_the_provider_file_is_checked_at_start(tmp_path: Path) -> None:
    assert load(None).providers == []
    good = {
        "id": "corp",
        "display_name": "Corp",
        "issuer": "https://idp.example/",
        "client_id": "c",
        "scopes": ["email"],
    }
    path = tmp_path / "f.json"
    path.write_text(json.dumps({"providers": [good]}))
    provider = load(path).providers[0]
    assert provider.issuer == "https://idp.example" and provider.scopes == ["openid", "email"]
    assert provider.users == "existing"  # just-in-time creation only when the operator asks for it
    for bad in ({**good, "issuer": "http://idp.example"}, {**good, "id": "Bad Id"}, {**good, "user": "create"}):
        path.write_text(json.dumps({"providers": [bad]}))
        with pytest.raises(ValueError, match=str(path)):
            load(path)
    path.write_text(json.dumps({"providers": [good, good]}))
    with pytest.raises(ValueError, match="unique"):
        load(path)
