"""Reading and pruning the activity log: one page of the events a caller may read, newest first; events older than
the retention removed."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import quote

from sqlalchemy import and_, delete, func, or_, select

from halyard.controlplane.activity.events import READ
from halyard.controlplane.activity.query import ActivityQuery
from halyard.controlplane.activity.render import event_data
from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.paging import decode_skip_token, encode_skip_token
from halyard.core.clock import Clock
from halyard.core.errors import InvalidRequest
from halyard.store import Database
from halyard.store.models import ActivityEvent

log = logging.getLogger("halyard.activity")
PRUNE_INTERVAL = 3600.0  # seconds between two retention passes
PRUNE_BATCH = 5000  # rows deleted per transaction: a long backlog never holds the writer for long


def scope_of(subscription_id: str, query: ActivityQuery) -> str:
    """The scope a query reads: the resource, the group, or the whole subscription."""
    if query.resource_id:
        return query.resource_id
    if query.resource_group:
        return f"/subscriptions/{subscription_id}/resourceGroups/{query.resource_group}"
    return f"/subscriptions/{subscription_id}"


def _after(skip_token: str | None) -> tuple[dt.datetime, str] | None:
    key = decode_skip_token(skip_token)
    if key is None:
        return None
    moment, _, event_id = key.partition("|")
    try:
        return dt.datetime.fromisoformat(moment), event_id
    except ValueError:
        raise InvalidRequest("The $skipToken is not valid.", code="InvalidSkipToken") from None


async def list_events(
    db: Database,
    caller: AuthorizedCaller,
    subscription_id: str,
    query: ActivityQuery,
    *,
    page_size: int,
    skip_token: str | None,
    exists: Callable[[str], Awaitable[object]],
) -> tuple[list[dict[str, Any]], str | None]:
    """One page of events (EventData) and the ``$skipToken`` of the next, or None on the last page.

    Authorised before anything is read: a caller with no read of the scope (or of anything under it) gets the 403
    and learns nothing. A caller who may read only parts of it (one group of the subscription) sees only their
    events: rows are checked one by one, so a page can hold fewer events than the page size and still have a next."""
    scope = scope_of(subscription_id, query)
    caller.require_at_or_below(READ, scope)
    can_all = caller.allowed(READ, scope)
    await exists(subscription_id)  # a subscription that does not exist is ARM's 404, after the 403 check
    statement = select(ActivityEvent).where(
        ActivityEvent.subscription_id == subscription_id.lower(),
        ActivityEvent.at >= query.start,
        ActivityEvent.at <= query.end,
    )
    if query.resource_id:
        statement = statement.where(ActivityEvent.resource_key == query.resource_id.lower())
    if query.resource_group:
        statement = statement.where(ActivityEvent.group_key == query.resource_group.lower())
    if query.resource_provider:
        statement = statement.where(ActivityEvent.provider_key == query.resource_provider.lower())
    if query.correlation_id:
        statement = statement.where(ActivityEvent.correlation_id == query.correlation_id)
    if query.caller:
        statement = statement.where(func.lower(ActivityEvent.caller) == query.caller.lower())
    if query.status:
        statement = statement.where(ActivityEvent.status == query.status)
    if query.levels:
        statement = statement.where(ActivityEvent.level.in_(query.levels))
    after = _after(skip_token)
    if after is not None:
        moment, event_id = after
        statement = statement.where(
            or_(ActivityEvent.at < moment, and_(ActivityEvent.at == moment, ActivityEvent.id < event_id))
        )
    statement = statement.order_by(ActivityEvent.at.desc(), ActivityEvent.id.desc()).limit(page_size + 1)
    async with db.session() as session:
        rows = list((await session.scalars(statement)).all())
    more = len(rows) > page_size
    rows = rows[:page_size]
    visible = [r for r in rows if can_all or caller.allowed(READ, r.resource_id)]
    token = encode_skip_token(f"{rows[-1].at.isoformat()}|{rows[-1].id}") if more else None
    return [event_data(r, query.select) for r in visible], token


def next_link(base_url: str, path: str, api_version: str, filter_: str, select: str | None, token: str) -> str:
    link = f"{base_url}{path}?api-version={api_version}&%24filter={quote(filter_, safe='')}"
    link += f"&%24select={quote(select, safe='')}" if select else ""
    return link + f"&%24skipToken={token}"


async def prune(db: Database, before: dt.datetime) -> int:
    """Remove the events older than ``before``, a batch per transaction; returns how many went."""
    removed = 0
    while True:
        async with db.transaction() as session:
            ids = (
                await session.scalars(select(ActivityEvent.id).where(ActivityEvent.at < before).limit(PRUNE_BATCH))
            ).all()
            if ids:
                await session.execute(delete(ActivityEvent).where(ActivityEvent.id.in_(list(ids))))
        removed += len(ids)
        if len(ids) < PRUNE_BATCH:
            return removed


async def keep_retention(db: Database, clock: Clock, retention_days: int) -> None:
    """Prune now and every hour, for as long as the server runs."""
    while True:
        try:
            removed = await prune(db, clock.now() - dt.timedelta(days=retention_days))
            if removed:
                log.info("activity log pruned", extra={"events": removed})
        except Exception as exc:
            log.error("activity log retention failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(PRUNE_INTERVAL)
