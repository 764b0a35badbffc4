"""The portal's server-side sessions, in the store: the browser holds only a random value (an HttpOnly, Secure,
SameSite=Strict cookie); the user's access and refresh tokens stay on the server, so any replica serves any signed-in
user and a restart signs no one out.

What a stolen database gives: a session row holds the SHA-256 of the cookie's value (32 random bytes: the cookie
cannot be rebuilt from it) and the tokens sealed with the server's data key (``core/sealing.py``), which is not in
the database. A session ends when idle for ``IDLE``, at ``LIFETIME`` after sign-in, or at sign-out (its row deleted);
rows past either are deleted when next met and at every sign-in."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, update

from halyard.core.clock import Clock
from halyard.core.sealing import Sealer
from halyard.store import Database
from halyard.store.models import PortalSession, PortalSignIn

IDLE = dt.timedelta(hours=8)
LIFETIME = dt.timedelta(hours=24)  # then the user signs in again, however busy (the refresh token lasts 14 days)
PENDING_FOR = dt.timedelta(minutes=10)
# last_used is written at most this often per session: the clusters table polls every 5 s, and a write per poll
# would cost more than the page. Idle is then measured to within a minute.
TOUCH_EVERY = dt.timedelta(seconds=60)
REFRESH_BEFORE = dt.timedelta(seconds=60)  # the access token is renewed this long before it expires
REFRESH_CLAIM = dt.timedelta(seconds=30)  # how long one request may hold the right to redeem the refresh token


def digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


@dataclass(frozen=True)
class Session:
    digest: str
    user_name: str
    access_token: str
    refresh_token: str
    csrf: str
    access_expires_at: dt.datetime


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in under way: the PKCE verifier only this server knows and where to go back to afterwards."""

    verifier: str
    return_to: str

    @property
    def challenge(self) -> str:
        hashed = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(hashed).rstrip(b"=").decode()


