"""Federated sign-in: a user signs in at an external OpenID Connect provider the operator configured and comes back
as a Halyard user, in the Halyard groups the provider's groups map to (docs/security.md, decision 015).

The relying party's checks are :mod:`oidc` (pure); this module does the I/O: the provider's discovery document and
keys (cached), the code exchange, the pending sign-ins (single-use rows, by the digest of their ``state``) and the
users and memberships a sign-in writes.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from halyard.controlplane.identity.oidc import (
    Discovery,
    ExternalUser,
    FederationRefused,
    authorization_url,
    external_user,
    key_for,
    verify_id_token,
    wanted_groups,
)
from halyard.controlplane.identity.people import GROUP, USER, normalize_user_name, user_row
from halyard.controlplane.identity.providers import FederationConfig, Provider
from halyard.core.clock import Clock
from halyard.core.errors import InvalidRequest
from halyard.store import Database
from halyard.store.models import FederatedIdentity, FederationRequest, GroupMember, Principal

log = logging.getLogger("halyard.federation")
CALLBACK_PATH = "/federation/callback"
REQUEST_LIFETIME = dt.timedelta(minutes=10)
DISCOVERY_MAX_AGE = 3600.0  # seconds a provider's configuration is kept before it is read again
JWKS_MIN_REFETCH = 10.0  # an unknown key id fetches the JWKS again, at most this often
HTTP_TIMEOUT = 10.0


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class Started:
    """Where to send the browser, and the cookie that binds the sign-in to it."""

    url: str
    browser: str


@dataclass(frozen=True)
class Finished:
    user: Principal
    resume: dict[str, str]  # the Halyard authorization request the sign-in answers


class Federation:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: FederationConfig,
        *,
        base_url: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._config = config
        self.redirect_uri = base_url.rstrip("/") + CALLBACK_PATH
        self.secure = base_url.startswith("https://")
        self.cookie = "__Host-halyard-federation" if self.secure else "halyard-federation"
        self._transport = transport
        self._discovery: dict[str, tuple[Discovery, float]] = {}
        self._jwks: dict[str, tuple[dict[str, Any], float]] = {}

    @property
    def providers(self) -> list[tuple[str, str]]:
        """(id, display name) of each provider, for the sign-in page's buttons."""
        return [(p.id, p.display_name) for p in self._config.providers]

    def provider(self, provider_id: str) -> Provider | None:
        return self._config.provider(provider_id)

    async def start(self, provider: Provider, tenant_id: str, resume: dict[str, str]) -> Started:
        """A pending sign-in at ``provider``: the URL of its authorization endpoint (state, nonce, PKCE S256)."""
        discovery = await self._discover(provider)
        state, nonce, verifier, browser = (secrets.token_urlsafe(32) for _ in range(4))
        verifier = verifier + secrets.token_urlsafe(16)  # 64 characters
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
        now = self._clock.now()
        async with self._db.transaction() as session:
            await session.execute(delete(FederationRequest).where(FederationRequest.expires_at < now))
            session.add(
                FederationRequest(
                    digest=_digest(state),
                    provider=provider.id,
                    tenant_id=tenant_id,
                    browser=_digest(browser),
                    nonce=nonce,
                    verifier=verifier,
                    resume=resume,
                    expires_at=now + REQUEST_LIFETIME,
                )
            )
        url = authorization_url(
            discovery,
            client_id=provider.client_id,
            redirect_uri=self.redirect_uri,
            scopes=provider.scopes,
            state=state,
            nonce=nonce,
            code_challenge=challenge,
        )
        return Started(url, browser)

    def set_cookie(self, browser: str) -> str:
        """The cookie that binds a pending sign-in to the browser that started it. SameSite=Lax: the provider's
        redirect back is a top-level navigation from another site, on which a Strict cookie would not be sent."""
        secure = "; Secure" if self.secure else ""
        return f"{self.cookie}={browser}; Path=/; HttpOnly; SameSite=Lax; Max-Age=600{secure}"

    def clear_cookie(self) -> str:
        secure = "; Secure" if self.secure else ""
        return f"{self.cookie}=; Path=/; HttpOnly; SameSite=Lax; Max-Age=0{secure}"

    def form_origins(self) -> list[str]:
        """Where "Sign in with <provider>" may send the browser: each provider's authorization endpoint's origin
        (its issuer's until its configuration was read)."""
        origins = []
        for p in self._config.providers:
            known = self._discovery.get(p.id)
            url = urlsplit(known[0].authorization_endpoint if known else p.issuer)
            origins.append(f"{url.scheme}://{url.netloc}")
        return sorted(set(origins))

    async def finish(self, params: Mapping[str, str], cookies: Mapping[str, str]) -> Finished:
        """The provider sent the browser back: the pending sign-in its ``state`` names is spent (whatever the
        outcome), the code redeemed, the id token checked, the user and their groups written."""
        state = params.get("state", "")
        async with self._db.transaction() as session:
            pending = await session.get(FederationRequest, _digest(state)) if state else None
            if pending is not None:
                await session.delete(pending)
        if pending is None or pending.expires_at < self._clock.now():
            raise FederationRefused(
                "This sign-in answer is unknown, was already used, or has expired (state). Start the sign-in again."
            )
        if not secrets.compare_digest(pending.browser, _digest(cookies.get(self.cookie, ""))):
            raise FederationRefused(
                "This sign-in was not started in this browser. Start the sign-in again from the application."
            )
        provider = self._config.provider(pending.provider)
        if provider is None:
            raise FederationRefused("The identity provider of this sign-in is no longer configured.")
        if "error" in params:
            detail = params.get("error_description") or params["error"]
            raise FederationRefused(f"{provider.display_name} refused the sign-in: {detail[:300]}")
        if not params.get("code"):
            raise FederationRefused(f"{provider.display_name} sent no authorization code.")
        discovery = await self._discover(provider)
        id_token = await self._redeem(provider, discovery, params["code"], pending.verifier)
        claims = await self._verify(provider, discovery, id_token, pending.nonce)
        external = external_user(claims, provider.claims)
        user = await self._sign_in(provider, discovery.issuer, pending.tenant_id, external)
        log.info(
            "federated sign-in",
            extra={"provider": provider.id, "user": user.user_name, "groups": len(external.groups)},
        )
        return Finished(user, {k: str(v) for k, v in pending.resume.items()})

    def _http(self, provider: Provider) -> httpx.AsyncClient:
        verify: Any = str(provider.ca_file) if provider.ca_file else True
        if self._transport is not None:
            return httpx.AsyncClient(transport=self._transport, timeout=HTTP_TIMEOUT)
        return httpx.AsyncClient(verify=verify, timeout=HTTP_TIMEOUT)

    async def _ask(self, provider: Provider, method: str, url: str, **kwargs: Any) -> tuple[int, Any]:
        """One request to the provider: its status and its JSON body (None when the body is not JSON)."""
        try:
            async with self._http(provider) as client:
                response = await client.request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise FederationRefused(
                f"{provider.display_name} could not be reached ({type(exc).__name__}); try again later."
            ) from None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    async def _get_json(self, provider: Provider, url: str) -> dict[str, Any]:
        status, body = await self._ask(provider, "GET", url)
        if status != 200 or not isinstance(body, dict):
            raise FederationRefused(f"{provider.display_name} answered HTTP {status} at {url[:200]}.")
        return body

    async def _discover(self, provider: Provider) -> Discovery:
        known = self._discovery.get(provider.id)
        if known is not None and time.monotonic() - known[1] < DISCOVERY_MAX_AGE:
            return known[0]
        document = await self._get_json(provider, provider.issuer + "/.well-known/openid-configuration")
        discovery = Discovery.parse(document, provider.issuer)
        self._discovery[provider.id] = (discovery, time.monotonic())
        return discovery

    async def _redeem(self, provider: Provider, discovery: Discovery, code: str, verifier: str) -> str:
        # client_id in the body whatever the authentication: providers that read it only there (Halyard) need it,
        # and those that take client_secret_basic accept it beside the header.
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": verifier,
            "client_id": provider.client_id,
        }
        auth: httpx.BasicAuth | None = None
        if provider.client_secret and provider.token_auth == "client_secret_basic":
            auth = httpx.BasicAuth(provider.client_id, provider.client_secret)
        elif provider.client_secret:
            form["client_secret"] = provider.client_secret
        status, body = await self._ask(provider, "POST", discovery.token_endpoint, data=form, auth=auth)
        if status != 200 or not isinstance(body, dict) or not isinstance(body.get("id_token"), str):
            error = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise FederationRefused(
                f"{provider.display_name} did not give an id token for the code (HTTP {status}"
                f"{': ' + str(error)[:300] if error else ''})."
            )
        return str(body["id_token"])

    async def _verify(self, provider: Provider, discovery: Discovery, token: str, nonce: str) -> dict[str, Any]:
        found = key_for(token, await self._keys(provider, discovery, fresh=False), discovery.algorithms)
        if found is None:  # a key the provider published since: read its JWKS again, once
            found = key_for(token, await self._keys(provider, discovery, fresh=True), discovery.algorithms)
        if found is None:
            raise FederationRefused(
                "The identity provider's id token has a bad signature: no key the provider publishes has its key id."
            )
        key, algorithm = found
        return verify_id_token(
            token,
            key,
            algorithm,
            issuer=discovery.issuer,
            client_id=provider.client_id,
            nonce=nonce,
            now=self._clock.now(),
        )

    async def _keys(self, provider: Provider, discovery: Discovery, *, fresh: bool) -> dict[str, Any]:
        known = self._jwks.get(provider.id)
        if known is not None and (not fresh or time.monotonic() - known[1] < JWKS_MIN_REFETCH):
            return known[0]
        jwks = await self._get_json(provider, discovery.jwks_uri)
        self._jwks[provider.id] = (jwks, time.monotonic())
        return jwks

    async def _sign_in(self, provider: Provider, issuer: str, tenant_id: str, external: ExternalUser) -> Principal:
        """The Halyard user of this account at the provider (linked by issuer and subject at the first sign-in),
        created first if the provider may create users; their mapped groups brought up to date."""
        try:
            name = normalize_user_name(external.user_name)
        except InvalidRequest:
            raise FederationRefused(
                f"'{external.user_name[:100]}' (the provider's '{provider.claims.user_name}' claim) is not a valid "
                "Halyard user name (name@domain)."
            ) from None
        now = self._clock.now()
        try:
            async with self._db.transaction() as session:
                link = await session.get(FederatedIdentity, (issuer, external.subject))
                user = await self._user_of(session, provider, issuer, tenant_id, name, external, link)
                if link is None:
                    link = FederatedIdentity(
                        issuer=issuer, subject=external.subject, principal_id=user.id, email="", groups=[],
                        signed_in_at=now,
                    )  # fmt: skip
                    session.add(link)
                await self._sync_groups(session, provider, tenant_id, user, external, link)
                link.email, link.signed_in_at = external.email, now
        except IntegrityError:  # the same first sign-in twice at once
            raise FederationRefused("Another sign-in of this user is being completed; try again.") from None
        return user

    async def _user_of(  # type: ignore[no-untyped-def]
        self, session, provider: Provider, issuer: str, tenant_id: str, name: str, external: ExternalUser, link
    ) -> Principal:
        if link is not None:
            user = await session.get(Principal, link.principal_id)
            if user is None or user.kind != USER or user.tenant_id != tenant_id:
                raise FederationRefused("The Halyard user of this account is not in this tenant.")
            return user  # type: ignore[no-any-return]
        user = await session.scalar(
            select(Principal).where(
                Principal.user_name == name, Principal.kind == USER, Principal.tenant_id == tenant_id
            )
        )
        if user is not None:
            other = await session.scalar(
                select(FederatedIdentity.subject).where(
                    FederatedIdentity.principal_id == user.id, FederatedIdentity.issuer == issuer
                )
            )
            if other is not None:
                # The provider gave the name to another account (a person left, the name was reused): the Halyard
                # user stays with the account it was first linked to.
                raise FederationRefused(
                    f"The Halyard user '{name}' belongs to another account at {provider.display_name}; an "
                    "administrator must delete and re-create the user to link it to this one."
                )
            return user  # type: ignore[no-any-return]
        if provider.users != "create":
            raise FederationRefused(
                f"There is no Halyard user '{name}', and users signing in with {provider.display_name} are not "
                "created automatically: ask an administrator to create it (halyard ad user create)."
            )
        user = user_row(tenant_id, name, external.display_name, self._clock.now())
        session.add(user)
        await session.flush()
        return user  # type: ignore[no-any-return]

    async def _sync_groups(  # type: ignore[no-untyped-def]
        self, session, provider: Provider, tenant_id: str, user: Principal, external: ExternalUser, link
    ) -> None:
        """Memberships follow the provider's groups: a mapped group asserted now is joined, one this provider gave
        at an earlier sign-in and no longer asserts is left. Memberships an administrator gave are not touched
        unless the provider had given the same group."""
        keys = wanted_groups(external.groups, provider.groups)
        granted: set[str] = set()
        if keys:
            rows = await session.scalars(
                select(Principal.id).where(
                    Principal.tenant_id == tenant_id,
                    Principal.kind == GROUP,
                    Principal.id.in_(keys) | Principal.display_name.in_(keys),
                )
            )
            granted = set(rows.all())
        current = set(
            (await session.scalars(select(GroupMember.group_id).where(GroupMember.member_id == user.id))).all()
        )
        for group_id in sorted(granted - current):
            session.add(GroupMember(group_id=group_id, member_id=user.id))
        dropped = set(link.groups or []) - granted
        if dropped:
            await session.execute(
                delete(GroupMember).where(GroupMember.member_id == user.id, GroupMember.group_id.in_(sorted(dropped)))
            )
        link.groups = sorted(granted)
