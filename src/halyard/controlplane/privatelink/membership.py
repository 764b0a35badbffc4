"""A cluster joining a scope: the scope must exist, in the cluster's subscription and location."""

from __future__ import annotations

from halyard.controlplane.arm.resourcetypes import WriteContext, normalize_location
from halyard.controlplane.network.rows import linked
from halyard.controlplane.privatelink.scopes import SCOPES
from halyard.core.errors import InvalidRequest

TARGET = "properties.privateLinkScopeResourceId"


async def check_cluster_scope(ctx: WriteContext, scope: str, location: str) -> str:
    """The scope's id as stored (its canonical spelling), or the ARM error saying which rule failed."""
    scope_id, row = await linked(ctx.session, scope, SCOPES, TARGET)
    if (scope_id.subscription_id or "").lower() != (ctx.resource_id.subscription_id or "").lower():
        raise InvalidRequest(
            "The private link scope must be in the cluster's subscription.",
            code="CrossSubscriptionNotSupported",
            target=TARGET,
        )
    if row.location != normalize_location(location):
        raise InvalidRequest(
            f"The private link scope is in '{row.location}'; the cluster (in '{normalize_location(location)}') must "
            "be in its scope's location.",
            code="PrivateLinkScopeLocationMismatch",
            target=TARGET,
        )
    return row.id
