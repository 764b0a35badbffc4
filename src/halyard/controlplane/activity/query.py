"""The activity log's ``$filter`` and ``$select``, as Azure Monitor accepts them, parsed into a query (pure).

Azure allows only a time window (``eventTimestamp ge`` required, ``le`` optional) joined with ``and`` to at most one
of ``resourceUri`` (or ``resourceId``, as ``az`` sends it), ``resourceGroupName``, ``resourceProvider`` and
``correlationId``, and optionally ``caller``, ``status``, ``levels`` and ``eventChannels``; timestamps quoted or bare
(``az`` sends them bare, without a zone: UTC). Anything else is a 400 naming what is allowed."""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field

from halyard.core.errors import InvalidRequest

MAX_FILTER = 4096  # characters: a resource id (at most 1024 here) and a few clauses fit many times over
# EventData's properties, as $select names them (Azure's list; matched case-insensitively).
SELECTABLE = (
    "authorization", "caller", "category", "channels", "claims", "correlationId", "description", "eventDataId",
    "eventName", "eventTimestamp", "httpRequest", "id", "level", "operationId", "operationName", "properties",
    "resourceGroupName", "resourceId", "resourceProviderName", "resourceType", "status", "submissionTimestamp",
    "subStatus", "subscriptionId", "tenantId",
)  # fmt: skip
_SELECTABLE = {name.lower(): name for name in SELECTABLE}
_CLAUSE = re.compile(r"\s*(\w+)\s+(eq|ge|le)\s+('(?:[^']|'')*'|[^\s']+)\s*", re.IGNORECASE)
_AND = re.compile(r"and(?=\s)", re.IGNORECASE)
_SCOPES = {"resourceuri": "resource_id", "resourceid": "resource_id", "resourcegroupname": "resource_group",
           "resourceprovider": "resource_provider", "correlationid": "correlation_id"}  # fmt: skip
STATUSES = ("Started", "Accepted", "Succeeded", "Failed")
LEVELS = ("Critical", "Error", "Warning", "Informational", "Verbose")
HELP = (
    "Use eventTimestamp ge '<start>' [and eventTimestamp le '<end>'] and at most one of resourceUri eq '<id>', "
    "resourceGroupName eq '<group>', resourceProvider eq '<namespace>', correlationId eq '<id>', optionally with "
    "caller eq, status eq, levels eq, joined with 'and'."
)


@dataclass
class ActivityQuery:
    start: dt.datetime
    end: dt.datetime
    resource_id: str | None = None
    resource_group: str | None = None
    resource_provider: str | None = None
    correlation_id: str | None = None
    caller: str | None = None
    status: str | None = None
    levels: tuple[str, ...] = ()
    select: tuple[str, ...] = field(default_factory=tuple)


def _bad(message: str, target: str = "$filter") -> InvalidRequest:
    return InvalidRequest(message, code="InvalidFilterInQueryString" if target == "$filter" else "InvalidSelect",
                          target=target)  # fmt: skip


def parse_time(text: str) -> dt.datetime:
    """An ISO 8601 moment; one without a zone is UTC (what ``az`` sends)."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    # Azure writes seven fractional digits; Python reads at most six.
    value = re.sub(r"(\.\d{6})\d+", r"\1", value)
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _bad(f"'{text}' is not a valid eventTimestamp: use ISO 8601, such as 2026-12-01T00:00:00Z.") from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def parse(filter_: str | None, select: str | None, *, now: dt.datetime, retention: dt.timedelta) -> ActivityQuery:
    """The query a ``$filter`` and ``$select`` ask for, or a 400 saying what is wrong with them."""
    if not filter_ or not filter_.strip():
        raise _bad("The $filter query parameter is required: " + HELP)
    if len(filter_) > MAX_FILTER:
        raise _bad(f"The $filter is longer than {MAX_FILTER} characters.")
    values: dict[str, str] = {}
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    position, text = 0, filter_.strip()
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise _bad(f"The $filter '{filter_}' is not supported. " + HELP)
        name, op, raw = match.group(1).lower(), match.group(2).lower(), match.group(3)
        value = raw[1:-1].replace("''", "'") if raw.startswith("'") else raw
        if name == "eventtimestamp":
            if op == "eq":
                raise _bad("eventTimestamp takes ge and le, not eq.")
            if (op == "ge" and start is not None) or (op == "le" and end is not None):
                raise _bad(f"eventTimestamp {op} is given twice.")
            if op == "ge":
                start = parse_time(value)
            else:
                end = parse_time(value)
        elif op != "eq":
            raise _bad(f"{match.group(1)} takes eq only. " + HELP)
        elif name in values:
            raise _bad(f"{match.group(1)} is given twice.")
        elif name in _SCOPES or name in ("caller", "status", "levels", "eventchannels"):
            if not value.strip():
                raise _bad(f"{match.group(1)} needs a value.")
            values[name] = value
        else:
            raise _bad(f"'{match.group(1)}' cannot be filtered on. " + HELP)
        position = match.end()
        if position >= len(text):
            break
        joiner = _AND.match(text, position)
        if joiner is None:
            raise _bad(f"The $filter '{filter_}' is not supported: clauses are joined with 'and'. " + HELP)
        position = joiner.end()
    if start is None:
        raise _bad("The $filter must give the start of the window: eventTimestamp ge '<start>'. " + HELP)
    end = min(end or now, now)
    if end < start:
        raise _bad("The window's end (eventTimestamp le) is before its start (eventTimestamp ge).")
    oldest = now - retention
    if start < oldest:
        days = retention.days
        raise _bad(
            f"The start time cannot be more than {days} days in the past: events are kept {days} days "
            f"(eventTimestamp ge '{start.isoformat()}' is before {oldest.isoformat()})."
        )
    scopes = [n for n in values if n in _SCOPES]
    if len({_SCOPES[n] for n in scopes}) > 1 or len(scopes) > 1:
        raise _bad("At most one of resourceUri, resourceGroupName, resourceProvider and correlationId. " + HELP)
    query = ActivityQuery(start=start, end=end)
    for name in scopes:
        setattr(query, _SCOPES[name], values[name].strip())
    query.caller = values.get("caller")
    if "status" in values:
        status = {s.lower(): s for s in STATUSES}.get(values["status"].strip().lower())
        if status is None:
            raise _bad(f"status is one of {', '.join(STATUSES)}.")
        query.status = status
    if "levels" in values:
        known = {level.lower(): level for level in LEVELS}
        levels = [known.get(level.strip().lower()) for level in values["levels"].split(",")]
        if None in levels:
            raise _bad(f"levels are among {', '.join(LEVELS)}, separated by commas.")
        query.levels = tuple(level for level in levels if level)
    query.select = parse_select(select)
    return query


def parse_select(select: str | None) -> tuple[str, ...]:
    """``$select``: EventData's property names separated by commas (``az`` puts spaces around them)."""
    if select is None or not select.strip():
        return ()
    if len(select) > MAX_FILTER:
        raise _bad(f"The $select is longer than {MAX_FILTER} characters.", "$select")
    names = []
    for part in select.split(","):
        name = _SELECTABLE.get(part.strip().lower())
        if name is None:
            raise _bad(f"'{part.strip()}' is not a property of an event. Select among {', '.join(SELECTABLE)}.",
                       "$select")  # fmt: skip
        names.append(name)
    return tuple(dict.fromkeys(names))
