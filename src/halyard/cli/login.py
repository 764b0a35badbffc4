"""``halyard login`` / ``halyard logout``: a profile per server, as ``az login`` keeps it: a service principal with
its secret, or a user signed in (in a browser, or with a device code), with their refresh token (revoked at the
server on logout)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from halyard.cli.arm import ArmClient
from halyard.cli.browserlogin import LoopbackReceiver, new_request, open_browser
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.profile import Profile
from halyard.cli.subscriptions import account_entry, choose_default, fetch_subscriptions
from halyard.cli.tokens import (
    CLI_CLIENT_ID,
    USER_SCOPES,
    CachedToken,
    TokenProvider,
    UserTokens,
    fetch_audience,
    poll_device_code,
    redeem_code,
    request_token,
    revoke_refresh_token,
    start_device_code,
)
from halyard.cli.transport import Transport

SERVER_ENV = "HALYARD_SERVER"
DEFAULT_SERVER = "https://127.0.0.1:8443"


def login(
    ctx: typer.Context,
    service_principal: Annotated[
        bool, typer.Option("--service-principal", help="Log in as a service principal (app id and secret).")
    ] = False,
    use_device_code: Annotated[
        bool,
        typer.Option(
            "--use-device-code",
            help="Log in as a user: open the page shown, enter the code, your user name and password.",
        ),
    ] = False,
    username: Annotated[str | None, typer.Option("--username", "-u", help="The service principal's app id.")] = None,
    password: Annotated[
        str | None, typer.Option("--password", "-p", help="Its secret; asked for when omitted on a terminal.")
    ] = None,
    tenant: Annotated[str | None, typer.Option("--tenant", "-t", help="Tenant id or domain.")] = None,
    server: Annotated[
        str | None,
        typer.Option(help=f"The Halyard server URL (default: ${SERVER_ENV}, the current profile, {DEFAULT_SERVER})."),
    ] = None,
    ca_cert: Annotated[
        Path | None,
        typer.Option(
            help="CA bundle (PEM) to trust for this server (default: the one of an earlier login to it, else "
            "$REQUESTS_CA_BUNDLE, else the system store)."
        ),
    ] = None,
    allow_no_subscriptions: Annotated[
        bool, typer.Option(help="Log in even when the principal can see no subscription.")
    ] = False,
    no_browser: Annotated[
        bool,
        typer.Option(
            "--no-browser",
            help="Print the sign-in URL only (open it in any browser on this machine) instead of opening a browser.",
        ),
    ] = False,
) -> None:
    """Log in to a Halyard server: a user with --tenant T (in a browser; --use-device-code on a machine without
    one), or a service principal with --service-principal -u APP_ID -p SECRET --tenant T."""
    inv = Invocation.of(ctx)
    if use_device_code and service_principal:
        raise UsageError("--use-device-code signs in a user; --service-principal an application: choose one.")
    if not service_principal:
        if not tenant:
            raise UsageError(
                "Signing a user in needs --tenant (the tenant id or domain); a service principal logs in with "
                "--service-principal -u APP_ID -p SECRET --tenant T."
            )
        _login_user(
            inv, tenant, server, ca_cert, allow_no_subscriptions, device=use_device_code, browser=not no_browser
        )
        return
    if not username or not tenant:
        raise UsageError("--service-principal needs --username/-u (the app id) and --tenant.")
    if password is None:
        if not sys.stdin.isatty():
            raise UsageError("--password/-p is required when not running on a terminal.")
        password = typer.prompt("Password", hide_input=True)
    url = _server_url(server or os.environ.get(SERVER_ENV) or inv.store.current_server() or DEFAULT_SERVER)
    previous = inv.store.load(url)
    # Logging in again to a server (say, after a secret reset) keeps the CA it was first trusted with.
    ca = str(ca_cert.expanduser().resolve()) if ca_cert else (previous.caCert if previous else None)
    transport = inv.transport(ca, use_profile=False)
    audience = fetch_audience(transport, url)
    token = request_token(transport, url, tenant, username, password, audience)
    profile = Profile(server=url, tenant=tenant, clientId=username, clientSecret=password, audience=audience, caCert=ca)
    _finish(inv, profile, previous, token, allow_no_subscriptions)


def _login_user(
    inv: Invocation,
    tenant: str,
    server: str | None,
    ca_cert: Path | None,
    allow_no_subscriptions: bool,
    *,
    device: bool,
    browser: bool,
) -> None:
    """A user's sign-in: with a device code (the server shows a code, the user enters it on its device page, we
    poll for tokens), or with the authorization code flow (the user signs in on the server's page in a browser,
    which brings the code back to our loopback listener)."""
    url = _server_url(server or os.environ.get(SERVER_ENV) or inv.store.current_server() or DEFAULT_SERVER)
    previous = inv.store.load(url)
    ca = str(ca_cert.expanduser().resolve()) if ca_cert else (previous.caCert if previous else None)
    transport = inv.transport(ca, use_profile=False)
    audience = fetch_audience(transport, url)
    if device:
        grant = start_device_code(transport, url, tenant, audience)
        inv.warn(str(grant["message"]))
        user = poll_device_code(transport, url, tenant, grant, sleep=time.sleep)
    else:
        user = _browser_sign_in(inv, transport, url, tenant, audience, browser=browser)
    profile = Profile(
        server=url,
        tenant=tenant,
        clientId=CLI_CLIENT_ID,
        clientSecret="",
        audience=audience,
        caCert=ca,
        userName=user.user_name,
        refreshToken=user.refresh_token,
    )
    _finish(inv, profile, previous, user.access, allow_no_subscriptions, transport=transport)


def _browser_sign_in(
    inv: Invocation, transport: Transport, url: str, tenant: str, audience: str, *, browser: bool
) -> UserTokens:
    receiver = LoopbackReceiver()
    try:
        request = new_request(url, tenant, CLI_CLIENT_ID, audience + ".default" + USER_SCOPES, receiver.redirect_uri)
        opened = browser and open_browser(request.url)
        what = (
            "A web browser has been opened at"
            if opened
            else "To sign in, open this URL in a web browser on this machine:"
        )
        inv.warn(f"{what} {request.url} ; sign in there with your user name and password.")
        code = receiver.wait_for_code(request.state)
    finally:
        receiver.close()
    return redeem_code(transport, url, tenant, code, request.redirect_uri, request.verifier, request.nonce)


def _finish(
    inv: Invocation,
    profile: Profile,
    previous: Profile | None,
    token: CachedToken,
    allow_no_subscriptions: bool,
    transport: Transport | None = None,
) -> None:
    """Read the subscriptions the new identity sees, and make it the current profile."""
    transport = transport or inv.transport(profile.caCert, use_profile=False)
    who = profile.userName or profile.clientId
    arm = ArmClient(transport, profile.server, TokenProvider(inv.store, profile, transport, current=token))
    profile.subscriptions = fetch_subscriptions(arm, profile.tenant)
    if profile.subscriptions:
        profile.tenant = profile.subscriptions[0].tenantId  # a domain given as --tenant becomes its id
    elif not allow_no_subscriptions:
        if profile.refreshToken:
            revoke_refresh_token(transport, profile)
        raise CliError(
            f"No subscriptions found for {who}. Ask for a role assignment, or log in with --allow-no-subscriptions.",
            "SubscriptionNotFound",
        )
    same = previous is not None and (previous.userName or previous.clientId) == who
    choose_default(profile, previous.default if previous and same else None)
    if previous is not None and previous.refreshToken and previous.refreshToken != profile.refreshToken:
        revoke_refresh_token(transport, previous)  # the earlier sign-in to this server ends
    inv.store.remove(profile.server)
    inv.store.save(profile)
    inv.store.cache_token(profile.server, token)
    inv.store.set_current(profile.server)
    inv.emit([account_entry(profile, s, is_current=True) for s in profile.subscriptions])


def logout(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Log out of this server (default: the current one).")] = None,
) -> None:
    """Log out: a user's sign-in is revoked at the server; the profile, its secret and cached token are forgotten."""
    inv = Invocation.of(ctx)
    url = _server_url(server) if server else inv.store.current_server()
    profile = inv.store.load(url) if url else None
    if profile is not None and profile.refreshToken:
        try:
            revoke_refresh_token(inv.transport(profile.caCert, use_profile=False), profile)
        except CliError:  # the server unreachable: forget the profile all the same
            inv.warn(f"Could not reach {url} to revoke the sign-in; it lapses when its refresh token expires.")
    if not url or not inv.store.remove(url):
        raise CliError("There are no active accounts.", "NotLoggedIn")
    if inv.store.current_server() == url:
        remaining = inv.store.profiles()
        inv.store.set_current(remaining[0].server if remaining else None)


def _server_url(value: str) -> str:
    parts = urlsplit(value.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise UsageError(f"argument --server: '{value}' is not an https:// URL.")
    try:
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        raise UsageError(f"argument --server: '{value}' has an invalid port.") from None
    return value.strip().rstrip("/")
