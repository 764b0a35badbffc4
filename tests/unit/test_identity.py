"""Tokens and signing keys against a real (temporary) SQLite store, with a clock the test moves."""

import datetime as dt
from dataclasses import replace
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from halyard.controlplane.identity.keys import KeyRing
from halyard.controlplane.identity.secrets import hash_secret, new_secret, verify_secret
from halyard.controlplane.identity.tokens import TokenService
from halyard.core.clock import ManualClock
from halyard.core.errors import InvalidAuthenticationToken
from halyard.core.sealing import Sealer
from halyard.store import Database

pytestmark = pytest.mark.unit
AUD = "https://management.halyard.local/"


@pytest.fixture
async def ring(tmp_path: Path) -> KeyRing:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await db.migrate()
    clock = ManualClock()
    keys = KeyRing(
        db,
        Sealer.from_data_dir(tmp_path),
        clock,
        rotation=dt.timedelta(days=30),
        token_lifetime=dt.timedelta(hours=1),
        prepublish=dt.timedelta(minutes=10),
    )
    await keys.ensure()
    return keys


def _service(ring: KeyRing) -> TokenService:
    return TokenService(ring, ring._clock, issuer_base="https://h", lifetime=dt.timedelta(hours=1))


async def _verify(service: TokenService, token: str, audience: str = AUD):
    return await service.verify(token, audience=audience)


async def test_token_round_trip_and_audience_binding(ring: KeyRing) -> None:
    service = _service(ring)
    token, lifetime = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    assert lifetime == 3600
    caller = await _verify(service, token)
    assert (caller.object_id, caller.app_id, caller.tenant_id) == ("o", "a", "t")
    assert (await _verify(service, token, AUD.rstrip("/"))).object_id == "o"  # trailing slash is not significant
    with pytest.raises(InvalidAuthenticationToken, match="audience"):
        await _verify(service, token, "https://agents.halyard.local/")


async def test_expired_token_is_refused(ring: KeyRing) -> None:
    service = _service(ring)
    token, _ = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    ring._clock.advance(3600 + 31)  # type: ignore[attr-defined]
    with pytest.raises(InvalidAuthenticationToken, match="expired"):
        await _verify(service, token)


async def test_a_token_verified_before_is_still_checked_for_time_audience_and_key(ring: KeyRing) -> None:
    service = _service(ring)
    token, _ = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    later, _ = service.issue(tenant_id="t", object_id="p", app_id="a", kind="ServicePrincipal", audience=AUD)
    assert (await _verify(service, token)).object_id == "o"  # verified, and remembered
    with pytest.raises(InvalidAuthenticationToken, match="audience"):
        await _verify(service, token, "https://agents.halyard.local/")
    ring._clock.advance(3600 + 31)  # type: ignore[attr-defined]
    with pytest.raises(InvalidAuthenticationToken, match="expired"):
        await _verify(service, token)
    ring._clock.advance(-(3600 + 31))  # type: ignore[attr-defined]
    assert (await _verify(service, later)).object_id == "p"
    kid = jwt.get_unverified_header(later)["kid"]
    ring._keys[kid] = replace(ring._keys[kid], retires_at=ring._clock.now())
    with pytest.raises(InvalidAuthenticationToken, match="unknown or retired key"):
        await _verify(service, later)


async def test_a_cluster_token_names_its_cluster(ring: KeyRing) -> None:
    service = _service(ring)
    cluster = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c"
    token, _ = service.issue(
        tenant_id="t", object_id="o", app_id="a", kind="Cluster", audience=AUD, resource_id=cluster
    )
    assert jwt.decode(token, options={"verify_signature": False})["xms_mirid"] == cluster
    assert (await _verify(service, token)).resource_id == cluster
    plain, _ = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    assert (await _verify(service, plain)).resource_id is None


async def test_tampered_and_foreign_tokens_are_refused(ring: KeyRing) -> None:
    service = _service(ring)
    token, _ = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    claims = jwt.decode(token, options={"verify_signature": False})
    header = jwt.get_unverified_header(token)
    foreign = jwt.encode(
        {**claims, "oid": "admin"},
        ec.generate_private_key(ec.SECP256R1()),
        algorithm="ES256",
        headers={"kid": header["kid"]},
    )
    with pytest.raises(InvalidAuthenticationToken, match="signature or claims are invalid"):
        await _verify(service, foreign)  # the right kid, another key's signature
    none_alg = jwt.encode(claims, None, algorithm="none")
    with pytest.raises(InvalidAuthenticationToken, match="not signed with a supported algorithm"):
        await _verify(service, none_alg)


async def test_key_rotation_without_downtime(ring: KeyRing) -> None:
    service = _service(ring)
    clock: ManualClock = ring._clock  # type: ignore[assignment]
    old_token, _ = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    new_kid = await ring.rotate()
    # Published at once, used only after the pre-publication window.
    assert {k["kid"] for k in ring.jwks()["keys"]} == {old_kid, new_kid}
    assert ring.signing_key().kid == old_kid
    clock.advance(11 * 60)
    assert ring.signing_key().kid == new_kid
    new_token, _ = service.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal", audience=AUD)
    assert jwt.get_unverified_header(new_token)["kid"] == new_kid
    assert (await _verify(service, old_token)).object_id == "o"  # tokens of the old key stay valid for their life
    clock.advance(3600 + 5 * 60 + 1)
    await ring.load()
    assert [k["kid"] for k in ring.jwks()["keys"]] == [new_kid]  # the old key retires after its last token expired
    with pytest.raises(InvalidAuthenticationToken, match="unknown or retired key"):
        await _verify(service, old_token)


async def test_rotation_happens_when_due(ring: KeyRing) -> None:
    first = ring.signing_key().kid
    ring._clock.advance(30 * 86400)  # type: ignore[attr-defined]
    await ring.ensure()
    assert len(ring.jwks()["keys"]) == 2
    ring._clock.advance(11 * 60)  # type: ignore[attr-defined]
    assert ring.signing_key().kid != first


def test_secret_hashing() -> None:
    stored = hash_secret("s3cret")
    assert verify_secret("s3cret", stored)
    assert not verify_secret("s3cret!", stored)
    assert not verify_secret("s3cret", "plain")
    assert hash_secret("s3cret") != stored  # salted


def test_a_new_secret_never_reads_as_a_command_line_option() -> None:
    # CI once drew a secret starting with '-' and the documented `az login -p "$CLIENT_SECRET"` refused it.
    drawn = [new_secret() for _ in range(2000)]  # a leading '-' once in 64: P(none in 2000) is about 1e-14
    assert all(len(s) == 40 and not s.startswith("-") for s in drawn)
    assert len(set(drawn)) == len(drawn)
