"""The portal's server-side sessions: the browser holds only a random id (an HttpOnly, Secure, SameSite=Strict
cookie); the user's access and refresh tokens stay here, in this replica's memory.

In memory on purpose for now: nothing of a session reaches the store, so a stolen database holds no portal tokens.
The cost, said loudly in docs/portal.md: a replica's restart signs its users out, and several replicas need sticky
sessions at the load balancer (or users sign in again on the replica they land on)."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from halyard.core.clock import Clock

IDLE = dt.timedelta(hours=8)
PENDING_FOR = dt.timedelta(minutes=10)
MAX_SESSIONS = 10_000
MAX_PENDING = 1_000


@dataclass
class Session:
    user_name: str
    access_token: str
    refresh_token: str
    expires_at: dt.datetime  # of the access token
    csrf: str
    last_used: dt.datetime
    # Answers that cost a walk of the whole fleet (the counts by status), kept a while per session: see remember().
    remembered: dict[str, tuple[dt.datetime, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class PendingSignIn:
    """A sign-in under way: the PKCE verifier only this server knows and where to go back to afterwards."""

    verifier: str
    return_to: str
    started: dt.datetime

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


class Sessions:
    """Sessions and sign-ins under way, each under a random key, bounded in number (oldest forgotten first)."""

    def __init__(self, clock: Clock) -> None:
        self._clock = clock
        self._sessions: OrderedDict[str, Session] = OrderedDict()
        self._pending: OrderedDict[str, PendingSignIn] = OrderedDict()

    def begin_sign_in(self, return_to: str) -> tuple[str, PendingSignIn]:
        """A new sign-in's state (sent through the login service and back) and its verifier."""
        state = secrets.token_urlsafe(32)
        pending = PendingSignIn(secrets.token_urlsafe(48), return_to, self._clock.now())
        self._pending[state] = pending
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)
        return state, pending

    def finish_sign_in(self, state: str) -> PendingSignIn | None:
        """The sign-in ``state`` names, once (a state is spent when it comes back), if it has not expired."""
        pending = self._pending.pop(state, None)
        if pending is None or self._clock.now() - pending.started > PENDING_FOR:
            return None
        return pending

    def create(self, user_name: str, access_token: str, refresh_token: str, expires_in: int) -> str:
        now = self._clock.now()
        key = secrets.token_urlsafe(32)
        self._sessions[key] = Session(
            user_name, access_token, refresh_token, now + dt.timedelta(seconds=expires_in),
            secrets.token_urlsafe(32), now,
        )  # fmt: skip
        while len(self._sessions) > MAX_SESSIONS:
            self._sessions.popitem(last=False)
        return key

    def get(self, key: str | None) -> Session | None:
        if not key:
            return None
        session = self._sessions.get(key)
        now = self._clock.now()
        if session is None or now - session.last_used > IDLE:
            self._sessions.pop(key, None)
            return None
        session.last_used = now
        self._sessions.move_to_end(key)
        return session

    def needs_refresh(self, session: Session) -> bool:
        return session.expires_at - self._clock.now() < dt.timedelta(seconds=60)

    def refreshed(self, session: Session, access_token: str, refresh_token: str, expires_in: int) -> None:
        session.access_token, session.refresh_token = access_token, refresh_token
        session.expires_at = self._clock.now() + dt.timedelta(seconds=expires_in)

    def recall(self, session: Session, key: str, fresh_for: dt.timedelta) -> Any | None:
        """What ``remember`` kept under ``key`` if it is younger than ``fresh_for``."""
        kept = session.remembered.get(key)
        if kept is None or self._clock.now() - kept[0] > fresh_for:
            return None
        return kept[1]

    def remember(self, session: Session, key: str, value: Any) -> None:
        if len(session.remembered) > 16:
            session.remembered.clear()
        session.remembered[key] = (self._clock.now(), value)

    def end(self, key: str | None) -> Session | None:
        return self._sessions.pop(key, None) if key else None
