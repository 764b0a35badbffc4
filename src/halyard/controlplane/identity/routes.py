"""The login service's HTTP face: served at the root with the tenant first in every path, as MSAL expects."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

from halyard.controlplane.his.identities import PRINCIPAL_KIND
from halyard.controlplane.identity import pages
from halyard.controlplane.identity.authcode import AuthorizeRequest, form_action_origin, parse_authorize, redirect_to
from halyard.controlplane.identity.csrf import DEVICE_PAGE, FormGuard, binding_of
from halyard.controlplane.identity.csrf import FIELD as CSRF_FIELD
from halyard.controlplane.identity.federation import CALLBACK_PATH, Federation
from halyard.controlplane.identity.oidc import FederationRefused
from halyard.controlplane.identity.people import USER
from halyard.controlplane.identity.principals import ASSERTION_TYPE
from halyard.controlplane.identity.signin import normalize_user_code
from halyard.controlplane.identity.throttle import address_key
from halyard.controlplane.identity.tokens import same_audience
from halyard.controlplane.plane import ControlPlane, plane
from halyard.core.errors import InvalidRequest, OAuthError
from halyard.store.models import Principal, Tenant

log = logging.getLogger("halyard.login")
router = APIRouter(tags=["login"])
Plane = Annotated[ControlPlane, Depends(plane)]
_TOKEN_FORM = {
    "requestBody": {
        "required": True,
        "content": {
            "application/x-www-form-urlencoded": {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {
                            "type": "string",
                            "enum": [
                                "client_credentials",
                                "urn:ietf:params:oauth:grant-type:device_code",
                                "refresh_token",
                                "authorization_code",
                            ],
                        },
                        "device_code": {"type": "string"},
                        "refresh_token": {"type": "string"},
                        "code": {"type": "string"},
                        "redirect_uri": {"type": "string"},
                        "code_verifier": {"type": "string"},
                        "client_id": {"type": "string"},
                        "client_secret": {"type": "string"},
                        "client_assertion_type": {"type": "string"},
                        "client_assertion": {"type": "string"},
                        "scope": {"type": "string"},
                    },
                }
            }
        },
    }
}


async def _tenant(cp: ControlPlane, tenant: str) -> Tenant:
    for t in await cp.directory.tenants():
        if tenant.lower() in (t.id.lower(), t.default_domain.lower()):
            return t
    raise OAuthError(
        "invalid_request",
        f"Tenant '{tenant}' not found. Check to make sure you have the correct tenant ID and are signing into the "
        "correct cloud.",
        aadsts=90002,
    )


# Entra's multi-tenant aliases. MSAL opens them before it knows the tenant: `az logout` (and any command that builds
# az's MSAL app without --tenant) reads {alias}/v2.0/.well-known/openid-configuration and fails if it is missing.
# As on Entra, the document names no tenant; tokens are still only issued at a tenant's own endpoint.
_TENANT_ALIASES = ("organizations", "common")


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", operation_id="OpenIdConfiguration")
async def openid_configuration(tenant: str, cp: Plane) -> JSONResponse:
    if tenant.lower() in _TENANT_ALIASES:
        path, issuer = tenant.lower(), cp.tokens.issuer("{tenantid}")
    else:
        t = await _tenant(cp, tenant)
        path, issuer = t.id, cp.tokens.issuer(t.id)
    base = cp.settings.base_url
    return JSONResponse(
        {
            "issuer": issuer,
            "authorization_endpoint": f"{base}/{path}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/{path}/oauth2/v2.0/token",
            "jwks_uri": f"{base}/{path}/discovery/v2.0/keys",
            "device_authorization_endpoint": f"{base}/{path}/oauth2/v2.0/devicecode",
            "revocation_endpoint": f"{base}/{path}/oauth2/v2.0/revoke",
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt", "none"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
            "grant_types_supported": ["client_credentials", DEVICE_GRANT, "refresh_token", "authorization_code"],
            "code_challenge_methods_supported": ["S256"],
            "response_types_supported": ["code"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["ES256"],
            "scopes_supported": [f"{cp.settings.audience}.default"],
            "tenant_region_scope": "Halyard",
        }
    )


@router.get("/{tenant}/discovery/v2.0/keys", operation_id="Jwks")
async def jwks(tenant: str, cp: Plane) -> JSONResponse:
    if tenant.lower() not in _TENANT_ALIASES:  # one key ring signs for every tenant
        await _tenant(cp, tenant)
    return JSONResponse(cp.keys.jwks(), headers={"Cache-Control": "public, max-age=300"})


@router.get("/{tenant}/oauth2/v2.0/authorize", response_class=HTMLResponse, operation_id="Authorize")
async def authorize(tenant: str, request: Request, cp: Plane) -> HTMLResponse:
    """The sign-in page of the authorization code flow (PKCE required; loopback or same-origin redirect URIs)."""
    await _tenant(cp, tenant)
    auth = parse_authorize(dict(request.query_params), cp.settings.base_url)
    _audience(cp, auth.scope)
    guard = _guard(cp)
    browser = guard.browser(request.cookies)
    fields = auth.fields()
    federation = _federation(request)
    page = pages.signin_page(fields, csrf=guard.issue(browser, binding_of(fields)), providers=federation.providers)
    return HTMLResponse(page, headers={**_signin_headers(auth, federation), **guard.set_cookie(browser)})


@router.post("/{tenant}/oauth2/v2.0/authorize", response_class=HTMLResponse, operation_id="AuthorizeSignIn")
async def authorize_sign_in(tenant: str, request: Request, cp: Plane) -> Response:
    """The user posted the sign-in form: their password is checked (throttled as secrets are) and they are sent
    back to the client's redirect URI with a single-use code."""
    t = await _tenant(cp, tenant)
    form = await _form(request)
    auth = parse_authorize(form, cp.settings.base_url)
    _audience(cp, auth.scope)
    user_name = form.get("username", "")
    federation = _federation(request)
    page_headers = _signin_headers(auth, federation)
    if not _guard(cp).check(request.cookies, form.get(CSRF_FIELD, ""), binding_of(auth.fields())):
        return _forged()
    if pages.FEDERATION_FIELD in form:
        return await _start_federation(federation, form[pages.FEDERATION_FIELD], t.id, auth.fields())

    def again(error: str, status: int, extra: dict[str, str] | None = None, ask_new: bool = False) -> HTMLResponse:
        page = pages.signin_page(
            auth.fields(), csrf=form[CSRF_FIELD], providers=federation.providers, user_name=user_name[:256],
            error=error, ask_new=ask_new,
        )  # fmt: skip
        return HTMLResponse(page, status_code=status, headers={**page_headers, **(extra or {})})

    address = address_key(request.client.host if request.client else None)
    try:
        user = await _password_sign_in(cp, address, t.id, form)
    except _Retry as retry:
        return again(retry.message, retry.status, retry.headers, ask_new=retry.ask_new)
    return await _answer_with_code(cp, auth, user)


