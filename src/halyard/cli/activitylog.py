"""The activity log's ``$filter`` as ``halyard monitor activity-log list`` builds it from az's options (pure)."""

from __future__ import annotations

import datetime as dt
import re

from halyard.cli.errors import CliError
from halyard.cli.odata import odata_quote

API_VERSION = "2015-04-01"  # what az monitor activity-log list sends
_OFFSET = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?$", re.IGNORECASE)


def values_path(subscription_id: str) -> str:
    return f"/subscriptions/{subscription_id}/providers/Microsoft.Insights/eventtypes/management/values"


def parse_offset(text: str) -> dt.timedelta:
    """az's ``--offset``: ``##d##h`` (and minutes, ``30m``)."""
    match = _OFFSET.match(text.strip())
    if not text.strip() or match is None:
        raise CliError(f"--offset '{text}' is not a duration such as 1h, 30m, 7d or 1d12h.")
    days, hours, minutes = (int(g or 0) for g in match.groups())
    return dt.timedelta(days=days, hours=hours, minutes=minutes)


def parse_moment(text: str, option: str) -> dt.datetime:
    """An ISO 8601 date or time; one without a zone is UTC, as az reads it."""
    value = text.strip()
    try:
        moment = dt.datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith(("Z", "z")) else value)
    except ValueError:
        raise CliError(
            f"{option} '{text}' is not an ISO 8601 date or time (2026-12-01 or 2026-12-01T08:00:00Z)."
        ) from None
    return moment.replace(tzinfo=dt.UTC) if moment.tzinfo is None else moment.astimezone(dt.UTC)


def window(
    now: dt.datetime, start: dt.datetime | None, end: dt.datetime | None, offset: dt.timedelta
) -> tuple[dt.datetime, dt.datetime]:
    """As az: neither end given, the last ``offset``; one given, ``offset`` from it."""
    if start is None and end is None:
        end = now
    if start is None:
        assert end is not None
        start = end - offset
    elif end is None:
        end = start + offset
    return start, end


def build_filter(
    start: dt.datetime,
    end: dt.datetime,
    *,
    resource_id: str | None = None,
    resource_group: str | None = None,
    correlation_id: str | None = None,
    resource_provider: str | None = None,
    caller: str | None = None,
    status: str | None = None,
) -> str:
    """``eventTimestamp ge '…' and eventTimestamp le '…'``, one scope (at most), then caller and status."""
    scopes = [
        (name, value)
        for name, value in (
            ("correlationId", correlation_id),
            ("resourceGroupName", resource_group),
            ("resourceUri", resource_id),
            ("resourceProvider", resource_provider),
        )
        if value
    ]
    if len(scopes) > 1:
        raise CliError("Give at most one of --correlation-id, --resource-group, --resource-id, --resource-provider.")
    stamp = "%Y-%m-%dT%H:%M:%S.%fZ"
    clauses = [f"eventTimestamp ge '{start.strftime(stamp)}'", f"eventTimestamp le '{end.strftime(stamp)}'"]
    clauses += [f"{name} eq {odata_quote(value)}" for name, value in scopes]
    clauses += [f"{name} eq {odata_quote(v)}" for name, v in (("caller", caller), ("status", status)) if v]
    return " and ".join(clauses)
