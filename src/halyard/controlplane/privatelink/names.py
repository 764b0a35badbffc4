"""The names private endpoints answer for, pure: Halyard's private zone under the configured domain, and one name
per agent-facing service and scope in it (as Arc's ``{scopeId}.{region}.his.arc.azure.com`` under
``privatelink.his.arc.azure.com``)."""

from __future__ import annotations

from halyard.core.settings import Settings

GROUP_ID = "hybridcompute"  # the private link resource's group id, as Arc's
# What an endpoint of a scope serves: the agent-facing services, and management/login so a site can have no
# public path at all (Arc leaves the last two public).
MEMBERS = ("his", "dp", "relay", "management")


def domain(settings: Settings) -> str:
    return settings.domain or "halyard.local"


def zone(settings: Settings) -> str:
    """The one private DNS zone every endpoint's names live in."""
    return f"privatelink.{domain(settings)}"


def record(scope_id: str, member: str) -> str:
    """A member's record name inside the zone, for one scope (``{scopeId}.his``)."""
    return f"{scope_id}.{member}"


def fqdn(settings: Settings, scope_id: str, member: str) -> str:
    return f"{record(scope_id, member)}.{zone(settings)}"


def fqdns(settings: Settings, scope_id: str) -> list[str]:
    return [fqdn(settings, scope_id, m) for m in MEMBERS]
