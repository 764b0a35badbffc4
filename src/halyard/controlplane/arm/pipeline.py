"""The one ARM resource pipeline: validate → authorize → persist → async operation, for every resource type."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.operations import MAX_ATTEMPTS
from halyard.controlplane.arm.paging import decode_skip_token, next_link
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.resourcetypes import ResourceType, normalize_location
from halyard.controlplane.directory import new_etag
from halyard.core.clock import isoformat
from halyard.core.errors import (
    Conflict,
    HalyardError,
    InvalidRequest,
    InvalidResourceName,
    NotFound,
    PreconditionFailed,
    ResourceGroupNotFound,
)
from halyard.store.models import Operation, Resource, ResourceGroup

if TYPE_CHECKING:
    from halyard.controlplane.plane import ControlPlane


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def principal_type(caller: AuthorizedCaller) -> str:
    return "Application" if caller.caller.kind == "ServicePrincipal" else "ManagedIdentity"


class Pipeline:
    def __init__(self, cp: ControlPlane) -> None:
        self.cp = cp
        cp.operations.handle("resource/put", self._provision)
        cp.operations.handle("resource/patch", self._provision)
        cp.operations.handle("resource/delete", self._delete_op)

    # ---- reads -------------------------------------------------------------------------------------------------

    async def get(self, caller: AuthorizedCaller, rtype: ResourceType, rid: ResourceId, api_version: str) -> Reply:
        caller.require(f"{rtype.full_type}/read", str(rid))
        resource = await self._load(rtype, rid)
        return Reply(200, self.render(rtype, resource, api_version), {"ETag": resource.etag})

    async def _load(self, rtype: ResourceType, rid: ResourceId) -> Resource:
        async with self.cp.db.session() as session:
            resource = await session.get(Resource, rid.key)
        if resource is None:
            # Only a miss pays for telling a missing group (or subscription) from a missing resource: a resource
            # row exists only inside an existing group, since deleting the group deletes its resources first.
            await self.cp.directory.group(rid.subscription_id, rid.resource_group)
            raise NotFound(
                f"The Resource '{rtype.full_type}/{rid.name}' under resource group '{rid.resource_group}' was not found."
            )
        return resource

    async def list(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        api_version: str,
        *,
        subscription_id: str,
        group: str | None,
        skip_token: str | None,
        top: int | None,
        base_path: str,
    ) -> Reply:
        scope = f"/subscriptions/{subscription_id}" + (f"/resourceGroups/{group}" if group else "")
        if group:
            await self.cp.directory.group(subscription_id, group)
        else:
            await self.cp.directory.subscription(subscription_id)
        page = min(top or self.cp.settings.page_size, self.cp.settings.page_size)
        query = select(Resource).where(
            Resource.subscription_id == subscription_id.lower(), Resource.type_key == rtype.key
        )
        if group:
            query = query.where(Resource.group_key == group.lower())
        after = decode_skip_token(skip_token)
        if after:
            query = query.where(Resource.id_key > after)
        # A caller with access to only some groups sees only their resources (as ARM filters lists).
        can_all = caller.allowed(f"{rtype.full_type}/read", scope)
        async with self.cp.db.session() as session:
            rows = list((await session.scalars(query.order_by(Resource.id_key).limit(page + 1))).all())
        caller.require_at_or_below(f"{rtype.full_type}/read", scope)
        more = len(rows) > page
        rows = rows[:page]
        visible = [r for r in rows if can_all or caller.allowed(f"{rtype.full_type}/read", r.id)]
        body: dict[str, Any] = {"value": [self.render(rtype, r, api_version) for r in visible]}
        if more:
            body["nextLink"] = next_link(self.cp.settings.base_url, base_path, api_version, rows[-1].id_key, top)
        return Reply(200, body)

    def render(self, rtype: ResourceType, resource: Resource, api_version: str) -> dict[str, Any]:
        properties = rtype.behaviour.render_properties(resource, api_version, self.cp)
        properties["provisioningState"] = resource.provisioning_state
        body: dict[str, Any] = {
            "id": resource.id,
            "name": resource.name,
            "type": rtype.full_type,
            "location": resource.location,
            "tags": resource.tags or {},
        }
        if resource.identity is not None:
            body["identity"] = resource.identity
        if resource.kind:
            body["kind"] = resource.kind
        body["systemData"] = {
            "createdBy": resource.created_by,
            "createdByType": resource.created_by_type,
            "createdAt": isoformat(resource.created_at),
            "lastModifiedBy": resource.changed_by,
            "lastModifiedByType": resource.changed_by_type,
            "lastModifiedAt": isoformat(resource.changed_at),
        }
        body["properties"] = properties
        return body

    # ---- writes ------------------------------------------------------------------------------------------------

    async def _check_writable(self, rtype: ResourceType, rid: ResourceId) -> None:
        if not rtype.name_pattern.match(rid.name):
            raise InvalidResourceName(f"The {rtype.display} name '{rid.name}' is invalid. {rtype.name_rule}")
        await self.cp.directory.subscription(rid.subscription_id)
        state = await self.cp.directory.registration_state(rid.subscription_id, rtype.namespace)
        if state not in ("Registered", "Registering"):
            raise Conflict(
                f"The subscription is not registered to use namespace '{rtype.namespace}'. Register it with "
                f"'halyard provider register -n {rtype.namespace}'.",
                code="MissingSubscriptionRegistration",
            )
        await self.cp.directory.group(rid.subscription_id, rid.resource_group)

    async def put(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        rid: ResourceId,
        api_version: str,
        body: BaseModel,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> Reply:
        caller.require(f"{rtype.full_type}/write", str(rid))
        await self._check_writable(rtype, rid)
        now = self.cp.clock.now()
        async with self.cp.db.transaction() as session:
            await self._lock_in_live_group(session, rid)
            existing = await session.get(Resource, rid.key)
            _preconditions(existing, if_match, if_none_match)
            if existing is not None and existing.provisioning_state == "Deleting":
                raise Conflict(f"The {rtype.display} '{rid.name}' is being deleted.", code="ResourceBeingDeleted")
            desired = rtype.behaviour.desired(body, existing, api_version, self.cp)
            location = self._location(rtype, desired.location)
            if existing is not None and existing.location and location != existing.location:
                raise InvalidRequest(
                    f"The location of {rtype.display} '{rid.name}' cannot change from '{existing.location}' "
                    f"to '{location}'.",
                    code="InvalidResourceLocation",
                )
            resource = existing or Resource(
                id_key=rid.key,
                id=str(rid),
                subscription_id=rid.subscription_id.lower(),
                group_key=rid.resource_group.lower(),
                type_key=rtype.key,
                type=rtype.full_type,
                name=rid.name,
                created_at=now,
                created_by=caller.caller.app_id,
                created_by_type=principal_type(caller),
            )
            resource.location = location
            resource.tags = desired.tags
            resource.properties = desired.properties
            resource.identity = desired.identity
            resource.kind = desired.kind
            if desired.sealed is not None:
                resource.sealed = self.cp.sealer.seal_json(desired.sealed)
            resource.provisioning_state = "Accepted"
            resource.etag = new_etag()
            resource.changed_at = now
            resource.changed_by = caller.caller.app_id
            resource.changed_by_type = principal_type(caller)
            if existing is None:
                session.add(resource)
            op = self.cp.operations.create(
                session,
                subscription_id=rid.subscription_id.lower(),
                namespace=rtype.namespace,
                location=location or "global",
                action="resource/put",
                target_id=resource.id,
            )
        self.cp.operations.kick()
        headers = self.cp.operations.headers(op, self.cp.settings.base_url, api_version, location=False, async_op=True)
        headers["ETag"] = resource.etag
        return Reply(201 if existing is None else 200, self.render(rtype, resource, api_version), headers)

    async def patch(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        rid: ResourceId,
        api_version: str,
        body: BaseModel,
        *,
        if_match: str | None,
    ) -> Reply:
        caller.require(f"{rtype.full_type}/write", str(rid))
        await self._check_writable(rtype, rid)
        now = self.cp.clock.now()
        synchronous = api_version in rtype.sync_patch_versions
        async with self.cp.db.transaction() as session:
            await self._lock_in_live_group(session, rid)
            existing = await session.get(Resource, rid.key)
            if existing is None:
                raise NotFound(
                    f"The Resource '{rtype.full_type}/{rid.name}' under resource group '{rid.resource_group}' "
                    "was not found."
                )
            _preconditions(existing, if_match, None)
            if existing.provisioning_state == "Deleting":
                raise Conflict(f"The {rtype.display} '{rid.name}' is being deleted.", code="ResourceBeingDeleted")
            desired = rtype.behaviour.patched(body, existing, api_version, self.cp)
            existing.tags = desired.tags
            existing.properties = desired.properties
            if desired.sealed is not None:
                existing.sealed = self.cp.sealer.seal_json(desired.sealed)
            existing.etag = new_etag()
            existing.changed_at = now
            existing.changed_by = caller.caller.app_id
            existing.changed_by_type = principal_type(caller)
            op: Operation | None = None
            if not synchronous:
                existing.provisioning_state = "Updating"
                op = self.cp.operations.create(
                    session,
                    subscription_id=rid.subscription_id.lower(),
                    namespace=rtype.namespace,
                    location=existing.location or "global",
                    action="resource/patch",
                    target_id=existing.id,
                )
        if op is None:
            return Reply(200, self.render(rtype, existing, api_version), {"ETag": existing.etag})
        self.cp.operations.kick()
        headers = self.cp.operations.headers(op, self.cp.settings.base_url, api_version, location=True, async_op=True)
        return Reply(202, None, headers)

    async def delete(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        rid: ResourceId,
        api_version: str,
        *,
        if_match: str | None,
    ) -> Reply:
        caller.require(f"{rtype.full_type}/delete", str(rid))
        await self.cp.directory.group(rid.subscription_id, rid.resource_group)
        async with self.cp.db.transaction() as session:
            await self.cp.db.lock(session, rid.key)
            existing = await session.get(Resource, rid.key)
            if existing is None:
                return Reply(204, None)
            _preconditions(existing, if_match, None)
            existing.provisioning_state = "Deleting"
            existing.changed_at = self.cp.clock.now()
            op = self.cp.operations.create(
                session,
                subscription_id=rid.subscription_id.lower(),
                namespace=rtype.namespace,
                location=existing.location or "global",
                action="resource/delete",
                target_id=existing.id,
            )
        self.cp.operations.kick()
        return Reply(
            202,
            None,
            self.cp.operations.headers(op, self.cp.settings.base_url, api_version, location=True, async_op=True),
        )

    async def _lock_in_live_group(self, session: AsyncSession, rid: ResourceId) -> None:
        """Within a write's transaction: take the resource's lock, and check its group still exists and is not being
        deleted, holding the group row (FOR SHARE on PostgreSQL) so a group deletion cannot start until this write
        has committed and is then seen by it. Otherwise a resource written during a group deletion outlives it."""
        await self.cp.db.lock(session, rid.key)
        group = await session.get(
            ResourceGroup,
            (rid.subscription_id.lower(), rid.resource_group.lower()),
            with_for_update={"read": True},
        )
        if group is None:
            raise ResourceGroupNotFound(f"Resource group '{rid.resource_group}' could not be found.")
        if group.provisioning_state == "Deleting":
            raise Conflict(
                f"Resource group '{group.name}' is being deleted; no resource can be written in it.",
                code="ResourceGroupBeingDeleted",
            )

    def _location(self, rtype: ResourceType, location: str | None) -> str | None:
        if not location:
            if rtype.requires_location:
                raise InvalidRequest("The 'location' property is required.", code="LocationRequired")
            return None
        normalized = normalize_location(location)
        allowed = [normalize_location(x) for x in (rtype.locations or self.cp.settings.locations)]
        if normalized not in allowed:
            raise InvalidRequest(
                f"The provided location '{location}' is not available for resource type '{rtype.full_type}'. "
                f"List of available regions for the resource type is '{','.join(allowed)}'.",
                code="LocationNotAvailableForResourceType",
            )
        return normalized

    # ---- operation handlers ------------------------------------------------------------------------------------

    async def _provision(self, op: Operation) -> None:
        rid = ResourceId.parse(op.target_id)
        rtype = self.cp.types.get(rid.full_type)
        if rtype is None:
            raise HalyardError(f"Unknown resource type {rid.full_type}.")
        async with self.cp.db.transaction() as session:
            resource = await session.get(Resource, rid.key)
            if resource is None or resource.provisioning_state == "Deleting":
                raise Conflict("The resource was deleted before it was provisioned.", code="Canceled")
            resource.provisioning_state = "Provisioning" if op.action == "resource/put" else "Updating"
        try:
            await rtype.behaviour.provision(op.target_id, self.cp)
        except HalyardError:
            await self._set_state(rid, "Failed")
            raise
        except Exception:
            # The worker retries an unexpected error until its last attempt, then fails the operation: the
            # resource fails with it rather than staying Provisioning for ever.
            if op.attempts >= MAX_ATTEMPTS:
                await self._set_state(rid, "Failed")
            raise
        await self._set_state(rid, "Succeeded")

    async def _set_state(self, rid: ResourceId, state: str) -> None:
        async with self.cp.db.transaction() as session:
            resource = await session.get(Resource, rid.key)
            if resource is not None and resource.provisioning_state != "Deleting":
                resource.provisioning_state = state

    async def _delete_op(self, op: Operation) -> None:
        await self.delete_now(op.target_id)

    async def delete_now(self, resource_id: str) -> None:
        """Deprovision and remove one resource (used by DELETE and by resource-group deletion); idempotent."""
        rid = ResourceId.parse(resource_id)
        rtype = self.cp.types.get(rid.full_type)
        async with self.cp.db.session() as session:
            resource = await session.get(Resource, rid.key)
        if resource is None:
            return
        if rtype is not None:
            await rtype.behaviour.deprovision(resource, self.cp)
        async with self.cp.db.transaction() as session:
            resource = await session.get(Resource, rid.key)
            if resource is not None:
                await session.delete(resource)


def _preconditions(existing: Resource | None, if_match: str | None, if_none_match: str | None) -> None:
    if if_match:
        if existing is None:
            raise PreconditionFailed("The resource does not exist, so If-Match cannot be satisfied.")
        if if_match.strip() != "*" and if_match.strip() not in {t.strip() for t in existing.etag.split(",")}:
            if _unquote(if_match) != _unquote(existing.etag):
                raise PreconditionFailed("The ETag in If-Match does not match the resource's current ETag.")
    if if_none_match:
        if if_none_match.strip() == "*" and existing is not None:
            raise PreconditionFailed("The resource already exists and If-None-Match is '*'.")
        if existing is not None and _unquote(if_none_match) == _unquote(existing.etag):
            raise PreconditionFailed("The resource's ETag matches If-None-Match.")


def _unquote(etag: str) -> str:
    etag = etag.strip()
    if etag.startswith("W/"):
        etag = etag[2:]
    return etag.strip('"')
