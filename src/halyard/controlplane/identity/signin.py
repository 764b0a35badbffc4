"""Interactive sign-in state: device codes waiting for a user (RFC 8628) and refresh tokens, rotated on every use.

Only digests of device codes and refresh tokens are stored: a copy of the store gives no one a session.
A refresh token is single-use: redeeming it marks it used and the caller gets a new one of the same family. A used
one presented again means someone kept a copy: the whole family is revoked (the thief and the user both sign in
again), as OAuth 2.0 Security BCP §4.14 recommends.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
import uuid
from dataclasses import dataclass

from sqlalchemy import delete, select, update

from halyard.controlplane.identity.authcode import pkce_matches
from halyard.core.clock import Clock
from halyard.core.errors import OAuthError
from halyard.store import Database
from halyard.store.models import AuthorizationCode, DeviceCode, Principal, RefreshToken

DEVICE_CODE_LIFETIME = dt.timedelta(minutes=15)
DEVICE_POLL_INTERVAL = 5  # seconds, what clients wait between polls
REFRESH_LIFETIME = dt.timedelta(days=14)
CODE_LIFETIME = dt.timedelta(minutes=5)
# User codes avoid letters read alike (0/O, 1/I/L): 8 of 31 characters, ~40 bits, for 15 minutes behind a throttle.
_USER_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
USER_CODE_LENGTH = 8


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


def new_user_code() -> str:
    return "".join(secrets.choice(_USER_CODE_ALPHABET) for _ in range(USER_CODE_LENGTH))


def normalize_user_code(code: str) -> str:
    """What a person types: any case, with or without the dash or spaces shown for readability."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def display_user_code(code: str) -> str:
    return f"{code[:4]}-{code[4:]}"


@dataclass(frozen=True)
class DeviceGrant:
    device_code: str
    user_code: str  # as shown: ABCD-EFGH
    expires_in: int
    interval: int


@dataclass(frozen=True)
class Redeemed:
    principal_id: str
    family: str