async def _answer_with_code(cp: ControlPlane, auth: AuthorizeRequest, user: Principal) -> Response:
    """The end of a sign-in: the browser sent back to the client's redirect URI with a single-use code."""
    code = await cp.principals.signins.issue_code(
        user.id, auth.client_id, auth.redirect_uri, auth.code_challenge, auth.scope, auth.nonce
    )
    answer = {"code": code, "state": auth.state}
    if auth.response_mode == "form_post":
        return HTMLResponse(
            pages.form_post_page(auth.redirect_uri, answer),
            headers=pages.form_post_headers(form_action_origin(auth.redirect_uri)),
        )
    headers = pages.headers(form_action_origin(auth.redirect_uri))
    return Response(status_code=303, headers={**headers, "Location": redirect_to(auth.redirect_uri, answer)})


def _federation(request: Request) -> Federation:
    federation: Federation = request.app.state.federation
    return federation


def _signin_headers(auth: AuthorizeRequest, federation: Federation) -> dict[str, str]:
    """The sign-in page's headers: its forms may end at the client's redirect URI, or (federation) at a provider's
    authorization endpoint (CSP form-action governs the redirect after a post)."""
    return pages.headers(" ".join([form_action_origin(auth.redirect_uri), *federation.form_origins()]))


# What a federated sign-in started on the device page resumes: the device code to approve.
DEVICE_RESUME = "device_user_code"


async def _start_federation(
    federation: Federation, provider_id: str, tenant_id: str, resume: dict[str, str]
) -> Response:
    """A provider's button was pressed: the browser is sent to the provider, with a cookie binding the sign-in to
    it; ``resume``: what to complete when it comes back (an authorization request's fields, or a device code)."""
    provider = federation.provider(provider_id)
    if provider is None:
        return _refused(f"There is no identity provider '{provider_id[:64]}' here.", 400)
    try:
        started = await federation.start(provider, tenant_id, resume)
    except FederationRefused as exc:
        return _refused(exc.message, 502)
    return Response(
        status_code=303,
        headers={**pages.headers(), "Location": started.url, "Set-Cookie": federation.set_cookie(started.browser)},
    )


