"""connectivityStatus, computed when read from what is stored, so it is exact at every threshold without a scan; and
the same rule as a query condition, for lists filtered by status."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, ScalarSelect, and_, case, func, not_, select

from halyard.core.clock import isoformat
from halyard.core.errors import InvalidRequest
from halyard.store.models import Resource, ResourceReport

if TYPE_CHECKING:
    from halyard.controlplane.arm.resourcetypes import RenderContext


def parse_time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def connectivity_status(properties: dict[str, Any], now: dt.datetime, offline_after: dt.timedelta) -> str:
    """Expired once the cluster certificate lapsed; Connecting before the first heartbeat; Offline once none came
    for ``offline_after``; Connected otherwise."""
    expires = parse_time(properties.get("managedIdentityCertificateExpirationTime"))
    if expires is not None and expires <= now:
        return "Expired"
    last = parse_time(properties.get("lastConnectivityTime"))
    if last is None:
        return "Connecting"
    if now - last >= offline_after:
        return "Offline"
    return "Connected"


STATUSES = ("Connected", "Connecting", "Offline", "Expired")
_FILTER = re.compile(r"^\s*(?:properties/)?connectivityStatus\s+eq\s+'([A-Za-z]+)'\s*$", re.IGNORECASE)


def status_filter(text: str, now: dt.datetime, offline_after: dt.timedelta) -> ColumnElement[bool]:
    """``$filter=properties/connectivityStatus eq 'Offline'`` as a condition on connected-cluster rows: the rule of
    :func:`connectivity_status` over the ``dp`` and ``his`` reports, in the query (ISO timestamps of one fixed width
    compare as strings), so a filtered page costs what an unfiltered one does."""
    match = _FILTER.match(text)
    wanted = next((s for s in STATUSES if match and s.lower() == match.group(1).lower()), None)
    if wanted is None:
        raise InvalidRequest(
            f"The $filter '{text[:100]}' is not supported. Use properties/connectivityStatus eq 'S' with S one of "
            f"{', '.join(STATUSES)}.",
            code="InvalidFilterInQueryString",
            target="$filter",
        )
    return _conditions(now, offline_after)[wanted]


def status_case(now: dt.datetime, offline_after: dt.timedelta) -> ColumnElement[str]:
    """The status itself as a query expression (one of STATUSES), for counting clusters by status in one GROUP BY:
    the same rule as :func:`status_filter`, its branches taken in order."""
    last, expired, cutoff = _parts(now, offline_after)
    return case(
        (expired, "Expired"), (last.is_(None), "Connecting"), (last <= cutoff, "Offline"), else_="Connected"
    )  # fmt: skip


def _conditions(now: dt.datetime, offline_after: dt.timedelta) -> dict[str, ColumnElement[bool]]:
    last, expired, cutoff = _parts(now, offline_after)
    live = not_(expired)
    return {
        "Expired": expired,
        "Connecting": and_(live, last.is_(None)),
        "Offline": and_(live, last.is_not(None), last <= cutoff),
        "Connected": and_(live, last > cutoff),
    }


def _parts(now: dt.datetime, offline_after: dt.timedelta) -> tuple[ScalarSelect[str | None], ColumnElement[bool], str]:
    """The last heartbeat, whether the certificate lapsed, and the Offline cutoff (ISO timestamps of one fixed
    width compare as strings)."""
    last = _reported("dp", "lastConnectivityTime")
    expiry = _reported("his", "managedIdentityCertificateExpirationTime")
    return last, and_(expiry.is_not(None), expiry <= isoformat(now)), isoformat(now - offline_after)


def cluster_sort_keys() -> dict[str, Callable[[RenderContext], ColumnElement[Any]]]:
    """The fields a connected-cluster list sorts by (``$orderby``), each's value never NULL (a cluster that never
    reported sorts as an empty string): its name whatever its case, its status (the rule above, at the request's
    time), and what its agents last reported."""

    def reported(key: str) -> Callable[[RenderContext], ColumnElement[Any]]:
        return lambda ctx: func.coalesce(_reported("dp", key), "")

    return {
        "name": lambda ctx: func.lower(Resource.name),
        "properties/connectivityStatus": lambda ctx: status_case(
            ctx.now, dt.timedelta(seconds=ctx.settings.offline_threshold_seconds)
        ),
        "properties/lastConnectivityTime": reported("lastConnectivityTime"),
        "properties/kubernetesVersion": reported("kubernetesVersion"),
        "properties/agentVersion": reported("agentVersion"),
    }


def _reported(reporter: str, key: str) -> ScalarSelect[str | None]:
    return (
        select(ResourceReport.properties[key].as_string())
        .where(ResourceReport.id_key == Resource.id_key, ResourceReport.reporter == reporter)
        .scalar_subquery()
    )
