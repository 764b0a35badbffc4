"""Long-running operations as ARM clients poll them, completed server-side whether anyone polls or not.

An operation row is written in the same transaction as the change that needs it, so an acknowledged request is
never without its operation. A worker in every replica claims due operations with a lease; an operation whose
replica died is claimed again when its lease lapses, and the work it runs is idempotent.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.activity.events import Actor, record_accepted, record_ended
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import HalyardError
from halyard.store import Database
from halyard.store.models import Operation

log = logging.getLogger("halyard.operations")

Handler = Callable[[Operation], Awaitable[None]]
LEASE = dt.timedelta(seconds=15)
CONCURRENCY = 8  # operations in flight per replica
MAX_ATTEMPTS = 5  # runs of an operation whose handler fails unexpectedly before it is given up as Failed


PENDING_MAX = dt.timedelta(seconds=5)  # the longest a Pending defers: shorter than LEASE, so a wake can tell them apart


class Pending(Exception):
    """Raised by a handler waiting on something outside the control plane (a cluster to report): the operation
    stays InProgress and runs again after ``retry_after`` seconds, without counting as a failed attempt. The
    handler owns the deadline: it raises a ``HalyardError`` when it has waited long enough."""

    def __init__(self, reason: str, retry_after: float = 1.0) -> None:
        super().__init__(reason)
        self.retry_after = min(retry_after, PENDING_MAX.total_seconds())


class Operations:
    def __init__(self, db: Database, clock: Clock, *, retry_after: int = 1) -> None:
        self._db = db
        self._clock = clock
        self.retry_after = retry_after
        self._handlers: dict[str, Handler] = {}
        self._wake = asyncio.Event()

    def handle(self, action: str, handler: Handler) -> None:
        self._handlers[action] = handler

    def create(
        self,
        session: AsyncSession,
        *,
        subscription_id: str,
        namespace: str,
        location: str,
        action: str,
        target_id: str,
        actor: Actor | None = None,
        operation_name: str | None = None,
        http_method: str = "PUT",
        status_code: int = 202,
    ) -> Operation:
        """Add an operation to the caller's transaction; the worker picks it up once that commits. With ``actor``
        and ``operation_name`` (the ARM action), the activity log gets its Started and Accepted events in the same
        transaction, and its end in the transaction that ends it."""
        op = Operation(
            id=str(uuid.uuid4()),
            subscription_id=subscription_id,
            namespace=namespace,
            location=location.replace(" ", "").lower() or "global",
            action=action,
            target_id=target_id,
            status="InProgress",
            started_at=self._clock.now(),
            operation_name=operation_name,
        )
        session.add(op)
        if actor is not None and operation_name is not None:
            record_accepted(session, op, actor, http_method=http_method, status_code=status_code)
        return op

    async def release_leases(self) -> int:
        """Make every unfinished operation claimable now. Only for a store no other process can be using (SQLite):
        after a crash the dead process's leases would otherwise hold its operations for up to ``LEASE``."""
        async with self._db.transaction() as session:
            result = await session.execute(
                update(Operation).where(Operation.status == "InProgress").values(lease_until=None)
            )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def kick(self) -> None:
        self._wake.set()

    async def make_due(self, session: AsyncSession, target_keys: Sequence[str]) -> int:
        """In the caller's transaction (a cluster's report): make the operations waiting (``Pending``) on these
        resources due at once, so the report completes them within the worker's next turn, not at their next look.
        Only a deferral is cut (at most ``PENDING_MAX`` away); an operation being run holds the longer ``LEASE`` and is
        left alone, so none runs twice at once. Call ``kick`` after the commit when this returns more than 0."""
        if not target_keys:
            return 0
        now = self._clock.now()
        result = await session.execute(
            update(Operation)
            .where(
                Operation.status == "InProgress",
                Operation.lease_until > now,
                Operation.lease_until <= now + PENDING_MAX,
                func.lower(Operation.target_id).in_(list(target_keys)),
            )
            .values(lease_until=now)
            .execution_options(synchronize_session=False)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]

    async def get(self, operation_id: str) -> Operation | None:
        async with self._db.session() as session:
            return await session.get(Operation, operation_id)

    async def run_forever(self, poll_interval: float = 1.0) -> None:
        while True:
            try:
                while await self.run_due():
                    pass
            except Exception as exc:  # keep the worker alive; the operation stays claimable
                log.error("operation worker error", extra={"error": type(exc).__name__})
            try:
                await asyncio.wait_for(self._wake.wait(), poll_interval)
            except TimeoutError:
                pass
            self._wake.clear()

    async def run_due(self) -> int:
        """Claim and run every due operation once; returns how many ran.

        Operations on different resources run concurrently (bounded); those on the same resource run one after the
        other in the order they were accepted, so a PUT and the PATCH that follows it never interleave.
        """
        now = self._clock.now()
        async with self._db.session() as session:
            due = (
                await session.execute(
                    select(Operation.id, Operation.target_id)
                    .where(
                        Operation.status == "InProgress",
                        or_(Operation.lease_until.is_(None), Operation.lease_until < now),
                    )
                    .order_by(Operation.started_at)
                    .limit(200)
                )
            ).all()
        by_target: dict[str, list[str]] = {}
        for op_id, target in due:
            by_target.setdefault(target.lower(), []).append(op_id)
        limit = asyncio.Semaphore(CONCURRENCY)

        async def run_target(op_ids: list[str]) -> int:
            ran = 0
            async with limit:
                for op_id in op_ids:
                    op = await self._claim(op_id)
                    if op is not None:
                        await self._run(op)
                        ran += 1
            return ran

        return sum(await asyncio.gather(*(run_target(ids) for ids in by_target.values())))

    async def _claim(self, op_id: str) -> Operation | None:
        now = self._clock.now()
        async with self._db.transaction() as session:
            result = await session.execute(
                update(Operation)
                .where(
                    Operation.id == op_id,
                    Operation.status == "InProgress",
                    or_(Operation.lease_until.is_(None), Operation.lease_until < now),
                )
                .values(lease_until=now + LEASE, attempts=Operation.attempts + 1)
            )
            if result.rowcount != 1:  # type: ignore[attr-defined]
                return None
            return await session.get(Operation, op_id)

    async def _run(self, op: Operation) -> None:
        handler = self._handlers.get(op.action)
        status, error = "Succeeded", None
        if handler is None:
            status, error = (
                "Failed",
                {"code": "InternalServerError", "message": f"No handler for '{op.action}'."},
            )
        else:
            try:
                await handler(op)
            except Pending as wait:
                await self._defer(op, wait.retry_after)
                return
            except HalyardError as exc:
                status, error = "Failed", exc.body()["error"]
            except Exception as exc:
                log.error(
                    "operation failed",
                    extra={"operation": op.id, "action": op.action, "error": type(exc).__name__},
                )
                if op.attempts < MAX_ATTEMPTS:
                    return  # the lease lapses and it is retried
                status, error = "Failed", {"code": "InternalServerError", "message": "The operation failed."}
        async with self._db.transaction() as session:
            row = await session.get(Operation, op.id)
            if row is not None and row.status == "InProgress":
                row.status, row.error, row.ended_at, row.lease_until = status, error, self._clock.now(), None
                record_ended(session, row)

    async def _defer(self, op: Operation, seconds: float) -> None:
        """Hold the operation until ``seconds`` from now, the attempt given back: waiting is not failing."""
        async with self._db.transaction() as session:
            await session.execute(
                update(Operation)
                .where(Operation.id == op.id, Operation.status == "InProgress")
                .values(lease_until=self._clock.now() + dt.timedelta(seconds=seconds), attempts=Operation.attempts - 1)
            )

    def status_body(self, op: Operation) -> dict[str, Any]:
        body: dict[str, Any] = {
            "id": f"{_scope(op)}/providers/{op.namespace}/locations/{op.location}/operationStatuses/{op.id}",
            "name": op.id,
            "resourceId": op.target_id,
            "status": op.status,
            "startTime": isoformat(op.started_at),
        }
        if op.ended_at:
            body["endTime"] = isoformat(op.ended_at)
            body["percentComplete"] = 100
        if op.error:
            body["error"] = op.error
        return body

    def headers(
        self, op: Operation, base_url: str, api_version: str, *, location: bool, async_op: bool
    ) -> dict[str, str]:
        prefix = f"{base_url}{_scope(op)}/providers/{op.namespace}/locations/{op.location}"
        headers = {"Retry-After": str(self.retry_after)}
        if async_op:
            headers["Azure-AsyncOperation"] = f"{prefix}/operationStatuses/{op.id}?api-version={api_version}"
        if location:
            headers["Location"] = f"{prefix}/operationResults/{op.id}?api-version={api_version}"
        return headers


def _scope(op: Operation) -> str:
    """Where an operation is followed: its subscription, or the tenant root for a tenant resource's."""
    return f"/subscriptions/{op.subscription_id}" if op.subscription_id else ""
