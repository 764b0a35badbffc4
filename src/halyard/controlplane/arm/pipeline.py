"""The one ARM resource pipeline: validate → authorize → persist → async operation, for every resource type.

Where a resource lives (tenant, subscription, group, under a parent resource) comes from its type's declaration;
the pipeline checks what that implies (the group exists and is not being deleted, the parent exists and is not
being deleted), lists by container and deletes a resource's children and extensions with it.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from sqlalchemy import bindparam, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.activity.events import actor_of, record_request
from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.operations import MAX_ATTEMPTS, Operations, Pending
from halyard.controlplane.arm.ordering import parse_orderby
from halyard.controlplane.arm.paging import decode_skip_token, next_link
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    RenderContext,
    ResourceType,
    ResourceTypes,
    WriteContext,
    normalize_location,
)
from halyard.controlplane.arm.tags import check_tags
from halyard.controlplane.arm.visibility import permitted
from halyard.controlplane.directory import Directory, new_etag
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import (
    Conflict,
    HalyardError,
    InvalidRequest,
    InvalidResourceName,
    NotFound,
    PreconditionFailed,
    ResourceGroupNotFound,
)
from halyard.core.sealing import Sealer
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Operation, Resource, ResourceGroup, ResourceReport

Reported = dict[str, Any]
log = logging.getLogger("halyard.pipeline")


@dataclass
class Reply:
    status: int
    body: dict[str, Any] | None
    headers: dict[str, str] = field(default_factory=dict)


def principal_type(caller: AuthorizedCaller) -> str:
    if caller.caller.kind == "User":
        return "User"
    return "Application" if caller.caller.kind == "ServicePrincipal" else "ManagedIdentity"


def principal_name(caller: AuthorizedCaller) -> str:
    """As ARM names a writer in systemData and the activity log: a user by sign-in name, others by app id."""
    return caller.caller.user_name or caller.caller.app_id


def merge_reports(reports: Iterable[ResourceReport]) -> Reported:
    """One resource's reports as one mapping; each reporter owns its keys, applied in reporter order."""
    merged: Reported = {}
    for report in sorted(reports, key=lambda r: r.reporter):
        merged.update(report.properties or {})
    return merged


