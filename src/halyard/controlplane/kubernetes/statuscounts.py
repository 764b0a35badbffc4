"""Connected clusters counted by connectivityStatus in one aggregate query: the status rule of
``dataplane/status.py`` grouped over the rows the caller may read (``arm/visibility.py``), so a count never reveals a
cluster its caller's list would not show.

A Halyard addition to the ARM surface (Azure answers such questions with Resource Graph, which Halyard does not
serve): ``POST …/providers/Microsoft.Kubernetes/connectedClusters/statusCounts``, documented in docs/portal.md."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ColumnElement, func, select

from halyard.controlplane.dataplane.status import STATUSES, status_case
from halyard.store import Database
from halyard.store.models import Resource


async def count_by_status(
    db: Database,
    *,
    type_key: str,
    subscription_id: str,
    group: str | None,
    visible: ColumnElement[bool] | None,
    now: dt.datetime,
    offline_after: dt.timedelta,
) -> dict[str, int]:
    """How many clusters of the subscription (or its group ``group``) are in each status, every status listed."""
    rows = select(status_case(now, offline_after).label("status")).where(
        Resource.type_key == type_key, Resource.subscription_id == subscription_id.lower()
    )
    if group:
        rows = rows.where(Resource.group_key == group.lower())
    if visible is not None:
        rows = rows.where(visible)
    # Grouped over a subquery: PostgreSQL would not match a GROUP BY of the CASE itself (its parameters are bound
    # apart) with the same CASE in the select list.
    inner = rows.subquery()
    query = select(inner.c.status, func.count()).group_by(inner.c.status)
    async with db.session() as session:
        found = {str(status): int(n) for status, n in (await session.execute(query)).all()}
    return {s: found.get(s, 0) for s in STATUSES}
