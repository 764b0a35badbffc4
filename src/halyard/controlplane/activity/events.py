"""Writing activity log events: one row per step of a request (Started, Accepted, then Succeeded or Failed), added to
the transaction of the change it describes, so an event is never written for a change that did not commit."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.identity.tokens import Caller
from halyard.store import Database
from halyard.store.models import ActivityEvent, Operation

# The RBAC action that lets a principal read a scope's events (Reader's */read grants it, as in Azure).
READ = "Microsoft.Insights/eventtypes/values/read"
# An event's end is stamped this much after its start when both are written at once, so that newest first (the
# order of the list) never shows an end before its start.
STEP = dt.timedelta(microseconds=1)
# ARM's words for an HTTP answer, as the activity log's subStatus and properties.statusCode show them.
STATUS_WORDS = {
    200: "OK",
    201: "Created",
    202: "Accepted",
    204: "NoContent",
    400: "BadRequest",
    403: "Forbidden",
    404: "NotFound",
    409: "Conflict",
    412: "PreconditionFailed",
    429: "TooManyRequests",
    500: "InternalServerError",
}


@dataclass(frozen=True)
class Actor:
    """Who a request ran as, as the activity log names them: a user by sign-in name, anyone else by app id."""

    name: str
    object_id: str
    kind: str  # User, ServicePrincipal, Cluster
    tenant_id: str


def actor_of(caller: Caller) -> Actor:
    return Actor(
        name=caller.user_name or caller.app_id,
        object_id=caller.object_id,
        kind=caller.kind,
        tenant_id=caller.tenant_id,
    )


@dataclass(frozen=True)
class Target:
    """Where an event belongs, read from a resource id (pure)."""

    resource_id: str
    subscription_id: str
    resource_group: str
    namespace: str
    resource_type: str


def target_of(resource_id: str) -> Target:
    """``/subscriptions/S/resourceGroups/G/providers/NS/t/n[/t2/n2]`` and the group and subscription ids themselves:
    the subscription, the group, the provider and type of the last ``providers`` segment."""
    parts = [p for p in resource_id.split("/") if p]
    subscription = group = ""
    if len(parts) >= 2 and parts[0].lower() == "subscriptions":
        subscription = parts[1]
    if len(parts) >= 4 and parts[2].lower() == "resourcegroups":
        group = parts[3]
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        at = len(lowered) - 1 - lowered[::-1].index("providers")
        namespace = parts[at + 1] if at + 1 < len(parts) else ""
        types = parts[at + 2 :: 2]
        resource_type = "/".join([namespace, *types])
    elif group:
        namespace, resource_type = "Microsoft.Resources", "Microsoft.Resources/subscriptions/resourceGroups"
    else:
        namespace, resource_type = "Microsoft.Resources", "Microsoft.Resources/subscriptions"
    return Target(resource_id, subscription.lower(), group, namespace, resource_type)


def event(
    *,
    at: dt.datetime,
    correlation_id: str,
    actor: Actor,
    resource_id: str,
    operation_name: str,
    http_method: str,
    status: str,
    status_code: int | None = None,
    error: dict[str, Any] | None = None,
) -> ActivityEvent:
    """One event row (pure: the caller adds it to its transaction)."""
    target = target_of(resource_id)
    properties: dict[str, Any] = {
        "eventCategory": "Administrative",
        "entity": resource_id,
        "message": operation_name,
        "hierarchy": f"{actor.tenant_id}/{target.subscription_id}".rstrip("/"),
    }
    word = STATUS_WORDS.get(status_code or 0, str(status_code or ""))
    if status_code is not None:
        properties["statusCode"] = word
    if error is not None:
        properties["statusMessage"] = {"error": error}
    return ActivityEvent(
        id=str(uuid.uuid4()),
        at=at,
        correlation_id=correlation_id,
        tenant_id=actor.tenant_id,
        subscription_id=target.subscription_id,
        group_key=target.resource_group.lower(),
        resource_group=target.resource_group,
        resource_id=resource_id,
        resource_key=resource_id.lower(),
        provider_key=target.namespace.lower(),
        resource_type=target.resource_type,
        operation_name=operation_name,
        status=status,
        sub_status=word if status != "Started" else "",
        level="Error" if status == "Failed" else "Informational",
        caller=actor.name,
        caller_id=actor.object_id,
        caller_type=actor.kind,
        http_method=http_method,
        properties=properties,
    )


def record_request(
    session: AsyncSession,
    *,
    at: dt.datetime,
    actor: Actor,
    resource_id: str,
    operation_name: str,
    http_method: str,
    status_code: int,
    error: dict[str, Any] | None = None,
    correlation_id: str | None = None,
) -> str:
    """A request that ended as it was answered (a synchronous write, a refused one): its Started event and its end,
    under one new correlation id (returned)."""
    correlation = correlation_id or str(uuid.uuid4())
    common: dict[str, Any] = dict(
        at=at, correlation_id=correlation, actor=actor, resource_id=resource_id, operation_name=operation_name,
        http_method=http_method,
    )  # fmt: skip
    session.add(event(**common, status="Started"))
    ended = "Failed" if status_code >= 400 else "Succeeded"
    common["at"] = at + STEP
    session.add(event(**common, status=ended, status_code=status_code, error=error))
    return correlation


def record_accepted(session: AsyncSession, op: Operation, actor: Actor, *, http_method: str, status_code: int) -> None:
    """An operation accepted: its Started and Accepted events (correlation id: the operation's id), the caller kept on
    the operation for the event of its end."""
    assert op.operation_name is not None
    op.caller, op.caller_id, op.caller_type, op.tenant_id = actor.name, actor.object_id, actor.kind, actor.tenant_id
    common: dict[str, Any] = dict(
        at=op.started_at, correlation_id=op.id, actor=actor, resource_id=op.target_id,
        operation_name=op.operation_name, http_method=http_method,
    )  # fmt: skip
    session.add(event(**common, status="Started"))
    common["at"] = op.started_at + STEP
    session.add(event(**common, status="Accepted", status_code=status_code))


def record_ended(session: AsyncSession, op: Operation) -> None:
    """An operation's end (in the transaction that marks it so), in the name of whoever asked for it. Operations
    without a recorded caller (accepted before the activity log existed) write nothing."""
    if op.operation_name is None or op.caller_id is None or op.ended_at is None:
        return
    actor = Actor(op.caller or "", op.caller_id, op.caller_type or "", op.tenant_id or "")
    failed = op.status != "Succeeded"
    session.add(
        event(
            at=max(op.ended_at, op.started_at + 2 * STEP),  # after its Accepted, even on a coarse clock
            correlation_id=op.id,
            actor=actor,
            resource_id=op.target_id,
            operation_name=op.operation_name,
            http_method=_method_of(op),
            status="Failed" if failed else "Succeeded",
            status_code=(_error_status(op.error) if failed else 200),
            error=op.error if failed else None,
        )
    )


def _method_of(op: Operation) -> str:
    """The HTTP method of the request that started an operation, from what it does (``resource/patch``) or else its
    ARM action's verb."""
    action = op.action.rsplit("/", 1)[-1].lower()
    if action in ("put", "patch", "delete", "force-delete"):
        return "DELETE" if "delete" in action else action.upper()
    verb = (op.operation_name or "").rsplit("/", 1)[-1].lower()
    return {"write": "PUT", "delete": "DELETE"}.get(verb, "POST")


def _error_status(error: dict[str, Any] | None) -> int:
    code = str((error or {}).get("code", ""))
    return {"Conflict": 409, "Canceled": 409, "BadRequest": 400, "NotFound": 404}.get(code, 500)


async def record_answered(
    db: Database,
    *,
    at: dt.datetime,
    caller: Caller,
    resource_id: str,
    operation_name: str,
    http_method: str,
    status_code: int = 200,
) -> None:
    """A request done by a service that commits its own change (a role assignment, a provider's registration) or
    changes nothing stored (listClusterUserCredential): its events, in a transaction of their own, once it has
    succeeded. A crash between the two loses the events, never the change."""
    async with db.transaction() as session:
        record_request(
            session, at=at, actor=actor_of(caller), resource_id=resource_id, operation_name=operation_name,
            http_method=http_method, status_code=status_code,
        )  # fmt: skip
