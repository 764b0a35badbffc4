"""Token-signing keys in the database, shared by every replica, rotated without downtime.

A new key is published in JWKS ``prepublish`` before it signs anything, so verifiers that cache JWKS learn it in
time; the key it replaces stays published (and accepted) until every token it signed has expired.
"""

from __future__ import annotations

import datetime as dt
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm
from sqlalchemy import select

from halyard.core.clock import Clock
from halyard.core.pki import key_to_pem, load_key, new_ec_key
from halyard.core.sealing import Sealer
from halyard.store import Database
from halyard.store.models import SigningKey

ALGORITHM = "ES256"


@dataclass(frozen=True)
class LoadedKey:
    kid: str
    private: ec.EllipticCurvePrivateKey
    public_jwk: dict[str, Any]
    activates_at: dt.datetime
    retires_at: dt.datetime
    # Derived once at load: every authenticated request verifies its token with it.
    public: ec.EllipticCurvePublicKey = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "public", self.private.public_key())


class KeyRing:
    def __init__(
        self,
        db: Database,
        sealer: Sealer,
        clock: Clock,
        *,
        rotation: dt.timedelta,
        token_lifetime: dt.timedelta,
        prepublish: dt.timedelta = dt.timedelta(minutes=10),
    ) -> None:
        self._db = db
        self._sealer = sealer
        self._clock = clock
        self.rotation = rotation
        self.token_lifetime = token_lifetime
        self.prepublish = prepublish
        self._keys: dict[str, LoadedKey] = {}
        self._loaded_at = 0.0

    async def load(self) -> None:
        """Read every unretired key from the database (other replicas may have rotated)."""
        now = self._clock.now()
        async with self._db.session() as session:
            rows = (await session.scalars(select(SigningKey).where(SigningKey.retires_at > now))).all()
        keys = {}
        for row in rows:
            private = load_key(self._sealer.unseal(row.sealed_private_key))
            assert isinstance(private, ec.EllipticCurvePrivateKey)
            keys[row.kid] = LoadedKey(row.kid, private, row.public_jwk, row.activates_at, row.retires_at)
        self._keys = keys
        self._loaded_at = time.monotonic()

    async def ensure(self) -> None:
        """Create the first key, or the next one when the current key is due for rotation."""
        await self.load()
        now = self._clock.now()
        if not self._keys:
            await self._add(activates_at=now)
            return
        newest = max(self._keys.values(), key=lambda k: k.activates_at)
        if newest.activates_at <= now and newest.activates_at + self.rotation <= now + self.prepublish:
            await self.rotate()

    async def rotate(self) -> str:
        """Publish a new key now; it starts signing after ``prepublish``. Returns its kid."""
        now = self._clock.now()
        activates = now + self.prepublish
        kid = await self._add(activates_at=activates)
        # Old keys stay valid for every token they can still have signed.
        retire = activates + self.token_lifetime + dt.timedelta(minutes=5)
        async with self._db.transaction() as session:
            for row in (await session.scalars(select(SigningKey).where(SigningKey.kid != kid))).all():
                if row.retires_at > retire:
                    row.retires_at = retire
        await self.load()
        return kid

    async def _add(self, *, activates_at: dt.datetime) -> str:
        private = new_ec_key()
        kid = secrets.token_urlsafe(12)
        jwk = json.loads(ECAlgorithm.to_jwk(private.public_key()))
        jwk.update(kid=kid, use="sig", alg=ALGORITHM)
        async with self._db.transaction() as session:
            session.add(
                SigningKey(
                    kid=kid,
                    sealed_private_key=self._sealer.seal(key_to_pem(private)),
                    public_jwk=jwk,
                    created_at=self._clock.now(),
                    activates_at=activates_at,
                    retires_at=activates_at + 100 * self.rotation,
                )
            )
        await self.load()
        return kid

    def signing_key(self) -> LoadedKey:
        """The newest active key."""
        now = self._clock.now()
        active = [k for k in self._keys.values() if k.activates_at <= now < k.retires_at]
        if not active:
            raise RuntimeError("no active signing key; KeyRing.ensure() has not run")
        return max(active, key=lambda k: k.activates_at)

    async def verification_key(self, kid: str) -> ec.EllipticCurvePublicKey | None:
        key = self._keys.get(kid)
        if key is None and time.monotonic() - self._loaded_at > 5:
            await self.load()  # another replica may have rotated; at most every 5 s, whatever kids callers send
            key = self._keys.get(kid)
        if key is None or key.retires_at <= self._clock.now():
            return None
        return key.public

    def jwks(self) -> dict[str, Any]:
        now = self._clock.now()
        return {"keys": [k.public_jwk for k in self._keys.values() if k.retires_at > now]}
