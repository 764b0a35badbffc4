"""An activity log event as Azure Monitor's ``EventData`` (pure)."""

from __future__ import annotations

import json
from typing import Any

from halyard.core.clock import isoformat
from halyard.store.models import ActivityEvent

# Seconds between 0001-01-01 and 1970-01-01, for the .NET ticks Azure puts in an event's id.
_EPOCH_TICKS = 621_355_968_000_000_000


def _localized(value: str) -> dict[str, str]:
    return {"value": value, "localizedValue": value}


def _claims(e: ActivityEvent) -> dict[str, str]:
    claims = {
        "http://schemas.microsoft.com/identity/claims/objectidentifier": e.caller_id,
        "http://schemas.microsoft.com/identity/claims/tenantid": e.tenant_id,
    }
    if e.caller_type == "User":
        claims["http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn"] = e.caller
        claims["idtyp"] = "user"
    else:
        claims["appid"] = e.caller
        claims["idtyp"] = "app"
    return claims


def event_data(e: ActivityEvent, select: tuple[str, ...] = ()) -> dict[str, Any]:
    """The event as ``az monitor activity-log list`` and azure-mgmt-monitor read it; ``select``: only those keys."""
    ticks = _EPOCH_TICKS + int(e.at.timestamp() * 10_000_000)
    body: dict[str, Any] = {
        "authorization": {"action": e.operation_name, "scope": e.resource_id},
        "caller": e.caller,
        "channels": "Operation",
        "claims": _claims(e),
        "correlationId": e.correlation_id,
        "description": "",
        "eventDataId": e.id,
        "eventName": _localized("BeginRequest" if e.status == "Started" else "EndRequest"),
        "category": _localized("Administrative"),
        "eventTimestamp": isoformat(e.at),
        "httpRequest": {"method": e.http_method},
        "id": f"{e.resource_id}/events/{e.id}/ticks/{ticks}",
        "level": e.level,
        "operationId": e.correlation_id,
        "operationName": _localized(e.operation_name),
        "resourceGroupName": e.resource_group,
        "resourceProviderName": _localized(e.resource_type.split("/", 1)[0]),
        "resourceType": _localized(e.resource_type),
        "resourceId": e.resource_id,
        "status": _localized(e.status),
        "subStatus": _localized(e.sub_status),
        "submissionTimestamp": isoformat(e.at),
        "subscriptionId": e.subscription_id,
        "tenantId": e.tenant_id,
        # Azure's properties are strings (the SDK's model is dict[str, str]): the error is JSON text.
        "properties": {k: v if isinstance(v, str) else _json(v) for k, v in (e.properties or {}).items()},
    }
    if select:
        return {k: v for k, v in body.items() if k in select}
    return body


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))
