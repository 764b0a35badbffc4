"""Service principals and their credentials: client secrets (hashed) and public keys (client assertions)."""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import random
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import jwt
from cryptography.hazmat.primitives import serialization
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from halyard.controlplane.identity.people import PASSWORD_KINDS, TEMPORARY_PASSWORD, USER, People
from halyard.controlplane.identity.secrets import hash_secret, new_secret, verify_secret
from halyard.controlplane.identity.signin import SignIns
from halyard.core.clock import Clock
from halyard.core.errors import NotFound, OAuthError
from halyard.store import Database
from halyard.store.models import Credential, GroupMember, Principal, RoleAssignment, UsedAssertion

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SECRET_LIFETIME = dt.timedelta(days=365)
T = TypeVar("T")
# scrypt costs ~50 ms of CPU and 16 MiB per call. hashlib releases the GIL while it runs, so it runs in a worker thread
# and the event loop keeps serving (agent heartbeats included); at most this many at once, so a flood of logins waits
# its turn as cheap coroutines instead of piling up threads and memory.
SCRYPT_CONCURRENCY = 2
# Secret checks waiting or running at most (about 1.6 s of queue at 2 x 50 ms): beyond, a login is shed at once with
# 503 + Retry-After. The per-address throttle cannot bound a flood from many addresses, each within its own limit;
# without this, such a flood would make every login (and its memory) wait without bound.
MAX_SECRET_CHECKS = 64
# Assertion checks in progress at most; beyond, shed with 503 like secret checks. Each tries at most
# MAX_ASSERTION_KEYS keys (the one its x5t#S256 names, when it names one), so one costs a signature check or two.
MAX_ASSERTION_CHECKS = 64
MAX_ASSERTION_KEYS = 4
# How a public-key credential's ``hint`` holds its certificate's x5t#S256: the first characters (48 bits, ample
# to tell one identity's current key from its next).
THUMBPRINT_HINT = 8


async def spend_once(db: Database, jti: str, expires_at: dt.datetime, now: dt.datetime) -> bool:
    """Record a single-use token id (an assertion's, a proof's) until it expires; False if it was seen already."""
    if len(jti) > 128:  # the caller chose it: stored by its digest, which fits the column whatever its length
        jti = "sha256:" + hashlib.sha256(jti.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        async with db.transaction() as session:
            if await session.get(UsedAssertion, jti) is not None:
                return False
            await session.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < now))
            session.add(UsedAssertion(jti=jti, expires_at=expires_at))
    except IntegrityError:  # the same id presented twice at the same moment
        return False
    return True


def _busy() -> OAuthError:
    return OAuthError(
        "temporarily_unavailable",
        "The login service is busy checking other sign-ins; retry after the indicated time.",
        status=503,
        headers={"Retry-After": str(random.randint(1, 5))},  # spread the retries
    )


@dataclass(frozen=True)
class NewCredential:
    principal: Principal
    secret: str
    expires_at: dt.datetime


