"""connectivityStatus, computed when read from what is stored, so it is exact at every threshold without a scan."""

from __future__ import annotations

import datetime as dt
from typing import Any


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