@router.get(CALLBACK_PATH, response_class=HTMLResponse, operation_id="FederationCallback")
async def federation_callback(request: Request, cp: Plane) -> Response:
    """The external provider sent the browser back (OpenID Connect): the id token is checked, the user mapped and
    signed in, and sent on to the application that asked Halyard, with a code. Failures count against the
    address's login throttle, like wrong passwords."""
    federation = _federation(request)
    address = address_key(request.client.host if request.client else None)
    wait = cp.login_throttle.begin(address, reserve=False)
    if wait:
        return _refused(
            f"Too many failed sign-in attempts. Try again in {wait} seconds.", 429, {"Retry-After": str(wait)}
        )
    failed = True
    try:
        finished = await federation.finish(dict(request.query_params), request.cookies)
        failed = False
    except FederationRefused as exc:
        log.warning("federated sign-in refused", extra={"reason": exc.message})
        return _refused(exc.message, 400)
    finally:
        cp.login_throttle.end(address, failed=failed, reserve=False)
    device_code = finished.resume.get(DEVICE_RESUME)
    if device_code is not None:
        if not await cp.principals.signins.approve_device(device_code, finished.user):
            return _refused("That code is not valid or has expired. Start the sign-in again on the device.", 400)
        answer: Response = HTMLResponse(pages.done_page(finished.user.user_name or ""), headers=pages.headers())
    else:
        answer = await _answer_with_code(cp, parse_authorize(finished.resume, cp.settings.base_url), finished.user)
    answer.headers.append("Set-Cookie", federation.clear_cookie())
    return answer


