"""Access tokens from Halyard's login service: cloud metadata, the client-credentials, device-code, authorization-code
and refresh-token grants, cache and refresh."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx

from halyard.cli.errors import CliError
from halyard.cli.profile import CachedToken, Profile, ProfileStore
from halyard.cli.transport import Transport

METADATA_API_VERSION = "2022-09-01"
# Refresh this long before expiry, so a token never lapses in the middle of a command or a long poll.
REFRESH_MARGIN_SECONDS = 300


def fetch_audience(transport: Transport, server: str) -> str:
    """The management API's token audience, from the server's cloud metadata (as ``az cloud register`` reads it)."""
    url = f"{server}/metadata/endpoints?api-version={METADATA_API_VERSION}"
    response = transport.send("GET", url)
    body = _json(response)
    audiences = (body.get("authentication") or {}).get("audiences") if isinstance(body, dict) else None
    if response.status_code != 200 or not audiences:
        raise CliError(
            f"{server} did not answer the cloud metadata request (HTTP {response.status_code}); "
            "is it a Halyard server?",
            "MetadataUnavailable",
        )
    return str(audiences[0])


# The client id the Halyard CLI signs users in as (a public client: it holds no secret), as az has its own.
CLI_CLIENT_ID = "5f0d6b8e-2c1a-4b7e-9a57-0d1c4a1e7c3b"
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
USER_SCOPES = " offline_access openid profile"


def request_token(
    transport: Transport, server: str, tenant: str, client_id: str, secret: str, audience: str
) -> CachedToken:
    """A fresh token with the client-credentials grant; OAuth errors become ``ERROR: (error) description``."""
    form = {
        "grant_type": "client_credentials",
        "client_id": client_id,
        "client_secret": secret,
        "scope": audience + ".default",
    }
    return _cached(_token_body(transport, server, tenant, form))


@dataclass(frozen=True)
class UserTokens:
    access: CachedToken
    refresh_token: str
    user_name: str


def start_device_code(transport: Transport, server: str, tenant: str, audience: str) -> dict[str, Any]:
    """Begin a device-code sign-in: the body holds ``message`` (for the user), ``device_code`` and ``interval``."""
    response = transport.send(
        "POST",
        f"{server}/{tenant}/oauth2/v2.0/devicecode",
        data={"client_id": CLI_CLIENT_ID, "scope": audience + ".default" + USER_SCOPES},
    )
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict) or "device_code" not in body:
        raise _oauth_error(server, response, body)
    return body


def poll_device_code(
    transport: Transport, server: str, tenant: str, grant: dict[str, Any], *, sleep: Callable[[float], None]
) -> UserTokens:
    """Poll the token endpoint until the user has signed in on the device page (RFC 8628 §3.4-3.5)."""
    interval = float(grant.get("interval", 5))
    deadline = time.monotonic() + float(grant.get("expires_in", 900))
    form = {"grant_type": DEVICE_GRANT, "client_id": CLI_CLIENT_ID, "device_code": str(grant["device_code"])}
    while True:
        sleep(interval)
        try:
            return _user_tokens(_token_body(transport, server, tenant, form))
        except CliError as exc:
            if exc.code == "slow_down":
                interval += 5
            elif exc.code != "authorization_pending" or time.monotonic() > deadline:
                raise


def redeem_code(
    transport: Transport, server: str, tenant: str, code: str, redirect_uri: str, verifier: str, nonce: str
) -> UserTokens:
    """The authorization code grant with its PKCE verifier; the id token must carry this sign-in's nonce."""
    form = {
        "grant_type": "authorization_code",
        "client_id": CLI_CLIENT_ID,
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    body = _token_body(transport, server, tenant, form)
    if _unverified_claims(str(body.get("id_token", ""))).get("nonce") != nonce:
        raise CliError("The sign-in answer does not belong to this login (nonce mismatch); try again.", "NonceMismatch")
    return _user_tokens(body)


def refresh_user_token(transport: Transport, profile: Profile) -> UserTokens:
    """Spend the profile's refresh token for a new access token and the next refresh token (rotation)."""
    form = {
        "grant_type": "refresh_token",
        "client_id": profile.clientId,
        "refresh_token": profile.refreshToken or "",
        "scope": profile.audience + ".default" + USER_SCOPES,
    }
    try:
        return _user_tokens(_token_body(transport, profile.server, profile.tenant, form))
    except CliError as exc:
        if exc.code == "invalid_grant":
            raise CliError(
                f"{exc} Run 'halyard login --tenant {profile.tenant}' (or 'halyard login --use-device-code --tenant "
                f"{profile.tenant}') again.",
                "invalid_grant",
            ) from None
        raise


def revoke_refresh_token(transport: Transport, profile: Profile) -> None:
    """Sign out at the server: the profile's refresh token (and its whole sign-in) stops working."""
    if profile.refreshToken:
        transport.send(
            "POST", f"{profile.server}/{profile.tenant}/oauth2/v2.0/revoke", data={"token": profile.refreshToken}
        )


def _user_tokens(body: dict[str, Any]) -> UserTokens:
    claims = _unverified_claims(str(body.get("id_token", "")))
    return UserTokens(_cached(body), str(body.get("refresh_token", "")), str(claims.get("preferred_username", "")))


def _unverified_claims(token: str) -> dict[str, Any]:
    """The claims of a token the login service just sent over TLS (only read for display: who signed in)."""
    try:
        part = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


def _cached(body: dict[str, Any]) -> CachedToken:
    return CachedToken(str(body["access_token"]), time.time() + float(body.get("expires_in", 0)))


def _oauth_error(server: str, response: httpx.Response, body: Any) -> CliError:
    if isinstance(body, dict) and "error" in body and isinstance(body["error"], str):
        return CliError(str(body.get("error_description") or body["error"]), body["error"])
    return CliError(
        f"The token endpoint of {server} answered HTTP {response.status_code}; is it a Halyard server?",
        "TokenRequestFailed",
    )


def _token_body(transport: Transport, server: str, tenant: str, form: dict[str, str]) -> dict[str, Any]:
    response = transport.send("POST", f"{server}/{tenant}/oauth2/v2.0/token", data=form)
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        raise _oauth_error(server, response, body)
    return body


class TokenProvider:
    """The current profile's token: from the cache while it has more than the margin left, else a new one."""

    def __init__(
        self, store: ProfileStore, profile: Profile, transport: Transport, current: CachedToken | None = None
    ) -> None:
        self.store = store
        self.profile = profile
        self.transport = transport
        self._current = current

    def token(self, *, force_refresh: bool = False) -> str:
        if not force_refresh:
            cached = self._current or self.store.cached_token(self.profile.server)
            if cached is not None and cached.expires_on - time.time() > REFRESH_MARGIN_SECONDS:
                self._current = cached
                return cached.access_token
        if self.profile.refreshToken:
            user = refresh_user_token(self.transport, self.profile)
            self.profile.refreshToken = user.refresh_token
            self.store.save(self.profile)  # the one just spent no longer works
            fresh = user.access
        else:
            fresh = request_token(
                self.transport,
                self.profile.server,
                self.profile.tenant,
                self.profile.clientId,
                self.profile.clientSecret,
                self.profile.audience,
            )
        self.store.cache_token(self.profile.server, fresh)
        self._current = fresh
        return fresh.access_token


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
