"""Reading the resources a write refers to, and writing the rows the server itself makes (an endpoint's
connection on its scope), in the write's own transaction so that a refused write leaves nothing behind."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.directory import new_etag
from halyard.core.errors import InvalidRequest, NotFound
from halyard.store.models import Resource


def parse_id(text: str, full_type: str, target: str) -> ResourceId:
    """A resource id of one type, or a 400 naming the field."""
    try:
        rid = ResourceId.parse(text)
    except Exception:
        rid = None
    if rid is None or rid.full_type.lower() != full_type.lower() or rid.subscription_id is None:
        raise InvalidRequest(
            f"'{text[:300]}' is not the resource id of a {full_type}.", code="LinkedInvalidPropertyId", target=target
        )
    return rid


async def linked(
    session: AsyncSession, text: str, full_type: str, target: str, *, for_update: bool = False
) -> tuple[ResourceId, Resource]:
    """The resource another one names (a subnet, a scope, a zone): it must exist and be of that type."""
    rid = parse_id(text, full_type, target)
    row = await session.get(Resource, rid.key, with_for_update=for_update or None)
    if row is None or row.provisioning_state == "Deleting":
        raise NotFound(f"The {full_type} '{rid}' named by {target} was not found.", code="LinkedResourceNotFound")
    return rid, row


def server_row(
    rid: ResourceId, full_type: str, properties: dict[str, Any], now: dt.datetime, by: str, by_type: str
) -> Resource:
    """A resource row the server writes on a caller's behalf (with the caller as its author)."""
    parent = rid.parent
    return Resource(
        id_key=rid.key,
        id=str(rid),
        subscription_id=rid.subscription_id.lower() if rid.subscription_id else None,
        group_key=(rid.resource_group or "").lower(),
        parent_key=parent.key if parent is not None else None,
        type_key=full_type.lower(),
        type=full_type,
        name=rid.name,
        location=None,
        tags={},
        properties=properties,
        provisioning_state="Succeeded",
        etag=new_etag(),
        created_at=now,
        created_by=by,
        created_by_type=by_type,
        changed_at=now,
        changed_by=by,
        changed_by_type=by_type,
    )
