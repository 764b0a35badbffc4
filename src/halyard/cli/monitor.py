"""``halyard monitor activity-log list``: who wrote, deleted or did what to which resource, as
``az monitor activity-log list``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from halyard.cli import activitylog
from halyard.cli.context import Invocation

app = typer.Typer(help="Read the activity log.", no_args_is_help=True)
activity = typer.Typer(help="The activity log: writes, deletes and actions on resources.", no_args_is_help=True)
app.add_typer(activity, name="activity-log")
TABLE = (
    ("Time", "eventTimestamp"),
    ("Status", "status.value"),
    ("Operation", "operationName.value"),
    ("Caller", "caller"),
    ("ResourceId", "resourceId"),
    ("CorrelationId", "correlationId"),
)
Text = str | None


@activity.command("list")
def list_events(
    ctx: typer.Context,
    resource_id: Annotated[Text, typer.Option("--resource-id", help="Events of one resource (its full id).")] = None,
    resource_group: Annotated[Text, typer.Option("--resource-group", "-g", help="Events of one group.")] = None,
    correlation_id: Annotated[Text, typer.Option("--correlation-id", help="Events of one operation.")] = None,
    resource_provider: Annotated[
        Text, typer.Option("--resource-provider", help="Events of one provider's resources (Microsoft.Kubernetes).")
    ] = None,
    caller: Annotated[
        Text, typer.Option("--caller", help="Only this caller's events (sign-in name or app id).")
    ] = None,
    status: Annotated[Text, typer.Option("--status", help="Started, Accepted, Succeeded or Failed.")] = None,
    start_time: Annotated[Text, typer.Option("--start-time", help="Start of the window (ISO 8601; UTC).")] = None,
    end_time: Annotated[Text, typer.Option("--end-time", help="End of the window (ISO 8601; UTC).")] = None,
    offset: Annotated[str, typer.Option("--offset", help="Length of the window, ##d##h (default 6h).")] = "6h",
    max_events: Annotated[int, typer.Option("--max-events", min=1, help="At most this many events.")] = 50,
    select: Annotated[
        list[str] | None, typer.Option("--select", help="Only these properties of each event (repeatable).")
    ] = None,
) -> None:
    """List activity log events, newest first: by default the subscription's of the last 6 hours."""
    inv = Invocation.of(ctx)
    start, end = activitylog.window(
        dt.datetime.now(dt.UTC),
        activitylog.parse_moment(start_time, "--start-time") if start_time else None,
        activitylog.parse_moment(end_time, "--end-time") if end_time else None,
        activitylog.parse_offset(offset),
    )
    params = {
        "$filter": activitylog.build_filter(
            start, end, resource_id=resource_id, resource_group=resource_group, correlation_id=correlation_id,
            resource_provider=resource_provider, caller=caller, status=status,
        )
    }  # fmt: skip
    if select:
        params["$select"] = ",".join(select)
    path = activitylog.values_path(inv.subscription_id)
    events = inv.arm.list(path, activitylog.API_VERSION, params, limit=max_events)
    inv.emit(events, None if select else TABLE)
