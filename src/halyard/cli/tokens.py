"""Access tokens from Halyard's login service: cloud metadata, the client-credentials grant, cache and refresh."""

from __future__ import annotations

import time
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


def request_token(
    transport: Transport, server: str, tenant: str, client_id: str, secret: str, audience: str
) -> CachedToken:
    """A fresh token with the client-credentials grant; OAuth errors become ``ERROR: (error) description``."""
    response = transport.send(
        "POST",
        f"{server}/{tenant}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": audience + ".default",
        },
    )
    body = _json(response)
    if response.status_code != 200 or not isinstance(body, dict) or "access_token" not in body:
        if isinstance(body, dict) and "error" in body and isinstance(body["error"], str):
            raise CliError(str(body.get("error_description") or body["error"]), body["error"])
        raise CliError(
            f"The token endpoint of {server} answered HTTP {response.status_code}; is it a Halyard server?",
            "TokenRequestFailed",
        )
    return CachedToken(str(body["access_token"]), time.time() + float(body.get("expires_in", 0)))


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
