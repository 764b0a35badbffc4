"""Who may do what: role definitions and assignments in the store, checked with the pure rules of ``rbac``."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from halyard.controlplane.arm import rbac
from halyard.controlplane.identity.people import groups_of
from halyard.controlplane.identity.tokens import Caller
from halyard.core.clock import Clock
from halyard.core.errors import (
    AuthorizationFailed,
    Conflict,
    InvalidAuthenticationToken,
    InvalidRequest,
    NotFound,
)
from halyard.store import Database
from halyard.store.models import Principal, RoleAssignment, RoleDefinition
from halyard.store.notify import Listener


@dataclass(frozen=True)
class AuthorizedCaller:
    caller: Caller
    assignments: tuple[rbac.Assignment, ...]
    # The object ids of the groups the caller is in now (read with the assignments: a removal counts at once).
    groups: tuple[str, ...] = ()

    def allowed(self, action: str, scope: str) -> bool:
        return rbac.is_allowed(self.assignments, action, scope)

    def require(self, action: str, scope: str) -> None:
        if not self.allowed(action, scope):
            raise AuthorizationFailed(
                f"The client '{self.caller.app_id}' with object id '{self.caller.object_id}' does not have "
                f"authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. "
                "If access was recently granted, please refresh your credentials."
            )

    def allowed_at_or_below(self, action: str, scope: str) -> bool:
        return rbac.allowed_at_or_below(self.assignments, action, scope)

    def require_at_or_below(self, action: str, scope: str) -> None:
        """For reads of containers (a subscription, its lists): a role anywhere inside is enough, as in ARM."""
        if not self.allowed_at_or_below(action, scope):
            self.require(action, scope)


# What a caller's access is read from: a commit touching any of them forgets every cached caller.
ACCESS_TABLES = ("role_assignments", "role_definitions", "principals", "group_members")
CHANNEL = "halyard_access"  # notified by the triggers of migrations 0003 and 0007 (PostgreSQL)
MAX_CACHED = 50_000


class Access:
    """Role assignments from the store, and each caller's kept per replica until anything they derive from changes.

    A GET spent about a third of its CPU re-reading its caller's assignments. They are cached per principal and
    forgotten at once when a role assignment, role definition or principal changes: this process's commits are
    seen as they happen, other replicas' through PostgreSQL ``NOTIFY`` on commit. A replica not listening (yet, or
    after losing its connection) serves from the store only, so a revocation is never served stale because a
    notification went missing.
    """

    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        # object id → (tenant, assignments, groups)
        self._cached: dict[str, tuple[str, tuple[rbac.Assignment, ...], tuple[str, ...]]] = {}
        self._generation = 0
        self._listener = None if db.is_sqlite else Listener(db.url, CHANNEL, self.invalidate)
        db.changes.on_commit(ACCESS_TABLES, self.invalidate)

    def invalidate(self) -> None:
        """Forget every cached caller (something they were read from changed)."""
        self._generation += 1
        self._cached.clear()

    async def watch(self) -> None:
        """Hear other replicas' changes, for ever (nothing to hear on SQLite: one server per file)."""
        if self._listener is not None:
            await self._listener.run_forever()

    @property
    def _cacheable(self) -> bool:
        return self._listener is None or self._listener.listening

    async def seed_builtin_roles(self) -> None:
        async with self._db.transaction() as session:
            for role in rbac.BUILTIN_ROLES:
                row = await session.get(RoleDefinition, role.id)
                if row is None:
                    session.add(
                        RoleDefinition(
                            id=role.id,
                            role_name=role.name,
                            description=role.description,
                            actions=list(role.actions),
                            not_actions=list(role.not_actions),
                            builtin=True,
                        )
                    )
                else:
                    row.actions, row.not_actions, row.description = (
                        list(role.actions),
                        list(role.not_actions),
                        role.description,
                    )

    async def resolve(self, caller: Caller) -> AuthorizedCaller:
        """The caller with its assignments. A principal deleted since its token was issued is refused here."""
        entry = self._cached.get(caller.object_id) if self._cacheable else None
        if entry is None:
            generation = self._generation
            async with self._db.session() as session:
                principal = await session.get(Principal, caller.object_id)
                if principal is None:
                    raise InvalidAuthenticationToken("The principal of this access token no longer exists.")
                # A principal holds its own assignments and those of every group it is in (users and groups).
                groups = await groups_of(session, caller.object_id)
                rows = (
                    await session.execute(
                        select(RoleAssignment.scope, RoleDefinition)
                        .join(RoleDefinition, RoleDefinition.id == RoleAssignment.role_definition_id)
                        .where(RoleAssignment.principal_id.in_([caller.object_id, *groups]))
                    )
                ).all()
            entry = (
                principal.tenant_id,
                tuple(rbac.Assignment(scope, role_of(defn)) for scope, defn in rows),
                groups,
            )
            # Kept only if nothing changed while it was read (else it may predate the change).
            if self._cacheable and generation == self._generation:
                if len(self._cached) >= MAX_CACHED:
                    self._cached.clear()
                self._cached[caller.object_id] = entry
        tenant_id, assignments, groups = entry
        if tenant_id != caller.tenant_id:
            raise InvalidAuthenticationToken("The principal of this access token no longer exists.")
        return AuthorizedCaller(caller, assignments, groups)

    async def principal_assignments(
        self, object_id: str, group_ids: Sequence[str]
    ) -> tuple[Principal | None, tuple[rbac.Assignment, ...]]:
        """The principal ``object_id`` (None if it does not exist) and the assignments to it or to any of
        ``group_ids``, read from the store (the access check's callers cache decisions, not assignments)."""
        ids = [object_id, *group_ids]
        async with self._db.session() as session:
            principal = await session.get(Principal, object_id)
            if principal is None:
                return None, ()
            rows = (
                await session.execute(
                    select(RoleAssignment.scope, RoleDefinition)
                    .join(RoleDefinition, RoleDefinition.id == RoleAssignment.role_definition_id)
                    .where(RoleAssignment.principal_id.in_(ids))
                )
            ).all()
        return principal, tuple(rbac.Assignment(scope, role_of(defn)) for scope, defn in rows)

    async def role_definitions(self) -> list[RoleDefinition]:
        async with self._db.session() as session:
            return list((await session.scalars(select(RoleDefinition).order_by(RoleDefinition.role_name))).all())

    async def find_role(self, name_or_id: str) -> RoleDefinition:
        key = name_or_id.rstrip("/").split("/")[-1]
        async with self._db.session() as session:
            row = await session.get(RoleDefinition, key)
            if row is None:
                row = await session.scalar(select(RoleDefinition).where(RoleDefinition.role_name.ilike(name_or_id)))
        if row is None:
            raise NotFound(f"Role definition '{name_or_id}' does not exist.", code="RoleDefinitionDoesNotExist")
        return row

    async def assign(
        self, *, scope: str, role_id: str, principal_id: str, assignment_id: str | None = None
    ) -> RoleAssignment:
        scope = "/" + scope.strip("/")
        scope_key = rbac.normalize_scope(scope)
        # An assignment's scope, role and principal never change, as in ARM: a PUT reusing a name with other values
        # is a conflict (it was an IntegrityError, a 500, when the name was someone else's assignment elsewhere).
        taken = Conflict(
            f"The role assignment '{assignment_id}' already exists with another scope, role or principal; those "
            "cannot be updated. Delete it first, or use a new name.",
            code="RoleAssignmentUpdateNotPermitted",
        )
        try:
            async with self._db.transaction() as session:
                if await session.get(Principal, principal_id) is None:
                    raise InvalidRequest(f"Principal '{principal_id}' does not exist.", code="PrincipalNotFound")
                if assignment_id:
                    named = await session.get(RoleAssignment, assignment_id)
                    if named is not None:
                        same = (named.scope_key, named.role_definition_id, named.principal_id) == (
                            scope_key,
                            role_id,
                            principal_id,
                        )
                        if not same:
                            raise taken
                        return named
                existing = await session.scalar(
                    select(RoleAssignment).where(
                        RoleAssignment.scope_key == scope_key,
                        RoleAssignment.role_definition_id == role_id,
                        RoleAssignment.principal_id == principal_id,
                    )
                )
                if existing is not None:
                    if assignment_id and existing.id != assignment_id:
                        raise Conflict("The role assignment already exists.", code="RoleAssignmentExists")
                    return existing
                row = RoleAssignment(
                    id=assignment_id or str(uuid.uuid4()),
                    scope=scope,
                    scope_key=scope_key,
                    role_definition_id=role_id,
                    principal_id=principal_id,
                    created_at=self._clock.now(),
                )
                session.add(row)
        except IntegrityError:  # the same name written by two requests at once
            raise taken from None
        return row

    async def assignments(self, *, scope: str | None = None, principal_id: str | None = None) -> list[RoleAssignment]:
        """Assignments at, above or below ``scope`` (those that matter there), optionally for one principal."""
        async with self._db.session() as session:
            query = select(RoleAssignment).order_by(RoleAssignment.created_at)
            if principal_id:
                query = query.where(RoleAssignment.principal_id == principal_id)
            rows = list((await session.scalars(query)).all())
        if scope:
            s = rbac.normalize_scope(scope)
            rows = [r for r in rows if rbac.scope_covers(r.scope_key, s) or r.scope_key.startswith(s + "/")]
        return rows

    async def unassign(self, assignment_id: str) -> RoleAssignment:
        async with self._db.transaction() as session:
            row = await session.get(RoleAssignment, assignment_id)
            if row is None:
                raise NotFound(f"Role assignment '{assignment_id}' does not exist.", code="RoleAssignmentNotFound")
            await session.delete(row)
        return row

    async def get_assignment(self, assignment_id: str) -> RoleAssignment | None:
        async with self._db.session() as session:
            return await session.get(RoleAssignment, assignment_id)


def role_of(defn: RoleDefinition) -> rbac.Role:
    """The pure role of a stored definition. Data actions are those of the built-in role of that id: only built-in
    roles exist (no custom role definitions yet), and their data actions are Azure's, kept in ``rbac``."""
    builtin = rbac.BUILTIN_BY_ID.get(defn.id) if defn.builtin else None
    return rbac.Role(
        defn.id,
        defn.role_name,
        defn.description,
        tuple(defn.actions),
        tuple(defn.not_actions),
        builtin.data_actions if builtin else (),
        builtin.not_data_actions if builtin else (),
    )