class Pipeline:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        settings: Settings,
        sealer: Sealer,
        directory: Directory,
        operations: Operations,
        types: ResourceTypes,
    ) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._sealer = sealer
        self._directory = directory
        self._operations = operations
        self._types = types
        operations.handle("resource/put", self._provision)
        operations.handle("resource/patch", self._provision)
        operations.handle("resource/delete", self._delete_op)
        operations.handle("resource/force-delete", self._delete_op)

    # ---- reads -------------------------------------------------------------------------------------------------

    async def get(self, caller: AuthorizedCaller, rtype: ResourceType, rid: ResourceId, api_version: str) -> Reply:
        caller.require(rtype.action("read"), str(rid))
        resource, reported = await self.load(rtype, rid)
        return Reply(200, self.render(rtype, resource, reported, api_version), {"ETag": resource.etag})

    async def load(self, rtype: ResourceType, rid: ResourceId) -> tuple[Resource, Reported]:
        """The resource with its reports (one query), or the ARM error naming what is missing."""
        async with self._db.session() as session:
            found = await _with_reports(session, rid.key)
        if found is None:
            # Only a miss pays for telling a missing group, subscription or parent from a missing resource: a
            # resource row exists only inside an existing group and parent, which delete what they hold first.
            await self._container_exists(rid)
            raise NotFound(f"The Resource '{_described(rid)}' {_where(rid)}was not found.")
        return found

    async def _container_exists(self, rid: ResourceId) -> None:
        if rid.subscription_id is not None:
            if rid.resource_group is not None:
                await self._directory.group(rid.subscription_id, rid.resource_group)
            else:
                await self._directory.subscription(rid.subscription_id)
        parent = rid.parent
        if parent is not None:
            await self._exists(parent)

    async def _exists(self, parent: ResourceId) -> None:
        """A parent resource (and its own container) exists, or the error naming what is missing."""
        async with self._db.session() as session:
            found = await session.get(Resource, parent.key) is not None
        if not found:
            await self._container_exists(parent)
            raise NotFound(
                f"The parent resource '{_described(parent)}' {_where(parent)}was not found.",
                code="ParentResourceNotFound",
            )

    async def list(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        api_version: str,
        *,
        subscription_id: str | None,
        group: str | None,
        parent: ResourceId | None,
        skip_token: str | None,
        top: int | None,
        base_path: str,
        filter_: str | None = None,
        orderby: str | None = None,
    ) -> Reply:
        """One page of a type's resources in a container: a parent resource, a group, a subscription or the tenant;
        with ``filter_``, those the type's ``list_filter`` selects (in the query: a page costs the same); with
        ``orderby``, sorted by one of the type's ``list_order`` fields over the whole list (``arm/ordering.py``)."""
        read = rtype.action("read")
        if parent is not None:
            scope = str(parent)
        elif subscription_id is not None:
            scope = f"/subscriptions/{subscription_id}" + (f"/resourceGroups/{group}" if group else "")
        else:
            scope = "/"
        # Authorized before anything is looked up: an outsider learns nothing of what exists (403 alike).
        caller.require_at_or_below(read, scope)
        query = select(Resource).where(Resource.type_key == rtype.key)
        # Only what the caller may read, chosen in the query: a caller with rights on some groups gets full pages of
        # theirs (a page filtered after it was read could come back empty, with a nextLink, however many they own).
        readable = permitted(caller, read, scope)
        if readable is not None:
            query = query.where(readable)
        if parent is not None:
            await self._exists(parent)
            query = query.where(Resource.parent_key == parent.key)
        elif subscription_id is not None:
            if group:
                await self._directory.group(subscription_id, group)
                query = query.where(Resource.group_key == group.lower())
            else:
                await self._directory.subscription(subscription_id)
            query = query.where(Resource.subscription_id == subscription_id.lower())
        if filter_:
            if rtype.list_filter is None:
                raise InvalidRequest(
                    f"The {rtype.display} list takes no $filter.", code="InvalidFilterInQueryString", target="$filter"
                )
            query = query.where(rtype.list_filter(filter_, self._render_context(api_version)))
        page = min(top or self._settings.page_size, self._settings.page_size)
        after = decode_skip_token(skip_token)
        order = None
        if orderby:
            if rtype.list_order is None:
                raise InvalidRequest(
                    f"The {rtype.display} list takes no $orderby.",
                    code="InvalidOrderByInQueryString",
                    target="$orderby",
                )
            order = parse_orderby(orderby, rtype.list_order, self._render_context(api_version))
            query = order.apply(query, after)
        elif after:
            query = query.where(Resource.id_key > after)
        # The query chose only readable rows; each is checked again, as every read is.
        can_all = caller.allowed(read, scope)
        async with self._db.session() as session:
            ordered = query if order is not None else query.order_by(Resource.id_key)
            rows = list((await session.scalars(ordered.limit(page + 1))).all())
            more = len(rows) > page
            rows = rows[:page]
            visible = [r for r in rows if can_all or caller.allowed(read, r.id)]
            reports = await _reports(session, [r.id_key for r in visible])
            last = (await order.last_key(session, rows[-1].id_key) if order else rows[-1].id_key) if more else ""
        body: dict[str, Any] = {
            "value": [self.render(rtype, r, reports.get(r.id_key, {}), api_version) for r in visible]
        }
        if more:
            body["nextLink"] = next_link(self._settings.base_url, base_path, api_version, last, top, filter_, orderby)
        return Reply(200, body)

    def _render_context(self, api_version: str) -> RenderContext:
        return RenderContext(now=self._clock.now(), settings=self._settings, api_version=api_version)

    def render(self, rtype: ResourceType, resource: Resource, reported: Reported, api_version: str) -> dict[str, Any]:
        ctx = self._render_context(api_version)
        properties = rtype.behaviour.render_properties(resource, reported, ctx)
        properties["provisioningState"] = rtype.behaviour.provisioning_state(resource, reported)
        body: dict[str, Any] = {"id": resource.id, "name": resource.name, "type": rtype.full_type}
        if rtype.requires_location or resource.location:
            body["location"] = resource.location
        body["tags"] = resource.tags or {}
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

    async def render_stored(self, rtype: ResourceType, rid: ResourceId, api_version: str) -> dict[str, Any] | None:
        """The resource as a GET would answer it, or None if it is gone (operation results)."""
        async with self._db.session() as session:
            found = await _with_reports(session, rid.key)
        if found is None:
            return None
        resource, reported = found
        return self.render(rtype, resource, reported, api_version)

    # ---- writes ------------------------------------------------------------------------------------------------

    async def _check_writable(self, rtype: ResourceType, rid: ResourceId) -> None:
        if not rtype.name_pattern.match(rid.name):
            raise InvalidResourceName(f"The {rtype.display} name '{rid.name}' is invalid. {rtype.name_rule}")
        if rid.subscription_id is None:
            return
        await self._directory.subscription(rid.subscription_id)
        state = await self._directory.registration_state(rid.subscription_id, rtype.namespace)
        if state not in ("Registered", "Registering"):
            raise Conflict(
                f"The subscription is not registered to use namespace '{rtype.namespace}'. Register it with "
                f"'halyard provider register -n {rtype.namespace}'.",
                code="MissingSubscriptionRegistration",
            )
        if rid.resource_group is not None:
            await self._directory.group(rid.subscription_id, rid.resource_group)

    def _context(
        self,
        session: AsyncSession,
        rid: ResourceId,
        api_version: str,
        caller: AuthorizedCaller | None,
        *,
        force: bool = False,
    ) -> WriteContext:
        return WriteContext(
            session=session,
            now=self._clock.now(),
            settings=self._settings,
            api_version=api_version,
            resource_id=rid,
            caller=caller,
            force=force,
        )

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
        caller.require(rtype.action("write"), str(rid))
        await self._check_writable(rtype, rid)
        async with self._failure_recorded(caller, rtype.action("write"), rid, "PUT"):
            return await self._put(caller, rtype, rid, api_version, body, if_match, if_none_match)

    async def _put(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        rid: ResourceId,
        api_version: str,
        body: BaseModel,
        if_match: str | None,
        if_none_match: str | None,
    ) -> Reply:
        async with self._db.transaction() as session:
            await self._lock_in_live_container(session, rid)
            ctx = self._context(session, rid, api_version, caller)
            existing = await session.get(Resource, rid.key)
            _preconditions(existing, if_match, if_none_match)
            if existing is not None and existing.provisioning_state == "Deleting":
                raise Conflict(f"The {rtype.display} '{rid.name}' is being deleted.", code="ResourceBeingDeleted")
            desired = _checked(await rtype.behaviour.desired(body, existing, ctx))
            location = self._location(rtype, desired.location)
            if existing is not None and existing.location and location != existing.location:
                raise InvalidRequest(
                    f"The location of {rtype.display} '{rid.name}' cannot change from '{existing.location}' "
                    f"to '{location}'.",
                    code="InvalidResourceLocation",
                )
            parent = rid.parent
            resource = existing or Resource(
                id_key=rid.key,
                id=str(rid),
                subscription_id=rid.subscription_id.lower() if rid.subscription_id else None,
                group_key=(rid.resource_group or "").lower(),
                parent_key=parent.key if parent is not None else None,
                type_key=rtype.key,
                type=rtype.full_type,
                name=rid.name,
                created_at=ctx.now,
                created_by=principal_name(caller),
                created_by_type=principal_type(caller),
            )
            resource.location = location
            resource.tags = desired.tags
            resource.properties = desired.properties
            resource.identity = desired.identity
            resource.kind = desired.kind
            if desired.sealed is not None:
                resource.sealed = self._sealer.seal_json(desired.sealed)
            resource.provisioning_state = "Accepted"
            resource.etag = new_etag()
            resource.changed_at = ctx.now
            resource.changed_by = principal_name(caller)
            resource.changed_by_type = principal_type(caller)
            if existing is None:
                session.add(resource)
            op = self._operation(
                session, rtype, rid, location, "resource/put", caller, "PUT", 201 if existing is None else 200
            )
            reported = (await _reports(session, [rid.key])).get(rid.key, {}) if existing is not None else {}
        self._operations.kick()
        headers = self._operations.headers(op, self._settings.base_url, api_version, location=False, async_op=True)
        headers["ETag"] = resource.etag
        return Reply(201 if existing is None else 200, self.render(rtype, resource, reported, api_version), headers)

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
        caller.require(rtype.action("write"), str(rid))
        await self._check_writable(rtype, rid)
        async with self._failure_recorded(caller, rtype.action("write"), rid, "PATCH"):
            return await self._patch(caller, rtype, rid, api_version, body, if_match)

    async def _patch(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        rid: ResourceId,
        api_version: str,
        body: BaseModel,
        if_match: str | None,
    ) -> Reply:
        synchronous = api_version in rtype.sync_patch_versions
        async with self._db.transaction() as session:
            await self._lock_in_live_container(session, rid)
            ctx = self._context(session, rid, api_version, caller)
            existing = await session.get(Resource, rid.key)
            if existing is None:
                raise NotFound(f"The Resource '{_described(rid)}' {_where(rid)}was not found.")
            _preconditions(existing, if_match, None)
            if existing.provisioning_state == "Deleting":
                raise Conflict(f"The {rtype.display} '{rid.name}' is being deleted.", code="ResourceBeingDeleted")
            desired = _checked(await rtype.behaviour.patched(body, existing, ctx))
            existing.tags = desired.tags
            existing.properties = desired.properties
            if desired.sealed is not None:
                existing.sealed = self._sealer.seal_json(desired.sealed)
            existing.etag = new_etag()
            existing.changed_at = ctx.now
            existing.changed_by = principal_name(caller)
            existing.changed_by_type = principal_type(caller)
            op: Operation | None = None
            if not synchronous:
                existing.provisioning_state = "Updating"
                op = self._operation(session, rtype, rid, existing.location, "resource/patch", caller, "PATCH", 202)
            else:  # done as answered: the activity log has it now, started and succeeded
                record_request(
                    session, at=ctx.now, actor=actor_of(caller.caller), resource_id=str(rid),
                    operation_name=rtype.action("write"), http_method="PATCH", status_code=200,
                )  # fmt: skip
            reported = (await _reports(session, [rid.key])).get(rid.key, {})
        if op is None:
            return Reply(200, self.render(rtype, existing, reported, api_version), {"ETag": existing.etag})
        self._operations.kick()
        headers = self._operations.headers(op, self._settings.base_url, api_version, location=True, async_op=True)
        return Reply(202, None, headers)

    async def delete(
        self,
        caller: AuthorizedCaller,
        rtype: ResourceType,
        rid: ResourceId,
        api_version: str,
        *,
        if_match: str | None,
        force: bool = False,
    ) -> Reply:
        caller.require(rtype.action("delete"), str(rid))
        if force and not rtype.force_delete:
            raise InvalidRequest(
                f"A {rtype.display} cannot be force-deleted.", code="ForceDeleteNotSupported", target="forceDelete"
            )
        async with (
            self._failure_recorded(caller, rtype.action("delete"), rid, "DELETE"),
            self._db.transaction() as session,
        ):
            await self._db.lock(session, rid.key)
            existing = await session.get(Resource, rid.key)
            if existing is None:
                await self._container_exists(rid)
                return Reply(204, None)  # nothing changed: nothing in the activity log
            _preconditions(existing, if_match, None)
            if existing.provisioning_state != "Deleting":
                await rtype.behaviour.check_delete(
                    existing, self._context(session, rid, api_version, caller, force=force)
                )
            existing.provisioning_state = "Deleting"
            existing.changed_at = self._clock.now()
            action = "resource/force-delete" if force else "resource/delete"
            op = self._operation(session, rtype, rid, existing.location, action, caller, "DELETE", 202)
        self._operations.kick()
        return Reply(
            202,
            None,
            self._operations.headers(op, self._settings.base_url, api_version, location=True, async_op=True),
        )

    def _operation(
        self,
        session: AsyncSession,
        rtype: ResourceType,
        rid: ResourceId,
        location: str | None,
        action: str,
        caller: AuthorizedCaller,
        http_method: str,
        status_code: int,
    ) -> Operation:
        return self._operations.create(
            session,
            subscription_id=(rid.subscription_id or "").lower(),
            namespace=rtype.namespace,
            location=location or "global",
            action=action,
            target_id=str(rid),
            actor=actor_of(caller.caller),
            operation_name=rtype.action("delete" if http_method == "DELETE" else "write"),
            http_method=http_method,
            status_code=status_code,
        )

    @asynccontextmanager
    async def _failure_recorded(
        self, caller: AuthorizedCaller, operation_name: str, rid: ResourceId, http_method: str
    ) -> AsyncIterator[None]:
        """A write refused after its caller was authorised and its container found (a precondition, a conflict, a
        behaviour's 400) is in the activity log as Failed, in a transaction of its own (the write's rolled back).
        Refusals before that (403, a missing group: nothing there to log against) are not recorded."""
        try:
            yield
        except HalyardError as exc:
            if exc.status == 404 or rid.subscription_id is None:
                raise
            try:
                async with self._db.transaction() as session:
                    record_request(
                        session, at=self._clock.now(), actor=actor_of(caller.caller), resource_id=str(rid),
                        operation_name=operation_name, http_method=http_method, status_code=exc.status,
                        error=exc.body()["error"],
                    )  # fmt: skip
            except Exception as failed:  # the client is owed the refusal it earned, not the log's trouble
                log.error("activity event not written", extra={"error": type(failed).__name__})
            raise

    async def _lock_in_live_container(self, session: AsyncSession, rid: ResourceId) -> None:
        """Within a write's transaction: take the resource's lock, and check that its group and its parent still
        exist and are not being deleted, holding their rows (FOR SHARE on PostgreSQL) so that their deletion cannot
        start until this write has committed, and then sees it. Otherwise a resource written during the deletion of
        its group or parent outlives it."""
        await self._db.lock(session, rid.key)
        if rid.subscription_id is not None and rid.resource_group is not None:
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
        parent = rid.parent
        if parent is not None:
            row = await session.get(Resource, parent.key, with_for_update={"read": True})
            if row is None:
                raise NotFound(
                    f"The parent resource '{_described(parent)}' {_where(parent)}was not found.",
                    code="ParentResourceNotFound",
                )
            if row.provisioning_state == "Deleting":
                raise Conflict(
                    f"The parent resource '{row.id}' is being deleted; nothing can be written under it.",
                    code="ParentResourceBeingDeleted",
                )

    def _location(self, rtype: ResourceType, location: str | None) -> str | None:
        if not location:
            if rtype.requires_location:
                raise InvalidRequest("The 'location' property is required.", code="LocationRequired")
            return None
        normalized = normalize_location(location)
        allowed = [normalize_location(x) for x in (rtype.locations or self._settings.locations)]
        if normalized not in allowed:
            raise InvalidRequest(
                f"The provided location '{location}' is not available for resource type '{rtype.full_type}'. "
                f"List of available regions for the resource type is '{','.join(allowed)}'.",
                code="LocationNotAvailableForResourceType",
            )
        return normalized

    # ---- operation handlers ------------------------------------------------------------------------------------

    def _type_of(self, rid: ResourceId) -> ResourceType:
        rtype = self._types.get(rid.full_type)
        if rtype is None:
            raise HalyardError(f"Unknown resource type {rid.full_type}.")
        return rtype

    async def _provision(self, op: Operation) -> None:
        rid = ResourceId.parse(op.target_id)
        rtype = self._type_of(rid)
        state = "Provisioning" if op.action == "resource/put" else "Updating"
        async with self._db.transaction() as session:
            resource = await session.get(Resource, rid.key)
            if resource is None or resource.provisioning_state == "Deleting":
                raise Conflict("The resource was deleted before it was provisioned.", code="Canceled")
            if resource.provisioning_state != state:  # a waiting operation's retries write nothing (no wake-ups)
                resource.provisioning_state = state
        try:
            async with self._db.transaction() as session:
                await self._db.lock(session, rid.key)
                resource = await session.get(Resource, rid.key)
                if resource is None or resource.provisioning_state == "Deleting":
                    raise Conflict("The resource was deleted before it was provisioned.", code="Canceled")
                await rtype.behaviour.provision(resource, self._context(session, rid, "", None))
                resource.provisioning_state = "Succeeded"
        except Pending:
            raise  # the operation runs again later; the resource stays Provisioning/Updating
        except HalyardError:
            await self._set_state(rid, "Failed")
            raise
        except Exception:
            # The worker retries an unexpected error until its last attempt, then fails the operation: the
            # resource fails with it rather than staying Provisioning for ever.
            if op.attempts >= MAX_ATTEMPTS:
                await self._set_state(rid, "Failed")
            raise

    async def _set_state(self, rid: ResourceId, state: str) -> None:
        async with self._db.transaction() as session:
            resource = await session.get(Resource, rid.key)
            if resource is not None and resource.provisioning_state != "Deleting":
                resource.provisioning_state = state

    async def _delete_op(self, op: Operation) -> None:
        await self.delete_now(op.target_id, force=op.action == "resource/force-delete")

    async def delete_now(self, resource_id: str, *, force: bool = False) -> None:
        """Deprovision and remove one resource with everything under it (its children and extensions, deepest
        first); used by DELETE and by resource-group deletion. Idempotent and resumable: a behaviour waiting on a
        cluster raises ``Pending`` and the deletion resumes where it was. What goes with its parent is forced: the
        parent's own deletion (a cluster's identity revoked) means nothing below it will report again."""
        rid = ResourceId.parse(resource_id)
        async with self._db.transaction() as session:
            # Marked first, under the row's lock: from now on no child can be written under it.
            await self._db.lock(session, rid.key)
            resource = await session.get(Resource, rid.key)
            if resource is None:
                return
            resource.provisioning_state = "Deleting"
        while True:
            async with self._db.session() as session:
                children: Sequence[str] = (
                    await session.scalars(select(Resource.id).where(Resource.parent_key == rid.key).limit(100))
                ).all()
            if not children:
                break
            for child in children:
                await self.delete_now(child, force=True)
        rtype = self._types.get(rid.full_type)
        async with self._db.transaction() as session:
            await self._db.lock(session, rid.key)
            row = await session.get(Resource, rid.key)
            if row is None:
                return
            if rtype is not None:
                await rtype.behaviour.deprovision(row, self._context(session, rid, "", None, force=force))
            await session.delete(row)
            await session.execute(delete(ResourceReport).where(ResourceReport.id_key == rid.key))