class SignIns:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def start_device(self, tenant_id: str, client_id: str, scope: str) -> DeviceGrant:
        now = self._clock.now()
        device_code = secrets.token_urlsafe(32)
        user_code = new_user_code()
        async with self._db.transaction() as session:
            await session.execute(delete(DeviceCode).where(DeviceCode.expires_at < now))
            session.add(
                DeviceCode(
                    digest=digest(device_code),
                    user_code=user_code,
                    tenant_id=tenant_id,
                    client_id=client_id[:64],
                    scope=scope,
                    expires_at=now + DEVICE_CODE_LIFETIME,
                )
            )
        return DeviceGrant(
            device_code, display_user_code(user_code), int(DEVICE_CODE_LIFETIME.total_seconds()), DEVICE_POLL_INTERVAL
        )

    async def pending_device(self, user_code: str) -> DeviceCode | None:
        """The sign-in a user code names, if it is still waiting for its user."""
        async with self._db.session() as session:
            row = await session.scalar(select(DeviceCode).where(DeviceCode.user_code == normalize_user_code(user_code)))
        if row is None or row.expires_at < self._clock.now() or row.principal_id is not None:
            return None
        return row

    async def approve_device(self, user_code: str, principal: Principal) -> bool:
        """The user signed in on the device page: the device's next poll gets their tokens. False if the code is
        unknown, expired, already used, or of another tenant."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(DeviceCode)
                .where(
                    DeviceCode.user_code == normalize_user_code(user_code),
                    DeviceCode.tenant_id == principal.tenant_id,
                    DeviceCode.expires_at >= now,
                    DeviceCode.principal_id.is_(None),
                )
                .values(principal_id=principal.id)
            )
            return bool(result.rowcount)  # type: ignore[attr-defined]

    async def redeem_device(self, tenant_id: str, client_id: str, device_code: str) -> tuple[str, str]:
        """The approved user's object id and the scope asked at the start; the device code is spent.
        RFC 8628's errors otherwise: authorization_pending while waiting, expired_token, bad_verification_code."""
        key = digest(device_code)
        async with self._db.transaction() as session:
            row = await session.get(DeviceCode, key)
            if row is None or row.tenant_id != tenant_id or row.client_id != client_id[:64]:
                raise OAuthError("invalid_grant", "The device code is not valid.", aadsts=70000)
            if row.expires_at < self._clock.now():
                await session.delete(row)
                raise OAuthError("expired_token", "The device code has expired; start again.", aadsts=70020)
            if row.principal_id is None:
                raise OAuthError(
                    "authorization_pending",
                    "The user has not yet entered the code on the sign-in page.",
                    aadsts=70016,
                )
            principal_id, scope = row.principal_id, row.scope
            await session.delete(row)
        return principal_id, scope

    async def issue_code(
        self, principal_id: str, client_id: str, redirect_uri: str, code_challenge: str, scope: str, nonce: str
    ) -> str:
        code = secrets.token_urlsafe(32)
        now = self._clock.now()
        async with self._db.transaction() as session:
            await session.execute(delete(AuthorizationCode).where(AuthorizationCode.expires_at < now))
            session.add(
                AuthorizationCode(
                    digest=digest(code),
                    principal_id=principal_id,
                    client_id=client_id[:64],
                    redirect_uri=redirect_uri,
                    code_challenge=code_challenge,
                    scope=scope,
                    nonce=nonce[:256],
                    expires_at=now + CODE_LIFETIME,
                )
            )
        return code

    async def redeem_code(self, code: str, client_id: str, redirect_uri: str, verifier: str) -> tuple[str, str, str]:
        """Spend an authorization code: its user's object id, scope and nonce. The code is spent whatever the
        outcome once found (a wrong verifier may be an attacker holding an intercepted code)."""
        bad = OAuthError(
            "invalid_grant", "The authorization code is not valid, or was used or has expired.", aadsts=70000
        )
        async with self._db.transaction() as session:
            row = await session.get(AuthorizationCode, digest(code))
            if row is None:
                raise bad
            await session.delete(row)
            found = (row.principal_id, row.scope, row.nonce)
            valid = (
                row.expires_at >= self._clock.now()
                and row.client_id == client_id[:64]
                and row.redirect_uri == redirect_uri
            )
            proof = pkce_matches(verifier, row.code_challenge)
        if not valid:
            raise bad
        if not proof:
            raise OAuthError("invalid_grant", "The code_verifier does not match the code_challenge.", aadsts=501481)
        return found

    async def issue_refresh(self, principal_id: str, client_id: str, family: str | None = None) -> str:
        token = "hyr." + secrets.token_urlsafe(40)
        now = self._clock.now()
        async with self._db.transaction() as session:
            session.add(
                RefreshToken(
                    digest=digest(token),
                    principal_id=principal_id,
                    family=family or str(uuid.uuid4()),
                    client_id=client_id[:64],
                    created_at=now,
                    expires_at=now + REFRESH_LIFETIME,
                )
            )
        return token

    async def redeem_refresh(self, token: str, client_id: str) -> Redeemed:
        """Spend a refresh token; a used one presented again revokes its whole family."""
        now = self._clock.now()
        refused = OAuthError(
            "invalid_grant",
            "The refresh token is not valid: it was used already, revoked or has expired. Sign in again.",
            aadsts=70008,
        )
        async with self._db.transaction() as session:
            row = await session.get(RefreshToken, digest(token))
            if row is None or row.client_id != client_id[:64]:
                raise refused
            if row.expires_at < now:
                await session.delete(row)
                raise refused
            spent = await session.execute(
                update(RefreshToken)
                .where(RefreshToken.digest == row.digest, RefreshToken.used_at.is_(None))
                .values(used_at=now)
            )
            if spent.rowcount:  # type: ignore[attr-defined]
                return Redeemed(row.principal_id, row.family)
            family = row.family
        async with self._db.transaction() as session:  # replayed: a separate commit, since the raise rolls back
            await session.execute(delete(RefreshToken).where(RefreshToken.family == family))
        raise refused

    async def revoke(self, token: str) -> None:
        """Sign out: the token's family (this sign-in's every refresh token) stops working."""
        async with self._db.transaction() as session:
            row = await session.get(RefreshToken, digest(token))
            if row is not None:
                await session.execute(delete(RefreshToken).where(RefreshToken.family == row.family))

    async def revoke_all(self, principal_id: str) -> int:
        async with self._db.transaction() as session:
            result = await session.execute(delete(RefreshToken).where(RefreshToken.principal_id == principal_id))
            return int(result.rowcount)  # type: ignore[attr-defined]
