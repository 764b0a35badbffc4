"""The login service's HTTP face: served at the root with the tenant first in every path, as MSAL expects."""

from __future__ import annotations

import datetime as dt
from typing import Annotated
from urllib.parse import parse_qs

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.his.identities import PRINCIPAL_KIND
from halyard.controlplane.identity.principals import ASSERTION_TYPE
from halyard.controlplane.identity.throttle import address_key
from halyard.controlplane.identity.tokens import same_audience
from halyard.controlplane.plane import ControlPlane, plane
from halyard.core.errors import OAuthError
from halyard.store.models import Tenant

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
                        "grant_type": {"type": "string", "enum": ["client_credentials"]},
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
            "token_endpoint_auth_methods_supported": ["client_secret_post", "private_key_jwt"],
            "token_endpoint_auth_signing_alg_values_supported": ["RS256", "ES256", "PS256"],
            "grant_types_supported": ["client_credentials"],
            "response_types_supported": ["token"],
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


@router.get("/{tenant}/oauth2/v2.0/authorize", operation_id="Authorize")
async def authorize(tenant: str, cp: Plane) -> JSONResponse:
    await _tenant(cp, tenant)
    raise OAuthError(
        "unsupported_response_type",
        "Interactive sign-in is not offered by Halyard: use a service principal (client credentials).",
    )


@router.post("/{tenant}/oauth2/v2.0/token", openapi_extra=_TOKEN_FORM, operation_id="Token")
async def token(tenant: str, request: Request, cp: Plane) -> JSONResponse:
    # The peer address of the connection, never X-Forwarded-For: anyone can write that header, and a guesser would
    # send a new value with every request. Behind a reverse proxy every client shares the proxy's address (see
    # docs/security.md). Counted here, before any scrypt or signature work, and in memory (per replica).
    address = address_key(request.client.host if request.client else None)
    form = await _form(request)
    # A client secret costs a scrypt, so its attempt reserves a failure up front (concurrent guesses are bounded); an
    # assertion is cheap and is only counted if it fails (agents behind one NAT address may all sign in at once).
    costly = not form.get("client_assertion")
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
    if grant != "client_credentials":
        raise OAuthError(
            "unsupported_grant_type",
            f"The grant type '{grant}' is not supported; Halyard issues tokens with client_credentials.",
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