async def _reports(session: AsyncSession, keys: list[str]) -> dict[str, Reported]:
    if not keys:
        return {}
    rows = (await session.scalars(select(ResourceReport).where(ResourceReport.id_key.in_(keys)))).all()
    by_key: dict[str, list[ResourceReport]] = {}
    for row in rows:
        by_key.setdefault(row.id_key, []).append(row)
    return {key: merge_reports(reports) for key, reports in by_key.items()}


# Built once: a GET's statement costs no construction, and SQLAlchemy keeps its cache key on the object (built per
# call, the select and its IN clause were ~5 % of a GET's CPU; docs/benchmarks.md, "Where a GET's CPU goes").
_WITH_REPORTS = (
    select(Resource, ResourceReport)
    .outerjoin(ResourceReport, ResourceReport.id_key == Resource.id_key)
    .where(Resource.id_key == bindparam("key"))
)


async def _with_reports(session: AsyncSession, key: str) -> tuple[Resource, Reported] | None:
    """A resource and its reports in one query (an outer join: a resource has a report per reporter, or none)."""
    rows = (await session.execute(_WITH_REPORTS, {"key": key})).all()
    if not rows:
        return None
    return rows[0][0], merge_reports(report for _, report in rows if report is not None)


def _checked(desired: Desired) -> Desired:
    """ARM's tag rules for every type, whatever its models declare (``arm/tags.py``)."""
    try:
        check_tags(desired.tags)
    except ValueError as exc:
        raise InvalidRequest(f"The tags are not valid: {exc}.", code="InvalidTags", target="tags") from None
    return desired


def _described(rid: ResourceId) -> str:
    chain = "/".join(f"{t}/{n}" for t, n in zip(rid.types[:-1], rid.names[:-1], strict=True))
    return f"{rid.namespace}/{chain + '/' if chain else ''}{rid.types[-1]}/{rid.name}"


def _where(rid: ResourceId) -> str:
    return f"under resource group '{rid.resource_group}' " if rid.resource_group is not None else ""


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
