"""Issuing a forwarder certificate: only for a private endpoint that exists in the store, and put on record there
(the endpoint ingress accepts only certificates on record; deleting the endpoint revokes them)."""

from __future__ import annotations

import datetime as dt

from cryptography import x509

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.privatelink import revocation
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
        async with db.transaction() as session:  # on record with the endpoint's existence, or not issued at all
            row = await session.get(Resource, rid.key)
            if row is None or row.type_key != ENDPOINTS:
                raise LookupError(f"Private endpoint {endpoint_id[:300]!r} does not exist.")
            now = dt.datetime.now(dt.UTC)
            key, cert, ca = issue(settings.data_dir, row.id, now)
            revocation.record(session, row.id, x509.load_pem_x509_certificate(cert), now)
    finally:
        await db.close()
    return key, cert, ca
