"""Access tokens: short-lived ES256 JWTs bound to one audience, and their verification."""

from __future__ import annotations

import datetime as dt
import hashlib
import uuid
from dataclasses import dataclass
from typing import Any

import jwt

from halyard.controlplane.identity.keys import ALGORITHM, KeyRing
from halyard.core.clock import Clock
from halyard.core.errors import InvalidAuthenticationToken


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is calling, as proven by a verified token."""

    object_id: str
    app_id: str
    tenant_id: str
    kind: str  # "ServicePrincipal" or "Cluster"
    audience: str
    resource_id: str | None = None  # a cluster identity's connected cluster (claim ``xms_mirid``, as Azure's)
    user_name: str | None = None  # a user's sign-in name (claim ``upn``): who the activity log says called


def same_audience(a: str, b: str) -> bool:
    """Audiences compare without trailing slashes: azure-identity drops one, MSAL keeps it."""
    return a.rstrip("/").lower() == b.rstrip("/").lower()


# Tokens remembered as verified: two per cluster at 20,000 clusters (tokens are renewed at 80% of an hour); a few
# hundred bytes each, forgotten all at once when full.
MAX_VERIFIED = 50_000


@dataclass(frozen=True, slots=True)
class _Verified:
    """What a token's signature proved, and what must still be checked each time it is presented."""

    caller: Caller
    kid: str
    expires: float
    not_before: float


class TokenService:
    def __init__(self, keys: KeyRing, clock: Clock, *, issuer_base: str, lifetime: dt.timedelta) -> None:
        self._keys = keys
        self._clock = clock
        self.issuer_base = issuer_base.rstrip("/")
        self.lifetime = lifetime
        self._verified: dict[bytes, _Verified] = {}

    def issuer(self, tenant_id: str) -> str:
        # MSAL and az take the tenant from the first path segment of the issuer.
        return f"{self.issuer_base}/{tenant_id}/v2.0"

    def issue(
        self,
        *,
        tenant_id: str,
        object_id: str,
        app_id: str,
        kind: str,
        audience: str,
        resource_id: str | None = None,
        lifetime: dt.timedelta | None = None,
        claims: dict[str, Any] | None = None,
    ) -> tuple[str, int]:
        """A signed access token and its lifetime in seconds (``resource_id``: the cluster a cluster identity is, or
        the cluster a relay token opens streams to; ``lifetime`` shorter than the default for assertions)."""
        now = self._clock.now()
        lifetime_s = int((lifetime or self.lifetime).total_seconds())
        body: dict[str, Any] = {
            "aud": audience,
            "iss": self.issuer(tenant_id),
            "iat": int(now.timestamp()),
            "nbf": int(now.timestamp()) - 60,
            "exp": int(now.timestamp()) + lifetime_s,
            "sub": object_id,
            "oid": object_id,
            "tid": tenant_id,
            "appid": app_id,
            "azp": app_id,
            "idtyp": "app",
            "ver": "2.0",
            "uti": uuid.uuid4().hex,
            "hyk": kind,
        }
        if resource_id is not None:
            body["xms_mirid"] = resource_id
        body.update(claims or {})
        key = self._keys.signing_key()
        token = jwt.encode(body, key.private, algorithm=ALGORITHM, headers={"kid": key.kid})
        return token, lifetime_s

    async def verify(self, token: str, *, audience: str) -> Caller:
        """The caller a token proves, or InvalidAuthenticationToken saying what is wrong with it.

        A token whose signature this process has verified is remembered (by digest) with what it proved: a client
        presents the same token for an hour, and checking its signature and parsing it again was a fifth of a GET's
        CPU. Everything that can change is still checked on every call: the signing key still current, the time
        window against the clock, the audience asked for."""
        digest = hashlib.sha256(token.encode()).digest()
        known = self._verified.get(digest)
        if known is not None:
            if await self._keys.verification_key(known.kid) is None:
                raise InvalidAuthenticationToken("The access token is signed by an unknown or retired key.")
            return self._checked(known, audience)
        verified = await self._verify_signed(token)
        if len(self._verified) >= MAX_VERIFIED:
            self._verified.clear()
        self._verified[digest] = verified
        return self._checked(verified, audience)

    def _checked(self, verified: _Verified, audience: str) -> Caller:
        now = self._clock.now().timestamp()
        if verified.expires + 30 < now or verified.not_before - 30 > now:
            raise InvalidAuthenticationToken("The access token has expired.")
        if not same_audience(verified.caller.audience, audience):
            raise InvalidAuthenticationToken(f"The access token audience is not valid for this service ({audience}).")
        return verified.caller

    async def _verify_signed(self, token: str) -> _Verified:
        """Signature, algorithm, key and the claims fixed at issue (issuer, required claims)."""
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise InvalidAuthenticationToken("The access token is malformed.") from None
        if header.get("alg") != ALGORITHM:
            raise InvalidAuthenticationToken("The access token is not signed with a supported algorithm.")
        key = await self._keys.verification_key(str(header.get("kid", "")))
        if key is None:
            raise InvalidAuthenticationToken("The access token is signed by an unknown or retired key.")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[ALGORITHM],
                options={
                    "verify_aud": False,
                    # Time is checked below against the injected clock.
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "require": ["exp", "iss", "aud", "oid", "tid"],
                },
            )
        except jwt.PyJWTError:
            raise InvalidAuthenticationToken("The access token signature or claims are invalid.") from None
        if claims["iss"] != self.issuer(str(claims["tid"])):
            raise InvalidAuthenticationToken("The access token issuer is not valid.")
        try:
            expires, not_before = float(claims["exp"]), float(claims.get("nbf", 0))
        except (TypeError, ValueError):
            raise InvalidAuthenticationToken("The access token signature or claims are invalid.") from None
        caller = Caller(
            object_id=str(claims["oid"]),
            app_id=str(claims.get("appid", "")),
            tenant_id=str(claims["tid"]),
            kind=str(claims.get("hyk", "ServicePrincipal")),
            audience=str(claims["aud"]),
            resource_id=str(claims["xms_mirid"]) if claims.get("xms_mirid") else None,
            user_name=str(claims["upn"]) if claims.get("upn") else None,
        )
        return _Verified(caller, str(header.get("kid", "")), expires, not_before)
