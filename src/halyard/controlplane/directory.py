"""Tenants, subscriptions, resource groups and provider registrations: the containers resources live in."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import func, select

from halyard.core.clock import Clock
from halyard.core.errors import Conflict, ResourceGroupNotFound, SubscriptionNotFound
from halyard.store import Database
from halyard.store.models import ProviderRegistration, Resource, ResourceGroup, Subscription, Tenant


def new_etag() -> str:
    return f'"{uuid.uuid4()}"'


class Directory:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def tenants(self) -> list[Tenant]:
        async with self._db.session() as session:
            return list((await session.scalars(select(Tenant))).all())

    async def subscriptions(self) -> list[Subscription]:
        async with self._db.session() as session:
            return list((await session.scalars(select(Subscription).order_by(Subscription.display_name))).all())

    async def subscription(self, subscription_id: str) -> Subscription:
        async with self._db.session() as session:
            sub = await session.get(Subscription, subscription_id.lower())
        if sub is None:
            raise SubscriptionNotFound(f"The subscription '{subscription_id}' could not be found.")
        return sub

    async def group(self, subscription_id: str, name: str) -> ResourceGroup:
        await self.subscription(subscription_id)
        async with self._db.session() as session:
            group = await session.get(ResourceGroup, (subscription_id.lower(), name.lower()))
        if group is None:
            raise ResourceGroupNotFound(f"Resource group '{name}' could not be found.")
        return group

    async def groups(self, subscription_id: str) -> list[ResourceGroup]:
        await self.subscription(subscription_id)
        async with self._db.session() as session:
            rows = await session.scalars(
                select(ResourceGroup)
                .where(ResourceGroup.subscription_id == subscription_id.lower())
                .order_by(ResourceGroup.name_key)
            )
            return list(rows.all())

    async def registration_state(self, subscription_id: str, namespace: str) -> str:
        async with self._db.session() as session:
            row = await session.get(ProviderRegistration, (subscription_id.lower(), namespace.lower()))
        return row.state if row else "NotRegistered"

    async def set_registration(self, subscription_id: str, namespace: str, state: str) -> None:
        async with self._db.transaction() as session:
            if state == "Unregistered":
                in_use = await session.scalar(
                    select(func.count())
                    .select_from(Resource)
                    .where(
                        Resource.subscription_id == subscription_id.lower(),
                        Resource.type_key.like(namespace.lower() + "/%"),
                    )
                )
                if in_use:
                    raise Conflict(
                        f"Provider '{namespace}' cannot be unregistered: {in_use} of its resources exist in "
                        "this subscription.",
                        code="ProviderUnregistrationConflict",
                    )
            row = await session.get(ProviderRegistration, (subscription_id.lower(), namespace.lower()))
            if row is None:
                session.add(
                    ProviderRegistration(
                        subscription_id=subscription_id.lower(), namespace_key=namespace.lower(), state=state
                    )
                )
            else:
                row.state = state


def subscription_body(sub: Subscription) -> dict[str, Any]:
    return {
        "id": f"/subscriptions/{sub.id}",
        "subscriptionId": sub.id,
        "tenantId": sub.tenant_id,
        "displayName": sub.display_name,
        "state": sub.state,
        "managedByTenants": [],
        "authorizationSource": "RoleBased",
        "subscriptionPolicies": {
            "locationPlacementId": "Public_2014-09-01",
            "quotaId": "Halyard_2026-01-01",
            "spendingLimit": "Off",
        },
    }


def tenant_body(tenant: Tenant) -> dict[str, Any]:
    return {
        "id": f"/tenants/{tenant.id}",
        "tenantId": tenant.id,
        "tenantCategory": "Home",
        "displayName": tenant.display_name,
        "defaultDomain": tenant.default_domain,
        "domains": [tenant.default_domain],
    }


def group_body(group: ResourceGroup) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": f"/subscriptions/{group.subscription_id}/resourceGroups/{group.name}",
        "name": group.name,
        "type": "Microsoft.Resources/resourceGroups",
        "location": group.location,
        "tags": group.tags or {},
        "properties": {"provisioningState": group.provisioning_state},
    }
    if group.managed_by:
        body["managedBy"] = group.managed_by
    return body