def _refused(message: str, status: int, extra: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(pages.refused_page(message), status_code=status, headers={**pages.headers(), **(extra or {})})


@router.post("/{tenant}/oauth2/v2.0/token", openapi_extra=_TOKEN_FORM, operation_id="Token")
async def token(tenant: str, request: Request, cp: Plane) -> JSONResponse:
    # The peer address of the connection, never X-Forwarded-For: anyone can write that header, and a guesser would
    # send a new value with every request. Behind a reverse proxy every client shares the proxy's address (see
    # docs/security.md). Counted here, before any scrypt or signature work, and in memory (per replica).
    address = address_key(request.client.host if request.client else None)
    form = await _form(request)
    # A client secret costs a scrypt, so its attempt reserves a failure up front (concurrent guesses are bounded); an
    # assertion is cheap and is only counted if it fails (agents behind one NAT address may all sign in at once).
    grant = form.get("grant_type", "")
    costly = grant == "client_credentials" and not form.get("client_assertion")
    # Failures are counted per client id and address (and per address across all its client ids): a principal
    # mistyped ten times locks out only itself, from that address, for a while.
    principal = form.get("client_id", "")
    wait = cp.login_throttle.begin(address, reserve=costly, principal=principal)
    if wait:
        # 429 + Retry-After is what both clients back off on: MSAL (az) holds the answer for Retry-After seconds
        # instead of resending, azure-core's retry policy waits that long. The error is temporarily_unavailable, not
        # invalid_client: the credentials in this request were not even checked and may well be right, and
        # invalid_client would have az tell the user their secret is wrong. AADSTS50053 is Entra's "locked: too
        # many sign-in attempts", so the code leads whoever searches it to the right cause.
        lifts = (cp.clock.now() + dt.timedelta(seconds=wait)).astimezone(dt.UTC).strftime("%H:%M:%S UTC")
        raise OAuthError(
            "temporarily_unavailable",
            f"Too many failed sign-in attempts for this client from this address. Try again in {wait} seconds "
            f"(at {lifts}).",
            status=429,
            aadsts=50053,
            headers={"Retry-After": str(wait)},
        )
    failed = False
    try:
        return await _token(tenant, form, cp)
    except OAuthError as exc:
        # invalid_client is the credential failures: a wrong secret, a bad, expired or replayed assertion.
        failed = exc.error == "invalid_client"
        raise
    finally:
        cp.login_throttle.end(address, failed=failed, reserve=costly, principal=principal)


async def _form(request: Request) -> dict[str, str]:
    """The token request's form fields (OAuth sends form-encoded bodies only)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("application/x-www-form-urlencoded"):
        raise OAuthError(
            "invalid_request", "The request body must be application/x-www-form-urlencoded.", aadsts=900144
        )
    raw = await request.body()
    if len(raw) > 64 * 1024:
        raise OAuthError("invalid_request", "The request body is too large.")
    try:
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True, strict_parsing=False).items()}
    except UnicodeDecodeError:
        raise OAuthError("invalid_request", "The request body is not valid UTF-8.") from None
    return form


async def _token(tenant: str, form: dict[str, str], cp: ControlPlane) -> JSONResponse:
    t = await _tenant(cp, tenant)
    grant = form.get("grant_type", "")
    if grant in (DEVICE_GRANT, "refresh_token", "authorization_code"):
        return await _user_grant(t, grant, form, cp)
    if grant != "client_credentials":
        raise OAuthError(
            "unsupported_grant_type",
            f"The grant type '{grant}' is not supported; Halyard issues tokens with client_credentials, "
            "device_code and refresh_token.",
            aadsts=70003,
        )
    audience = _audience(cp, form.get("scope", ""))
    client_id = form.get("client_id", "")
    if form.get("client_assertion"):
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"client_assertion_type must be '{ASSERTION_TYPE}'.", aadsts=50027)
        endpoint = f"{cp.settings.base_url}/{t.id}/oauth2/v2.0/token"
        principal = await cp.principals.authenticate_assertion(
            t.id, client_id, form["client_assertion"], [endpoint, cp.tokens.issuer(t.id)]
        )
    elif form.get("client_secret"):
        if not client_id:
            raise OAuthError("invalid_request", "client_id is required.", aadsts=900144)
        principal = await cp.principals.authenticate_secret(t.id, client_id, form["client_secret"])
    else:
        raise OAuthError(
            "invalid_client",
            "The request body must contain client_secret or client_assertion.",
            status=401,
            aadsts=7000218,
        )
    if principal.kind == PRINCIPAL_KIND and not same_audience(audience, cp.settings.agent_audience):
        # A cluster's key lives in the cluster: whoever holds it gets the agent services, never the management API.
        raise OAuthError(
            "unauthorized_client",
            "A connected cluster's identity may request tokens only for the agent services.",
            aadsts=700016,
        )
    if principal.kind not in ("ServicePrincipal", PRINCIPAL_KIND):
        raise OAuthError("unauthorized_client", "Only applications use client credentials.", aadsts=700016)
    access_token, lifetime = cp.tokens.issue(
        tenant_id=t.id,
        object_id=principal.id,
        app_id=principal.app_id,
        kind=principal.kind,
        audience=audience,
        resource_id=principal.resource_id if principal.kind == PRINCIPAL_KIND else None,
    )
    return JSONResponse(
        {
            "token_type": "Bearer",
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
        },
        headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
    )


DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
# Scopes MSAL adds to every interactive request; they ask for an id token and a refresh token, not a resource.
_OIDC_SCOPES = frozenset({"openid", "profile", "offline_access", "email"})
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


@router.post("/{tenant}/oauth2/v2.0/devicecode", operation_id="DeviceCode")
async def devicecode(tenant: str, request: Request, cp: Plane) -> JSONResponse:
    """Start a device-code sign-in (RFC 8628 §3.1): the device shows ``user_code`` and polls the token endpoint."""
    t = await _tenant(cp, tenant)
    form = await _form(request)
    client_id = form.get("client_id", "")
    if not client_id:
        raise OAuthError("invalid_request", "client_id is required.", aadsts=900144)
    scope = form.get("scope", "")
    _audience(cp, scope)  # refuse an unknown resource now, not after the user signed in
    grant = await cp.principals.signins.start_device(t.id, client_id, scope)
    uri = f"{cp.settings.base_url}/devicelogin"
    return JSONResponse(
        {
            "device_code": grant.device_code,
            "user_code": grant.user_code,
            "verification_uri": uri,
            "expires_in": grant.expires_in,
            "interval": grant.interval,
            "message": f"To sign in, use a web browser to open the page {uri} and enter the code {grant.user_code} "
            "to authenticate.",
        },
        headers=_NO_STORE,
    )


@router.get("/devicelogin", response_class=HTMLResponse, operation_id="DeviceLoginPage")
async def devicelogin_page(request: Request, cp: Plane, code: str = "") -> HTMLResponse:
    guard = _guard(cp)
    browser = guard.browser(request.cookies)
    federation = _federation(request)
    page = pages.form_page(csrf=guard.issue(browser, DEVICE_PAGE), providers=federation.providers, user_code=code[:16])
    return HTMLResponse(page, headers={**_device_headers(federation), **guard.set_cookie(browser)})


def _device_headers(federation: Federation) -> dict[str, str]:
    return pages.headers(" ".join(federation.form_origins()))


@router.post("/devicelogin", response_class=HTMLResponse, operation_id="DeviceLogin")
async def devicelogin(request: Request, cp: Plane) -> Response:
    """The user enters the device's code, their user name and password; the device's next poll gets their tokens."""
    form = await _form(request)
    user_code, user_name = form.get("user_code", ""), form.get("username", "")
    if not _guard(cp).check(request.cookies, form.get(CSRF_FIELD, ""), DEVICE_PAGE):
        return _forged()

    federation = _federation(request)

    def again(error: str, status: int, headers: dict[str, str] | None = None, ask_new: bool = False) -> HTMLResponse:
        page = pages.form_page(
            csrf=form[CSRF_FIELD], providers=federation.providers, user_code=user_code[:16],
            user_name=user_name[:256], error=error, ask_new=ask_new,
        )  # fmt: skip
        return HTMLResponse(page, status_code=status, headers={**_device_headers(federation), **(headers or {})})

    address = address_key(request.client.host if request.client else None)
    pending = await cp.principals.signins.pending_device(user_code)
    if pending is None:
        # Wrong codes count as failures of the address: pending codes cannot be guessed without limit either.
        wait = cp.login_throttle.begin(address, reserve=False)
        if wait:
            return again(f"Too many failed attempts. Try again in {wait} seconds.", 429, {"Retry-After": str(wait)})
        cp.login_throttle.end(address, failed=True, reserve=False)
        return again("That code is not valid or has expired. Start the sign-in again on the device.", 400)
    if pages.FEDERATION_FIELD in form:  # "Sign in with <provider>": approved when the provider sends the user back
        return await _start_federation(
            federation, form[pages.FEDERATION_FIELD], pending.tenant_id, {DEVICE_RESUME: pending.user_code}
        )
    try:
        user = await _password_sign_in(cp, address, pending.tenant_id, form)
    except _Retry as retry:
        return again(retry.message, retry.status, retry.headers, ask_new=retry.ask_new)
    if not await cp.principals.signins.approve_device(normalize_user_code(user_code), user):
        return again("That code is not valid or has expired. Start the sign-in again on the device.", 400)
    return HTMLResponse(pages.done_page(user.user_name or ""), headers=pages.headers())


def _guard(cp: ControlPlane) -> FormGuard:
    return FormGuard(cp.sealer, cp.clock, secure=cp.settings.base_url.startswith("https://"))


def _forged() -> HTMLResponse:
    """A form posted without the token its page gave this browser: another site's post, or a page kept open too
    long. Nothing in it is looked at (no password is checked, nothing counts against the throttle)."""
    page = pages.refused_page(
        "This sign-in form has expired or was not opened in this browser. Open the sign-in page again from the "
        "application or device that sent you here."
    )
    return HTMLResponse(page, status_code=403, headers=pages.headers())


class _Retry(Exception):
    """A sign-in form to show again, with what to tell the user."""

    def __init__(self, message: str, status: int, headers: dict[str, str] | None = None, ask_new: bool = False):
        super().__init__(message)
        self.message, self.status, self.headers, self.ask_new = message, status, headers or {}, ask_new


async def _password_sign_in(cp: ControlPlane, address: str, tenant_id: str, form: dict[str, str]) -> Principal:
    """The user a sign-in form's user name and password prove. Throttled as client secrets are (per address and
    user name, and per address across names). A temporary password signs in only with a new one, which replaces
    it (the form is shown again asking for it)."""
    user_name, password, new_password = form.get("username", ""), form.get("password", ""), form.get("new_password", "")
    wait = cp.login_throttle.begin(address, reserve=True, principal=user_name.lower())
    if wait:
        raise _Retry(f"Too many failed sign-in attempts. Try again in {wait} seconds.", 429, {"Retry-After": str(wait)})
    failed = False
    try:
        user, temporary = await cp.principals.authenticate_password(tenant_id, user_name, password)
    except OAuthError as exc:
        failed = exc.error == "invalid_grant"
        if not failed:
            raise
        raise _Retry("The user name or password is incorrect.", 400) from None
    finally:
        cp.login_throttle.end(address, failed=failed, reserve=True, principal=user_name.lower())
    if temporary:
        if not new_password:
            raise _Retry("Your password must be changed: enter your current password and a new one.", 400, ask_new=True)
        if new_password == password:
            raise _Retry("The new password must differ from the current one.", 400, ask_new=True)
        try:
            await cp.principals.people.set_password(user.id, new_password)
        except InvalidRequest as exc:
            raise _Retry(exc.message, 400, ask_new=True) from None
    return user


@router.post("/{tenant}/oauth2/v2.0/revoke", operation_id="Revoke")
async def revoke(tenant: str, request: Request, cp: Plane) -> Response:
    """Sign out (RFC 7009): the refresh token and every one rotated from the same sign-in stop working. 200 even
    for an unknown token, as the RFC says: the answer tells nothing about which tokens exist."""
    await _tenant(cp, tenant)
    form = await _form(request)
    if form.get("token"):
        await cp.principals.signins.revoke(form["token"])
    return Response(status_code=200, headers=_NO_STORE)


async def _user_grant(t: Tenant, grant: str, form: dict[str, str], cp: ControlPlane) -> JSONResponse:
    """A user's tokens, from an approved device code or a refresh token (rotated: the one presented is spent)."""
    client_id = form.get("client_id", "")
    if not client_id:
        raise OAuthError("invalid_request", "client_id is required.", aadsts=900144)
    family: str | None = None
    nonce = ""
    if grant == DEVICE_GRANT:
        principal_id, scope = await cp.principals.signins.redeem_device(t.id, client_id, form.get("device_code", ""))
    elif grant == "authorization_code":
        principal_id, scope, nonce = await cp.principals.signins.redeem_code(
            form.get("code", ""), client_id, form.get("redirect_uri", ""), form.get("code_verifier", "")
        )
    else:
        redeemed = await cp.principals.signins.redeem_refresh(form.get("refresh_token", ""), client_id)
        principal_id, family, scope = redeemed.principal_id, redeemed.family, form.get("scope", "")
    user = await cp.principals.get(principal_id)
    if user is None or user.kind != USER or user.tenant_id != t.id:
        raise OAuthError("invalid_grant", "The user of this sign-in no longer exists.", aadsts=50034)
    audience = _audience(cp, scope)
    groups = await cp.principals.people.groups_of(user.id)
    access_token, lifetime = cp.tokens.issue(
        tenant_id=t.id,
        object_id=user.id,
        app_id=client_id,
        kind=USER,
        audience=audience,
        claims=_user_claims(user, groups),
    )
    id_token, _ = cp.tokens.issue(
        tenant_id=t.id, object_id=user.id, app_id=client_id, kind=USER, audience=client_id,
        claims={**_user_claims(user, groups), **({"nonce": nonce} if nonce else {})},
    )  # fmt: skip
    refresh = await cp.principals.signins.issue_refresh(user.id, client_id, family)
    client_info = base64.urlsafe_b64encode(json.dumps({"uid": user.id, "utid": t.id}).encode()).decode().rstrip("=")
    return JSONResponse(
        {
            "token_type": "Bearer",
            "scope": " ".join(s for s in scope.split() if s not in _OIDC_SCOPES),
            "expires_in": lifetime,
            "ext_expires_in": lifetime,
            "access_token": access_token,
            "refresh_token": refresh,
            "id_token": id_token,
            "client_info": client_info,
        },
        headers=_NO_STORE,
    )


def _user_claims(user: Principal, groups: tuple[str, ...]) -> dict[str, object]:
    return {
        "idtyp": "user",
        "upn": user.user_name,
        "preferred_username": user.user_name,
        "unique_name": user.user_name,
        "name": user.display_name,
        "groups": list(groups),
        "scp": "user_impersonation",
    }


def _audience(cp: ControlPlane, scope: str) -> str:
    """``https://management.halyard.local//.default`` (az) and ``…/.default`` (azure-identity) are the same."""
    for item in scope.split():
        if item.endswith("/.default"):
            resource = item[: -len("/.default")]
            for known in (cp.settings.audience, cp.settings.agent_audience):
                if same_audience(resource, known):
                    return known
            raise OAuthError(
                "invalid_resource",
                f"The resource principal named {resource} was not found in the tenant.",
                aadsts=500011,
            )
    raise OAuthError(
        "invalid_scope",
        f"The scope '{scope}' is not valid: ask for '{cp.settings.audience}.default'.",
        aadsts=70011,
    )
