"""``halyard login`` / ``halyard logout``: a service principal's profile per server, as ``az login`` keeps it."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from halyard.cli.arm import ArmClient
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.profile import Profile
from halyard.cli.subscriptions import account_entry, choose_default, fetch_subscriptions
from halyard.cli.tokens import TokenProvider, fetch_audience, request_token

SERVER_ENV = "HALYARD_SERVER"
DEFAULT_SERVER = "https://127.0.0.1:8443"


def login(
    ctx: typer.Context,
    service_principal: Annotated[
        bool, typer.Option("--service-principal", help="Log in as a service principal (the only kind Halyard has).")
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
) -> None:
    """Log in to a Halyard server with a service principal: halyard login --service-principal -u ID -p SECRET --tenant T."""
    inv = Invocation.of(ctx)
    if not service_principal:
        raise UsageError("Halyard signs in service principals: add --service-principal -u APP_ID -p SECRET --tenant T.")
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
    arm = ArmClient(transport, url, TokenProvider(inv.store, profile, transport, current=token))
    profile.subscriptions = fetch_subscriptions(arm, tenant)
    if profile.subscriptions:
        profile.tenant = profile.subscriptions[0].tenantId  # a domain given as --tenant becomes its id
    elif not allow_no_subscriptions:
        raise CliError(
            f"No subscriptions found for {username}. Ask for a role assignment, or log in with "
            "--allow-no-subscriptions.",
            "SubscriptionNotFound",
        )
    choose_default(profile, previous.default if previous and previous.clientId == username else None)
    inv.store.remove(url)
    inv.store.save(profile)
    inv.store.cache_token(url, token)
    inv.store.set_current(url)
    inv.emit([account_entry(profile, s, is_current=True) for s in profile.subscriptions])


def logout(
    ctx: typer.Context,
    server: Annotated[str | None, typer.Option(help="Log out of this server (default: the current one).")] = None,
) -> None:
    """Log out: forget the profile, its secret and its cached token."""
    inv = Invocation.of(ctx)
    url = _server_url(server) if server else inv.store.current_server()
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
