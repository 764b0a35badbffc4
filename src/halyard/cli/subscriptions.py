"""The subscriptions of a login: fetched from the server, the default chosen, shown as ``az account`` shows them."""

from __future__ import annotations

from typing import Any

from halyard.cli.arm import ArmClient
from halyard.cli.profile import Profile, Subscription

SUBSCRIPTIONS_API_VERSION = "2022-12-01"


def fetch_subscriptions(arm: ArmClient, tenant: str) -> list[Subscription]:
    """The subscriptions the principal can see, as the profile keeps them."""
    return [
        Subscription(
            id=s["subscriptionId"],
            name=s.get("displayName", s["subscriptionId"]),
            state=s.get("state", "Enabled"),
            tenantId=s.get("tenantId", tenant),
            homeTenantId=s.get("tenantId", tenant),
            managedByTenants=s.get("managedByTenants", []),
        )
        for s in arm.list("/subscriptions", SUBSCRIPTIONS_API_VERSION)
    ]


def choose_default(profile: Profile, keep: str | None) -> None:
    """Keep the default subscription when it is still there and enabled; else the first enabled one."""
    enabled = [s.id for s in profile.subscriptions if s.state == "Enabled"]
    profile.default = keep if keep in enabled else (enabled[0] if enabled else None)


def account_entry(profile: Profile, sub: Subscription, *, is_current: bool) -> dict[str, Any]:
    """A subscription as ``az account list`` shows it, with the server it belongs to."""
    return {
        "id": sub.id,
        "name": sub.name,
        "state": sub.state,
        "tenantId": sub.tenantId,
        "homeTenantId": sub.homeTenantId,
        "managedByTenants": sub.managedByTenants,
        "isDefault": is_current and sub.id == profile.default,
        "server": profile.server,
        "user": (
            {"name": profile.userName, "type": "user"}
            if profile.userName
            else {"name": profile.clientId, "type": "servicePrincipal"}
        ),
    }
