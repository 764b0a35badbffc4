"""``halyard account list/show/set/get-access-token``: the subscriptions of the stored logins."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.subscriptions import account_entry, choose_default, fetch_subscriptions

app = typer.Typer(help="Manage the subscriptions of your logins.", no_args_is_help=True)
TABLE = (
    ("Name", "name"),
    ("SubscriptionId", "id"),
    ("TenantId", "tenantId"),
    ("Server", "server"),
    ("IsDefault", "isDefault"),
)
SubscriptionOption = Annotated[
    str | None, typer.Option("--subscription", "-s", help="Name or id of a subscription (default: the current one).")
]


def _entries(inv: Invocation) -> list[dict[str, Any]]:
    current = inv.store.current_server()
    return [
        account_entry(profile, sub, is_current=profile.server == current)
        for profile in inv.store.profiles()
        for sub in profile.subscriptions
    ]


@app.command("list")
def list_accounts(
    ctx: typer.Context,
    refresh: Annotated[bool, typer.Option(help="Ask the current server again (after role changes).")] = False,
) -> None:
    """The subscriptions of every stored login; isDefault marks the one commands use."""
    inv = Invocation.of(ctx)
    if refresh:
        profile = inv.profile
        profile.subscriptions = fetch_subscriptions(inv.arm, profile.tenant)
        choose_default(profile, profile.default)
        inv.store.save(profile)
    entries = _entries(inv)
    if not entries:
        inv.warn("Please run 'halyard login' to access your accounts.")
    inv.emit(entries, TABLE)


@app.command("show")
def show(ctx: typer.Context, subscription: SubscriptionOption = None) -> None:
    """The current subscription (or the one named)."""
    inv = Invocation.of(ctx)
    sub = inv.subscription(subscription)
    inv.emit(account_entry(inv.profile, sub, is_current=True))


@app.command("set")
def set_default(ctx: typer.Context, subscription: SubscriptionOption = None) -> None:
    """Make a subscription the default; switches to its server's login when it belongs to another one."""
    inv = Invocation.of(ctx)
    wanted = subscription or inv.options.subscription
    if not wanted:
        raise UsageError("the following arguments are required: --subscription/-s")
    current = inv.store.current_server()
    # The current login first, so a subscription visible from two servers stays on the current one.
    profiles = sorted(inv.store.profiles(), key=lambda p: p.server != current)
    for profile in profiles:
        for sub in profile.subscriptions:
            if wanted.lower() in (sub.id.lower(), sub.name.lower()):
                profile.default = sub.id
                inv.store.save(profile)
                inv.store.set_current(profile.server)
                return
    raise CliError(
        f"The subscription of '{wanted}' doesn't exist in cloud 'halyard'. Run 'halyard account list' to see them.",
        "SubscriptionNotFound",
    )


@app.command("get-access-token")
def get_access_token(ctx: typer.Context) -> None:
    """An access token for the management API (for scripts and other tools)."""
    inv = Invocation.of(ctx)
    token = inv.arm.tokens.token() if inv.arm.tokens else ""
    cached = inv.store.cached_token(inv.profile.server)
    inv.emit(
        {
            "accessToken": token,
            "expiresOn": int(cached.expires_on) if cached else None,
            "subscription": inv.profile.default,
            "tenant": inv.profile.tenant,
            "tokenType": "Bearer",
        }
    )
