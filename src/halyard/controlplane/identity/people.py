"""Users and groups of a tenant's directory: users sign in with a password, groups gather principals for RBAC.

Both are rows of ``principals`` (kind ``User`` or ``Group``), so role assignments, deletion and token checks treat
them as they treat service principals. A user's password is stored as a client secret is (salted scrypt, hashed in a
worker thread) in ``credentials`` with kind ``password``.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from halyard.controlplane.identity.secrets import hash_secret
from halyard.core.clock import Clock
from halyard.core.errors import Conflict, InvalidRequest, NotFound
from halyard.store import Database
from halyard.store.models import (
    Credential,
    FederatedIdentity,
    GroupMember,
    Principal,
    RefreshToken,
    RoleAssignment,
)

USER = "User"
GROUP = "Group"
PASSWORD = "password"
# A password the administrator set for the user to replace at their next sign-in (az's
# --force-change-password-next-sign-in): it signs in only together with a new password.
TEMPORARY_PASSWORD = "tempPassword"
PASSWORD_KINDS = (PASSWORD, TEMPORARY_PASSWORD)
# ARM's principalType values (Microsoft.Authorization). Everything that is neither a user nor a group signs in as an
# application (service principals, and connected clusters' identities, which Azure models as managed identities).
PRINCIPAL_TYPES = ("User", "Group", "ServicePrincipal", "ForeignGroup", "Device")
# A password does not expire by itself (the administrator resets it); the column needs a date.
PASSWORD_LIFETIME = dt.timedelta(days=3650)
MIN_PASSWORD = 12
MAX_PASSWORD = 256
# Nested groups are followed this deep when a caller's groups are read (a cycle stops there too).
MAX_NESTING = 8
_USER_NAME = re.compile(r"^[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9.-]{1,190}$")

Hasher = Callable[[Callable[[str], str], str], Awaitable[str]]


def principal_type(kind: str) -> str:
    """The ``principalType`` ARM shows for a principal of this kind."""
    return kind if kind in (USER, GROUP) else "ServicePrincipal"


def check_password_rules(password: str) -> None:
    """What a password must be: long enough to resist guessing past the login throttle, short enough to hash."""
    if len(password) < MIN_PASSWORD:
        raise InvalidRequest(f"The password must be at least {MIN_PASSWORD} characters.", code="PasswordTooShort")
    if len(password) > MAX_PASSWORD:
        raise InvalidRequest(f"The password must be at most {MAX_PASSWORD} characters.", code="PasswordTooLong")


def normalize_user_name(user_name: str) -> str:
    """The stored, compared form of a sign-in name; InvalidRequest unless it looks like ``name@domain``."""
    if not _USER_NAME.match(user_name):
        raise InvalidRequest(
            f"'{user_name}' is not a valid user principal name: use name@domain.", code="InvalidUserPrincipalName"
        )
    return user_name.lower()


class People:
    def __init__(self, db: Database, clock: Clock, hasher: Hasher) -> None:
        self._db = db
        self._clock = clock
        self._hash = hasher

    async def create_user(
        self, tenant_id: str, user_name: str, display_name: str, password: str, *, force_change: bool = False
    ) -> Principal:
        name = normalize_user_name(user_name)
        check_password_rules(password)
        now = self._clock.now()
        user = user_row(tenant_id, name, display_name, now)
        oid = user.id
        password_hash = await self._hash(hash_secret, password)  # before the transaction: no lock held meanwhile
        try:
            async with self._db.transaction() as session:
                if await session.scalar(select(Principal.id).where(Principal.user_name == name)) is not None:
                    raise _user_exists(name)
                session.add(user)
                await session.flush()
                session.add(self._password(oid, password_hash, now, temporary=force_change))
        except IntegrityError:  # the same name created twice at once
            raise _user_exists(name) from None
        return user

    async def set_password(self, user_id: str, password: str, *, force_change: bool = False) -> None:
        """Replace a user's password (``force_change``: to be replaced at their next sign-in); their refresh tokens
        are revoked (sessions end, access tokens expire)."""
        check_password_rules(password)
        password_hash = await self._hash(hash_secret, password)
        now = self._clock.now()
        async with self._db.transaction() as session:
            user = await self._one(session, user_id, USER)
            await session.execute(
                delete(Credential).where(Credential.principal_id == user.id, Credential.kind.in_(PASSWORD_KINDS))
            )
            await session.execute(delete(RefreshToken).where(RefreshToken.principal_id == user.id))
            session.add(self._password(user.id, password_hash, now, temporary=force_change))

    async def create_group(self, tenant_id: str, display_name: str, description: str = "") -> Principal:
        async with self._db.transaction() as session:
            taken = await session.scalar(
                select(Principal.id).where(
                    Principal.tenant_id == tenant_id, Principal.kind == GROUP, Principal.display_name == display_name
                )
            )
            if taken is not None:
                raise Conflict(f"A group named '{display_name}' already exists.", code="GroupExists")
            oid = str(uuid.uuid4())
            group = Principal(
                id=oid, app_id=oid, tenant_id=tenant_id, display_name=display_name, kind=GROUP,
                created_at=self._clock.now(),
            )  # fmt: skip
            session.add(group)
        return group

    async def list_of(self, tenant_id: str, kind: str) -> list[Principal]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Principal)
                .where(Principal.tenant_id == tenant_id, Principal.kind == kind)
                .order_by(Principal.display_name)
            )
            return list(rows.all())

    async def find(self, tenant_id: str, key: str, kind: str) -> Principal:
        """A user by object id or user name, a group by object id or display name; NotFound otherwise."""
        async with self._db.session() as session:
            return await self._one(session, key, kind, tenant_id)

    async def delete(self, tenant_id: str, key: str, kind: str) -> None:
        """Remove a user or group with its credentials, memberships, refresh tokens and role assignments."""
        async with self._db.transaction() as session:
            row = await self._one(session, key, kind, tenant_id)
            for stmt in (
                delete(Credential).where(Credential.principal_id == row.id),
                delete(RefreshToken).where(RefreshToken.principal_id == row.id),
                delete(GroupMember).where((GroupMember.group_id == row.id) | (GroupMember.member_id == row.id)),
                delete(RoleAssignment).where(RoleAssignment.principal_id == row.id),
                delete(FederatedIdentity).where(FederatedIdentity.principal_id == row.id),
            ):
                await session.execute(stmt)
            await session.delete(row)

    async def add_member(self, tenant_id: str, group_key: str, member_id: str) -> None:
        async with self._db.transaction() as session:
            group = await self._one(session, group_key, GROUP, tenant_id)
            member = await session.get(Principal, member_id)
            if member is None or member.tenant_id != tenant_id:
                raise InvalidRequest(f"Principal '{member_id}' does not exist.", code="PrincipalNotFound")
            if member.id == group.id:
                raise InvalidRequest("A group cannot be a member of itself.", code="InvalidMember")
            if await session.get(GroupMember, (group.id, member.id)) is None:
                session.add(GroupMember(group_id=group.id, member_id=member.id))

    async def remove_member(self, tenant_id: str, group_key: str, member_id: str) -> None:
        async with self._db.transaction() as session:
            group = await self._one(session, group_key, GROUP, tenant_id)
            row = await session.get(GroupMember, (group.id, member_id))
            if row is None:
                raise NotFound(f"'{member_id}' is not a member of group '{group_key}'.", code="MemberNotFound")
            await session.delete(row)

    async def members(self, tenant_id: str, group_key: str) -> list[Principal]:
        async with self._db.session() as session:
            group = await self._one(session, group_key, GROUP, tenant_id)
            rows = await session.scalars(
                select(Principal)
                .join(GroupMember, GroupMember.member_id == Principal.id)
                .where(GroupMember.group_id == group.id)
                .order_by(Principal.display_name)
            )
            return list(rows.all())

    async def groups_of(self, principal_id: str) -> tuple[str, ...]:
        async with self._db.session() as session:
            return await groups_of(session, principal_id)

    async def _one(self, session, key: str, kind: str, tenant_id: str | None = None) -> Principal:  # type: ignore[no-untyped-def]
        if kind == USER:
            match = (Principal.id == key) | (Principal.user_name == key.lower())
        else:
            match = (Principal.id == key) | (Principal.display_name == key)
        query = select(Principal).where(match, Principal.kind == kind)
        if tenant_id is not None:
            query = query.where(Principal.tenant_id == tenant_id)
        rows = list((await session.scalars(query.limit(2))).all())
        if len(rows) != 1:
            what = "User" if kind == USER else "Group"
            raise NotFound(f"{what} '{key}' does not exist.", code=f"{what}NotFound")
        return rows[0]

    @staticmethod
    def _password(principal_id: str, password_hash: str, now: dt.datetime, *, temporary: bool = False) -> Credential:
        return Credential(
            id=str(uuid.uuid4()),
            principal_id=principal_id,
            kind=TEMPORARY_PASSWORD if temporary else PASSWORD,
            secret_hash=password_hash,
            hint="",  # nothing of a password is kept in clear, not even its first characters
            created_at=now,
            expires_at=now + PASSWORD_LIFETIME,
        )


async def groups_of(session, principal_id: str) -> tuple[str, ...]:  # type: ignore[no-untyped-def]
    """The object ids of every group ``principal_id`` is in, directly or through nested groups (sorted)."""
    found: set[str] = set()
    frontier: Iterable[str] = [principal_id]
    for _ in range(MAX_NESTING):
        rows = await session.scalars(select(GroupMember.group_id).where(GroupMember.member_id.in_(list(frontier))))
        new = set(rows.all()) - found
        if not new:
            break
        found |= new
        frontier = new
    return tuple(sorted(found))


def user_row(tenant_id: str, user_name: str, display_name: str, now: dt.datetime) -> Principal:
    """A new user (``user_name`` already normalized), without a credential: a password is added by
    :meth:`People.create_user`; a user created by a federated sign-in has none."""
    oid = str(uuid.uuid4())
    return Principal(
        id=oid, app_id=oid, tenant_id=tenant_id, display_name=display_name, kind=USER, created_at=now,
        user_name=user_name,
    )  # fmt: skip


def _user_exists(name: str) -> Conflict:
    return Conflict(f"A user named '{name}' already exists.", code="UserExists")
