"""``$orderby`` on a type's list: one sortable field, ascending or descending, over the whole (filtered) list in the
query, with keyset paging (the ``$skipToken`` carries the last row's sort value and id, so a page costs the same
wherever it is and no row is skipped or repeated while others are written).

A type names the fields it sorts by and the expression each is (never NULL: NULLs sort differently on SQLite and
PostgreSQL); the id breaks ties. Sorting is by the database's comparison of those values: strings compare as
strings (``v1.9`` after ``v1.31``)."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.resourcetypes import RenderContext
from halyard.core.errors import InvalidRequest
from halyard.store.models import Resource

# A field's sort value as a query expression, built per request (a status depends on the time).
SortKey = Callable[[RenderContext], ColumnElement[Any]]
_ORDERBY = re.compile(r"^\s*([A-Za-z][A-Za-z/]*)(?:\s+(asc|desc))?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Ordering:
    text: str  # as given: nextLink carries it
    field: str
    key: ColumnElement[Any]
    descending: bool

    def apply(self, query: Select[Any], after: str | None) -> Select[Any]:
        """``query`` sorted, from after the row ``after`` (a decoded ``$skipToken``) names."""
        if after:
            value, id_key = _after(after)
            if self.descending:
                query = query.where(or_(self.key < value, and_(self.key == value, Resource.id_key < id_key)))
            else:
                query = query.where(or_(self.key > value, and_(self.key == value, Resource.id_key > id_key)))
        if self.descending:
            return query.order_by(self.key.desc(), Resource.id_key.desc())
        return query.order_by(self.key, Resource.id_key)

    async def last_key(self, session: AsyncSession, id_key: str) -> str:
        """What the next page's ``$skipToken`` says: the sort value and id of the page's last row."""
        value = await session.scalar(select(self.key).where(Resource.id_key == id_key))
        return json.dumps([value if isinstance(value, str) else str(value), id_key])


def parse_orderby(text: str, fields: Mapping[str, SortKey], ctx: RenderContext) -> Ordering:
    """``name``, ``properties/connectivityStatus desc``, ...: one of ``fields`` (matched whatever its case), else a
    400 naming those that are."""
    match = _ORDERBY.match(text)
    by_lower = {f.lower(): f for f in fields}
    field = by_lower.get(match.group(1).lower()) if match else None
    if match is None or field is None:
        raise InvalidRequest(
            f"The $orderby '{text[:100]}' is not supported. Sort by one of {', '.join(fields)}, optionally followed "
            "by asc or desc.",
            code="InvalidOrderByInQueryString",
            target="$orderby",
        )
    descending = (match.group(2) or "").lower() == "desc"
    return Ordering(text, field, fields[field](ctx), descending)


def _after(decoded: str) -> tuple[Any, str]:
    try:
        value, id_key = json.loads(decoded)
    except (ValueError, TypeError):
        value, id_key = None, None
    # Every sort value is a string (the keys above never give NULL or a number): anything else is not our token.
    if not isinstance(id_key, str) or not isinstance(value, str):
        raise InvalidRequest("The $skipToken is not valid for this $orderby.", code="InvalidSkipToken")
    return value, id_key
