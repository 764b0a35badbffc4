"""``GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values``: Azure Monitor's activity
log list, as ``az monitor activity-log list`` and azure-mgmt-monitor's ``activity_logs.list`` call it."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.activity import log, query
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane

API_VERSIONS = ("2015-04-01",)
PATH = "/subscriptions/{subscriptionId}/providers/Microsoft.Insights/eventtypes/management/values"
router = APIRouter(tags=["Microsoft.Insights"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]


@router.get(PATH, operation_id="ActivityLogs_List")
async def list_activity_log(
    request: Request,
    subscriptionId: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
    # Their length and form are checked by the parser, which says what is wrong (a 400, never FastAPI's 422).
    filter_: Annotated[str | None, Query(alias="$filter")] = None,
    select: Annotated[str | None, Query(alias="$select")] = None,
    skip_token: Annotated[str | None, Query(alias="$skipToken")] = None,
) -> JSONResponse:
    """The events of the window the ``$filter`` gives, newest first, a page at a time (``nextLink``)."""
    version = require_api_version(request, API_VERSIONS, "Microsoft.Insights/eventtypes")
    retention = dt.timedelta(days=cp.settings.activity_log_retention_days)
    asked = query.parse(filter_, select, now=cp.clock.now(), retention=retention)
    events, token = await log.list_events(
        cp.db, caller, subscriptionId, asked, page_size=cp.settings.page_size, skip_token=skip_token,
        exists=cp.directory.subscription,
    )  # fmt: skip
    body: dict[str, object] = {"value": events}
    if token is not None:
        path = PATH.replace("{subscriptionId}", subscriptionId)
        body["nextLink"] = log.next_link(cp.settings.base_url, path, version, filter_ or "", select, token)
    return JSONResponse(body)
