"""CSRF tokens for the login service's forms (the sign-in page, the device page, "Sign in with <provider>").

A page served to a browser names it with a random cookie (``__Host-halyard-signin``: HttpOnly, Secure, SameSite=Lax,
host-only) and carries a token in its form: the cookie's digest, what the form is for (the pending authorization
request's parameters, or the device page) and when it was issued, sealed with the data key. A post is accepted only
with a token that opens with this server's key, names the cookie the browser sent, the same request, and is less than
an hour old. Another site can make a browser post the form, but cannot read the token from our page nor set our
cookie, so it cannot sign a victim in as the attacker (login CSRF) or approve a device code with the attacker's
password in the victim's browser. Stateless: any replica checks it (they share the data key).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from halyard.core.clock import Clock
from halyard.core.sealing import Sealer

FIELD = "csrf_token"
MAX_AGE_SECONDS = 3600
DEVICE_PAGE = "devicelogin"  # what the device page's form is for: it belongs to no pending request yet


def binding_of(fields: Mapping[str, str]) -> str:
    """What a sign-in form is for: the digest of the authorization request it carries (a token issued for one
    request does not post another)."""
    canonical = json.dumps(sorted(fields.items()), separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Browser:
    """The browser a request came from, as its cookie names it; ``new``: the cookie is to be set by the answer."""

    id: str
    new: bool


class FormGuard:
    def __init__(self, sealer: Sealer, clock: Clock, *, secure: bool) -> None:
        self._sealer = sealer
        self._clock = clock
        self._secure = secure
        # A __Host- cookie must be Secure; a server on plain HTTP (tests, --insecure-http) uses a plain name.
        self.cookie = "__Host-halyard-signin" if secure else "halyard-signin"

    def browser(self, cookies: Mapping[str, str]) -> Browser:
        """The browser's id from its cookie, or a new one (to set with :meth:`set_cookie`)."""
        known = cookies.get(self.cookie, "")
        if 20 <= len(known) <= 64 and known.isascii():
            return Browser(known, new=False)
        return Browser(secrets.token_urlsafe(24), new=True)

    def set_cookie(self, browser: Browser) -> dict[str, str]:
        """The header that gives a new browser its id (nothing for a known one)."""
        if not browser.new:
            return {}
        secure = "; Secure" if self._secure else ""
        return {"Set-Cookie": f"{self.cookie}={browser.id}; Path=/; HttpOnly; SameSite=Lax{secure}"}

    def issue(self, browser: Browser, binding: str) -> str:
        payload = {"b": _digest(browser.id), "p": binding, "t": int(self._clock.now().timestamp())}
        return self._sealer.seal_json(payload).decode()

    def check(self, cookies: Mapping[str, str], token: str, binding: str) -> bool:
        """Whether ``token`` was issued by this server to the browser these cookies name, for ``binding``, within
        the hour."""
        browser = cookies.get(self.cookie, "")
        if not browser or not token or len(token) > 1024:
            return False
        try:
            payload = self._sealer.unseal_json(token.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            return False
        if not isinstance(payload, dict):
            return False
        age = self._clock.now().timestamp() - float(payload.get("t", 0))
        return (
            hmac.compare_digest(str(payload.get("b", "")), _digest(browser))
            and hmac.compare_digest(str(payload.get("p", "")), binding)
            and -60 <= age <= MAX_AGE_SECONDS
        )