class Principals:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._scrypt = asyncio.Semaphore(SCRYPT_CONCURRENCY)
        self._secret_checks = 0  # waiting for or holding a scrypt turn
        self._assertion_checks = 0
        self._decoy: str | None = None  # a hash no secret matches, checked for an unknown client id
        # Users and groups hash passwords with the same bounded scrypt workers as secrets.
        self.people = People(db, clock, self._off_loop)
        self.signins = SignIns(db, clock)

    async def create_service_principal(self, tenant_id: str, display_name: str) -> NewCredential:
        now = self._clock.now()
        principal = Principal(
            id=str(uuid.uuid4()),
            app_id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            display_name=display_name,
            kind="ServicePrincipal",
            created_at=now,
        )
        secret = new_secret()
        secret_hash = await self._off_loop(hash_secret, secret)  # hashed before the transaction: no lock held
        async with self._db.transaction() as session:
            session.add(principal)
            await session.flush()
            session.add(self._secret_credential(principal.id, secret, secret_hash, now))
        return NewCredential(principal, secret, now + SECRET_LIFETIME)

    async def add_public_key(
        self, principal_id: str, public_key_pem: str, *, expires_at: dt.datetime, replace: bool = False
    ) -> None:
        """Register a key whose private half signs client assertions for this principal."""
        serialization.load_pem_public_key(public_key_pem.encode())  # refuse garbage early
        async with self._db.transaction() as session:
            if replace:
                await session.execute(
                    delete(Credential).where(Credential.principal_id == principal_id, Credential.kind == "publicKey")
                )
            session.add(
                Credential(
                    id=str(uuid.uuid4()),
                    principal_id=principal_id,
                    kind="publicKey",
                    public_key_pem=public_key_pem,
                    created_at=self._clock.now(),
                    expires_at=expires_at,
                )
            )

    async def reset_secret(self, app_id: str, *, append: bool = False) -> NewCredential:
        """A new client secret; unless ``append``, every older secret stops working at once."""
        now = self._clock.now()
        secret = new_secret()
        secret_hash = await self._off_loop(hash_secret, secret)
        async with self._db.transaction() as session:
            principal = await self._by_app_id(session, app_id)
            if not append:
                await session.execute(
                    delete(Credential).where(Credential.principal_id == principal.id, Credential.kind == "secret")
                )
            session.add(self._secret_credential(principal.id, secret, secret_hash, now))
        return NewCredential(principal, secret, now + SECRET_LIFETIME)

    async def list_service_principals(self, tenant_id: str) -> list[Principal]:
        async with self._db.session() as session:
            rows = await session.scalars(
                select(Principal)
                .where(Principal.tenant_id == tenant_id, Principal.kind == "ServicePrincipal")
                .order_by(Principal.display_name)
            )
            return list(rows.all())

    async def get(self, object_id: str) -> Principal | None:
        async with self._db.session() as session:
            return await session.get(Principal, object_id)

    async def kinds(self, object_ids: Iterable[str]) -> dict[str, str]:
        """The kind of each principal that exists among ``object_ids`` (one query, for a list of assignments)."""
        wanted = list(set(object_ids))
        if not wanted:
            return {}
        async with self._db.session() as session:
            rows = await session.execute(select(Principal.id, Principal.kind).where(Principal.id.in_(wanted)))
            return {oid: kind for oid, kind in rows.all()}

    async def find(self, id_or_app_id: str) -> Principal:
        async with self._db.session() as session:
            return await self._by_app_id(session, id_or_app_id)

    async def delete(self, id_or_app_id: str) -> None:
        """Remove the principal, its credentials and its role assignments. Its tokens stop working at once."""
        async with self._db.transaction() as session:
            principal = await self._by_app_id(session, id_or_app_id)
            await session.execute(delete(Credential).where(Credential.principal_id == principal.id))
            await session.execute(delete(GroupMember).where(GroupMember.member_id == principal.id))
            await session.execute(delete(RoleAssignment).where(RoleAssignment.principal_id == principal.id))
            await session.delete(principal)

    async def _client(self, tenant_id: str, client_id: str, kind: str) -> tuple[Principal | None, list[Credential]]:
        """The principal a token request names (None: no such client), with its credentials of one kind.

        An unknown client id is answered as a wrong credential is (invalid_client, counted by the throttle), not
        with Entra's unauthorized_client: that answer told anyone which client ids exist, without limit.
        """
        async with self._db.session() as session:
            principal = await session.scalar(
                select(Principal).where(Principal.app_id == client_id, Principal.tenant_id == tenant_id)
            )
            if principal is None:
                return None, []
            creds = await session.scalars(
                select(Credential).where(Credential.principal_id == principal.id, Credential.kind == kind)
            )
            return principal, list(creds.all())

    async def authenticate_secret(self, tenant_id: str, client_id: str, secret: str) -> Principal:
        principal, creds = await self._client(tenant_id, client_id, "secret")
        now = self._clock.now()
        if self._secret_checks >= MAX_SECRET_CHECKS:
            raise _busy()
        self._secret_checks += 1
        try:
            hashes = [c.secret_hash for c in creds if c.secret_hash and c.expires_at > now]
            if principal is None or not hashes:
                # The same scrypt as a real check, so the time taken does not tell an unknown client id either.
                if self._decoy is None:
                    self._decoy = await self._off_loop(hash_secret, new_secret())
                await self._off_loop(verify_secret, secret, self._decoy)
            for secret_hash in hashes:
                if principal is not None and await self._off_loop(verify_secret, secret, secret_hash):
                    return principal
        finally:
            self._secret_checks -= 1
        raise OAuthError(
            "invalid_client",
            f"Invalid client secret provided. Ensure the secret being sent in the request is the client secret "
            f"value, not the client secret ID, for a secret added to app '{client_id}'.",
            status=401,
            aadsts=7000215,
        )

    async def authenticate_password(self, tenant_id: str, user_name: str, password: str) -> tuple[Principal, bool]:
        """The user ``user_name`` names if ``password`` is theirs, and whether it is a temporary password they must
        replace now; invalid_grant (AADSTS50126) otherwise, the same answer and the same scrypt for an unknown user,
        so neither the answer nor its time tells who exists."""
        if self._secret_checks >= MAX_SECRET_CHECKS:
            raise _busy()
        self._secret_checks += 1
        try:
            async with self._db.session() as session:
                user = await session.scalar(
                    select(Principal).where(
                        Principal.user_name == user_name.lower(),
                        Principal.tenant_id == tenant_id,
                        Principal.kind == USER,
                    )
                )
                hashes: list[tuple[str, bool]] = []
                if user is not None:
                    creds = await session.execute(
                        select(Credential.secret_hash, Credential.kind).where(
                            Credential.principal_id == user.id, Credential.kind.in_(PASSWORD_KINDS)
                        )
                    )
                    hashes = [(h, kind == TEMPORARY_PASSWORD) for h, kind in creds.all() if h]
            if user is None or not hashes:
                if self._decoy is None:
                    self._decoy = await self._off_loop(hash_secret, new_secret())
                await self._off_loop(verify_secret, password, self._decoy)
            for password_hash, temporary in hashes:
                if user is not None and await self._off_loop(verify_secret, password, password_hash):
                    return user, temporary
        finally:
            self._secret_checks -= 1
        raise OAuthError(
            "invalid_grant", "Error validating credentials due to invalid username or password.", aadsts=50126
        )

    async def authenticate_assertion(
        self, tenant_id: str, client_id: str, assertion: str, audiences: list[str]
    ) -> Principal:
        """private_key_jwt (RFC 7523): a JWT the client signed with a key registered for it.

        The key is the one the assertion's ``x5t#S256`` header names (a cluster's certificate), else each of the
        principal's keys (at most :data:`MAX_ASSERTION_KEYS`, newest first): one check costs a signature or two,
        however many keys an identity was ever given.
        """
        if self._assertion_checks >= MAX_ASSERTION_CHECKS:
            raise _busy()
        self._assertion_checks += 1
        try:
            return await self._check_assertion(tenant_id, client_id, assertion, audiences)
        finally:
            self._assertion_checks -= 1

    async def _check_assertion(self, tenant_id: str, client_id: str, assertion: str, audiences: list[str]) -> Principal:
        bad = OAuthError("invalid_client", "The client assertion is not valid.", status=401, aadsts=700027)
        try:
            claims = jwt.decode(assertion, options={"verify_signature": False})
            header = jwt.get_unverified_header(assertion)
        except jwt.PyJWTError:
            raise bad from None
        if not client_id:
            client_id = str(claims.get("iss", ""))
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise bad
        principal, creds = await self._client(tenant_id, client_id, "publicKey")
        if principal is None:
            raise bad
        now = self._clock.now()
        usable = sorted(
            (c for c in creds if c.expires_at > now and c.public_key_pem),
            key=lambda c: c.created_at,
            reverse=True,
        )
        thumbprint = header.get("x5t#S256")
        if isinstance(thumbprint, str) and thumbprint:
            named = [c for c in usable if c.hint and c.hint == thumbprint[:THUMBPRINT_HINT]]
            usable = named or [c for c in usable if not c.hint]  # keys registered without a certificate
        verified: dict[str, object] | None = None
        for cred in usable[:MAX_ASSERTION_KEYS]:
            key = serialization.load_pem_public_key((cred.public_key_pem or "").encode())
            try:
                verified = jwt.decode(
                    assertion,
                    key,  # type: ignore[arg-type]
                    algorithms=["RS256", "ES256", "PS256"],
                    audience=audiences,
                    options={
                        "verify_exp": False,
                        "verify_nbf": False,
                        "verify_iat": False,
                        "require": ["exp", "jti"],
                    },
                )
                break
            except jwt.PyJWTError:
                continue
        if verified is None:
            raise bad
        exp = dt.datetime.fromtimestamp(float(verified["exp"]), dt.UTC)  # type: ignore[arg-type]
        if exp < now or exp > now + dt.timedelta(minutes=15):
            raise OAuthError("invalid_client", "The client assertion has expired or lives too long.", aadsts=700024)
        await self._remember(str(verified["jti"]), exp)
        return principal

    async def _remember(self, jti: str, expires_at: dt.datetime) -> None:
        if not await spend_once(self._db, jti, expires_at, self._clock.now()):
            raise OAuthError("invalid_client", "The client assertion was already used.", aadsts=700024)

    @staticmethod
    async def _by_app_id(session, id_or_app_id: str) -> Principal:  # type: ignore[no-untyped-def]
        principal = await session.scalar(
            select(Principal).where((Principal.app_id == id_or_app_id) | (Principal.id == id_or_app_id))
        )
        if principal is None:
            raise NotFound(f"Service principal '{id_or_app_id}' does not exist.", code="PrincipalNotFound")
        return principal

    async def _off_loop(self, scrypt: Callable[..., T], *args: str) -> T:
        """``scrypt(*args)`` in a worker thread, no more than :data:`SCRYPT_CONCURRENCY` at once."""
        async with self._scrypt:
            return await asyncio.to_thread(scrypt, *args)

    @staticmethod
    def _secret_credential(principal_id: str, secret: str, secret_hash: str, now: dt.datetime) -> Credential:
        return Credential(
            id=str(uuid.uuid4()),
            principal_id=principal_id,
            kind="secret",
            secret_hash=secret_hash,
            hint=secret[:3],
            created_at=now,
            expires_at=now + SECRET_LIFETIME,
        )
