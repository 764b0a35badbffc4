"""Issuing a forwarder certificate: only for a private endpoint that exists in the store."""

from __future__ import annotations

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.privatelink.endpointpki import issue
from halyard.core.errors import InvalidRequest
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Resource

ENDPOINTS = "microsoft.network/privateendpoints"


async def issue_for_endpoint(settings: Settings, endpoint_id: str) -> tuple[bytes, bytes, bytes]:
    try:
        rid = ResourceId.parse(endpoint_id)
    except InvalidRequest:
        raise LookupError(f"{endpoint_id[:300]!r} is not a private endpoint's resource id") from None
    db = Database(settings.database)
    try:
        async with db.session() as session:
            row = await session.get(Resource, rid.key)
    finally:
        await db.close()
    if row is None or row.type_key != ENDPOINTS:
        raise LookupError(f"Private endpoint {endpoint_id[:300]!r} does not exist.")
    return issue(settings.data_dir, row.id)