class Sessions:
    """Sessions and sign-ins under way, each in the store under the SHA-256 of a random value only the browser holds."""

    def __init__(self, db: Database, sealer: Sealer, clock: Clock) -> None:
        self._db = db
        self._sealer = sealer
        self._clock = clock

    # ---- sign-ins under way ----------------------------------------------------------------------------------------

    async def begin_sign_in(self, return_to: str) -> tuple[str, PendingSignIn]:
        """A new sign-in's state (sent through the login service and back) and its verifier."""
        state = secrets.token_urlsafe(32)
        pending = PendingSignIn(secrets.token_urlsafe(48), return_to)
        now = self._clock.now()
        async with self._db.transaction() as session:
            await session.execute(delete(PortalSignIn).where(PortalSignIn.expires_at <= now))
            session.add(
                PortalSignIn(
                    digest=digest(state),
                    sealed=self._seal(state, {"verifier": pending.verifier, "return_to": return_to}),
                    expires_at=now + PENDING_FOR,
                )
            )
        return state, pending

    async def finish_sign_in(self, state: str) -> PendingSignIn | None:
        """The sign-in ``state`` names, once (a state is spent when it comes back), if it has not expired."""
        key = digest(state)
        async with self._db.transaction() as session:
            row = await session.get(PortalSignIn, key)
            if row is None:
                return None
            # Spent by whoever deletes it: two callbacks racing on two replicas cannot both go on.
            spent = await session.execute(delete(PortalSignIn).where(PortalSignIn.digest == key))
        if getattr(spent, "rowcount", 0) != 1 or row.expires_at <= self._clock.now():
            return None
        opened = self._unseal(state, row.sealed)
        if opened is None:
            return None
        return PendingSignIn(str(opened["verifier"]), str(opened["return_to"]))

    # ---- sessions --------------------------------------------------------------------------------------------------

    async def create(self, user_name: str, access_token: str, refresh_token: str, expires_in: int) -> str:
        """A new session; the cookie's value, which only the browser keeps."""
        now = self._clock.now()
        key = secrets.token_urlsafe(32)
        async with self._db.transaction() as session:
            await session.execute(delete(PortalSession).where(_ended(now)))
            session.add(
                PortalSession(
                    digest=digest(key),
                    user_name=user_name,
                    sealed=self._seal(key, _tokens(access_token, refresh_token, secrets.token_urlsafe(32))),
                    access_expires_at=now + dt.timedelta(seconds=expires_in),
                    created_at=now,
                    last_used=now,
                    expires_at=now + LIFETIME,
                )
            )
        return key

    async def get(self, key: str | None) -> Session | None:
        """The live session the cookie ``key`` opens, or None (an ended one is deleted as it is met)."""
        if not key:
            return None
        now = self._clock.now()
        async with self._db.session() as session:
            row = await session.get(PortalSession, digest(key))
        if row is None:
            return None
        if row.expires_at <= now or now - row.last_used > IDLE:
            await self._delete(row.digest)
            return None
        opened = self._unseal(key, row.sealed)
        if opened is None:
            return None
        if now - row.last_used >= TOUCH_EVERY:
            async with self._db.transaction() as session:
                await session.execute(
                    update(PortalSession).where(PortalSession.digest == row.digest).values(last_used=now)
                )
        return Session(
            row.digest, row.user_name, str(opened["access"]), str(opened["refresh"]), str(opened["csrf"]),
            row.access_expires_at,
        )  # fmt: skip

    def needs_refresh(self, session: Session) -> bool:
        return session.access_expires_at - self._clock.now() < REFRESH_BEFORE

    def expired(self, session: Session) -> bool:
        return session.access_expires_at <= self._clock.now()

    async def claim_refresh(self, session: Session) -> bool:
        """Whether this request may redeem the session's refresh token: at most one at a time across replicas (a
        refresh token is single-use; a second redemption would revoke the user's whole sign-in)."""
        now = self._clock.now()
        async with self._db.transaction() as db:
            claimed = await db.execute(
                update(PortalSession)
                .where(
                    PortalSession.digest == session.digest,
                    PortalSession.access_expires_at == session.access_expires_at,
                    or_(PortalSession.refreshing_until.is_(None), PortalSession.refreshing_until <= now),
                )
                .values(refreshing_until=now + REFRESH_CLAIM)
            )
        return getattr(claimed, "rowcount", 0) == 1

    async def refreshed(
        self, key: str, session: Session, access_token: str, refresh_token: str, expires_in: int
    ) -> Session:
        """Keep the tokens a refresh gave (and let the next refresh be claimed)."""
        expires = self._clock.now() + dt.timedelta(seconds=expires_in)
        async with self._db.transaction() as db:
            await db.execute(
                update(PortalSession)
                .where(PortalSession.digest == session.digest)
                .values(
                    sealed=self._seal(key, _tokens(access_token, refresh_token, session.csrf)),
                    access_expires_at=expires,
                    refreshing_until=None,
                )
            )
        return Session(session.digest, session.user_name, access_token, refresh_token, session.csrf, expires)

    async def refreshed_elsewhere(self, key: str, wait: dt.timedelta = dt.timedelta(seconds=10)) -> Session | None:
        """The session once another request's refresh has landed (its access token valid again), within ``wait``."""
        deadline = asyncio.get_running_loop().time() + wait.total_seconds()
        while True:
            found = await self.get(key)
            if found is None or not self.expired(found):
                return found
            if asyncio.get_running_loop().time() > deadline:
                return None
            await asyncio.sleep(0.2)

    async def end(self, key: str | None) -> None:
        """Sign-out (or a refresh refused): the row is deleted, so no replica knows the cookie any more."""
        if key:
            await self._delete(digest(key))

    async def prune(self) -> int:
        """Delete every ended session and expired sign-in; how many sessions went."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            gone = await session.execute(delete(PortalSession).where(_ended(now)))
            await session.execute(delete(PortalSignIn).where(PortalSignIn.expires_at <= now))
        return int(getattr(gone, "rowcount", 0) or 0)

    async def _delete(self, key_digest: str) -> None:
        async with self._db.transaction() as session:
            await session.execute(delete(PortalSession).where(PortalSession.digest == key_digest))

    # The value the browser holds is sealed in with what it protects: a row's sealed tokens copied onto another
    # row (by someone who can write the database but has no data key) do not open under that row's cookie.
    def _seal(self, key: str, value: dict[str, Any]) -> bytes:
        return self._sealer.seal_json({**value, "for": digest(key)})

    def _unseal(self, key: str, sealed: bytes) -> dict[str, Any] | None:
        try:
            opened = self._sealer.unseal_json(sealed)
        except ValueError:
            return None
        if not isinstance(opened, dict) or opened.get("for") != digest(key):
            return None
        return opened


def _tokens(access: str, refresh: str, csrf: str) -> dict[str, Any]:
    return {"access": access, "refresh": refresh, "csrf": csrf}


def _ended(now: dt.datetime) -> Any:
    return or_(PortalSession.expires_at <= now, PortalSession.last_used < now - IDLE)
