"""First start: a tenant, a default subscription, its providers registered, and an admin service principal.

The admin's secret is written once to ``<data-dir>/admin.json`` (mode 0600) so scripts and tests can log in
without scraping output; it is never logged.
"""

from __future__ import annotations

import json
import logging
import uuid

from sqlalchemy import func, select

from halyard.controlplane.arm import rbac
from halyard.controlplane.plane import ControlPlane
from halyard.core.files import write_private
from halyard.store.models import Subscription, Tenant

log = logging.getLogger("halyard.bootstrap")
ADMIN_FILE = "admin.json"


async def bootstrap(cp: ControlPlane) -> bool:
    """Create the first tenant and admin when the store is empty. Returns whether it did."""
    async with cp.db.session() as session:
        if await session.scalar(select(func.count()).select_from(Tenant)):
            return False
    domain = cp.settings.domain or "halyard.local"
    tenant_id, subscription_id = str(uuid.uuid4()), str(uuid.uuid4())
    async with cp.db.transaction() as session:
        session.add(Tenant(id=tenant_id, display_name="Halyard", default_domain=domain))
        await session.flush()
        session.add(
            Subscription(id=subscription_id, tenant_id=tenant_id, display_name="halyard-default", state="Enabled")
        )
    for provider in cp.types.providers.values():
        await cp.directory.set_registration(subscription_id, provider.namespace, "Registered")
    admin = await cp.principals.create_service_principal(tenant_id, "halyard-admin")
    # Tenant root scope: the admin administers every subscription of the tenant and its principals.
    await cp.access.assign(scope="/", role_id=rbac.OWNER.id, principal_id=admin.principal.id)
    path = cp.settings.data_dir / ADMIN_FILE
    write_private(
        path,
        json.dumps(
            {
                "tenant": tenant_id,
                "subscription": subscription_id,
                "clientId": admin.principal.app_id,
                "clientSecret": admin.secret,
                "server": cp.settings.base_url,
                "caCert": str(cp.settings.ca_bundle) if cp.settings.ca_bundle else None,
                "audience": cp.settings.audience,
            },
            indent=2,
        ).encode(),
    )
    log.info(
        "first start: tenant, subscription and admin created",
        extra={"tenant": tenant_id, "subscription": subscription_id, "admin_file": str(path)},
    )
    return True
