"""The agents' side of configuration, under ``/dp``: long-poll the cluster's desired configuration, report back.

Every call carries an agent token; the cluster is the token's own, so an agent reads and reports only its cluster's
extensions (and their protected settings).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from halyard.api.text import Text
from halyard.controlplane.agentfacing.callers import AgentCaller, AgentRequest
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.configuration.agentpresence import CONFIG_AGENT, EXTENSION_MANAGER
from halyard.controlplane.configuration.delivery import EXTENSIONS, FLUX, GONE, HOLD_SECONDS, ConfigurationDelivery
from halyard.controlplane.configuration.extensions import NAMESPACE, REPORTER
from halyard.controlplane.plane import ControlPlane, control_plane
from halyard.core.errors import Unauthenticated
from halyard.store.models import Resource
from halyard.store.reports import Report, put_reports

router = APIRouter()
CONFIGURATIONS_PATH = "/v1/configurations"
REPORTS_PATH = "/v1/configurations/reports"
Short = Annotated[Text, Field(max_length=256)]


def delivery(request: Request) -> ConfigurationDelivery:
    value: ConfigurationDelivery = request.app.state.configuration
    return value


async def alive(cp: ControlPlane, agent: AgentCaller) -> str:
    """The calling cluster's key, once its identity is known alive (a deleted cluster's token reads nothing, even
    of a cluster created again under the same name)."""
    cluster_key = ResourceId.parse(agent.cluster_id).key
    identity = (await cp.his.live({agent.caller.object_id})).get(agent.caller.object_id)
    problem = cp.his.problem(identity, cp.clock.now())
    if problem is not None:
        raise problem
    if identity is None or identity.resource_key != cluster_key:
        raise Unauthenticated("This token's cluster identity belongs to another cluster.", code="ClusterMismatch")
    return cluster_key


async def _gone(request: Request) -> None:
    """Returns when the agent has gone (its connection closed): its waiter is freed at once."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return


def _unchanged_ok(request: Request, since: str | None) -> bool:
    """Whether the agent takes ``304 Not Modified`` for "still ``since``": it said ``If-None-Match`` with that
    version (agents before this answer expect a body every time, and get one)."""
    tags = request.headers.get("if-none-match")
    return since is not None and tags is not None and f'"{since}"' in {t.strip() for t in tags.split(",")}


async def _long_poll(
    request: Request, agent: AgentRequest, cluster_key: str, since: str | None, wait: float, kind: str
) -> Response:
    """One long poll of the cluster's desired ``kind`` (extensions or Flux configurations): the answer at once if
    not at ``since``, else when it changes or after ``wait`` (at most the server's ``long_poll_seconds``): 304 then,
    read from nothing, when the agent said ``If-None-Match``; 204 if the agent hung up first; 401 if its cluster
    was deleted meanwhile."""
    cp = control_plane(request)

    async def recheck() -> None:  # after a wake: its cluster may have been deleted
        await alive(cp, agent)

    # The agent hanging up ends the wait at once (its waiter place freed): the one task a held poll has.
    gone = asyncio.ensure_future(_gone(request))
    try:
        current = await delivery(request).wait(
            cluster_key, since, wait, kind, unchanged_ok=_unchanged_ok(request, since), recheck=recheck, gone=gone
        )
    finally:
        if not gone.done():
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone
    if current is GONE:
        return Response(status_code=204)  # nobody is listening any more
    if current is None:
        return Response(status_code=304, headers={"ETag": f'"{since}"', "Cache-Control": "no-store"})
    return JSONResponse(current, headers={"ETag": f'"{current["version"]}"', "Cache-Control": "no-store"})


@router.get(CONFIGURATIONS_PATH, operation_id="Dp_GetConfigurations")
async def get_configurations(
    request: Request,
    agent: AgentCaller,
    since: Annotated[str | None, Query(max_length=64)] = None,
    wait: Annotated[float, Query(ge=0)] = HOLD_SECONDS,
) -> Response:
    """The cluster's desired configuration: at once if not at ``since``, else when it changes or after ``wait``
    (held at most the server's ``long_poll_seconds``: a longer ``wait`` is not an error)."""
    cp = control_plane(request)
    cluster_key = await alive(cp, agent)
    # The cluster runs an extension-manager: from now on its extensions' writes are accepted (agentpresence.py).
    await delivery(request).presence.note(cp.db, cluster_key, agent.caller.object_id, EXTENSION_MANAGER, cp.clock.now())
    return await _long_poll(request, agent, cluster_key, since, wait, EXTENSIONS)


class ExtensionStatus(BaseModel):
    code: Short | None = None
    displayStatus: Short | None = None
    level: Short | None = None
    message: Annotated[Text, Field(max_length=4096)] | None = None
    time: Short | None = None


class ExtensionReport(BaseModel):
    currentVersion: Short | None = None
    installState: Short | None = None  # Installed, Failed, Pending, Uninstalled
    digest: Annotated[str, Field(max_length=64)] | None = None  # of the delivered entry acted on (api/extensions.py)
    statuses: list[ExtensionStatus] = Field(default_factory=list, max_length=16)


class ConfigurationReports(BaseModel):
    extensions: dict[Short, ExtensionReport] = Field(default_factory=dict, max_length=256)


@router.post(REPORTS_PATH, operation_id="Dp_ReportConfigurations", status_code=204)
async def report_configurations(request: Request, body: ConfigurationReports, agent: AgentCaller) -> Response:
    """What the cluster runs of its extensions; reports of extensions it does not have are ignored."""
    cp = control_plane(request)
    await alive(cp, agent)
    cluster = ResourceId.parse(agent.cluster_id)
    now = cp.clock.now()
    async with cp.db.transaction() as session:
        reports = []
        for name, report in body.extensions.items():
            rid = cluster.extension(NAMESPACE, "extensions", name)
            if await session.get(Resource, rid.key) is None:
                continue
            properties: dict[str, Any] = report.model_dump(exclude_none=True)
            reports.append(Report(rid.key, REPORTER, properties, now))
        await put_reports(session, reports)
        woken = await cp.operations.make_due(session, [r.id_key for r in reports])
    if woken:
        cp.operations.kick()
    return Response(status_code=204)


# ---- GitOps: config-agent's long poll and reports, flux-logs-agent's events (docs/gitops.md) ----------------------

FLUX_CONFIGURATIONS_PATH = "/v1/fluxConfigurations"
FLUX_REPORTS_PATH = "/v1/fluxConfigurations/reports"
FLUX_EVENTS_PATH = "/v1/fluxConfigurations/events"
Message = Annotated[Text, Field(max_length=4096)]


@router.get(FLUX_CONFIGURATIONS_PATH, operation_id="Dp_GetFluxConfigurations")
async def get_flux_configurations(
    request: Request,
    agent: AgentCaller,
    since: Annotated[str | None, Query(max_length=64)] = None,
    wait: Annotated[float, Query(ge=0)] = HOLD_SECONDS,
) -> Response:
    """The cluster's Flux and source-control configurations (config-agent's desired state), long-polled as
    ``/v1/configurations`` is, with a version of their own."""
    cp = control_plane(request)
    cluster_key = await alive(cp, agent)
    # The cluster runs a config-agent: from now on its configurations' writes are accepted and their writes and
    # deletes wait for its reports (agentpresence.py).
    await delivery(request).presence.note(cp.db, cluster_key, agent.caller.object_id, CONFIG_AGENT, cp.clock.now())
    return await _long_poll(request, agent, cluster_key, since, wait, FLUX)


class FluxCondition(BaseModel):
    type: Short
    status: Short
    reason: Short | None = None
    message: Message | None = None
    lastTransitionTime: Short | None = None


class FluxObjectRef(BaseModel):
    name: Short
    namespace: Short | None = None
    kind: Short


class FluxObjectStatus(BaseModel):
    name: Short
    namespace: Short | None = None
    kind: Short
    complianceState: Literal["Compliant", "Non-Compliant", "Pending", "Suspended", "Unknown"]
    appliedBy: FluxObjectRef | None = None
    statusConditions: list[FluxCondition] = Field(default_factory=list, max_length=8)
    helmReleaseProperties: None = None


class FluxConfigurationReport(BaseModel):
    name: Short
    kind: Literal["fluxConfiguration", "sourceControlConfiguration"] = "fluxConfiguration"
    state: Literal["Applied", "Failed", "Removed"]
    appliedGeneration: Short | None = None  # the etag of the write whose objects were applied
    complianceState: Literal["Compliant", "Non-Compliant", "Pending", "Suspended", "Unknown"] = "Pending"
    statuses: list[FluxObjectStatus] = Field(default_factory=list, max_length=200)
    sourceSyncedCommitId: Short | None = None
    sourceUpdatedAt: Short | None = None
    errorMessage: Message | None = None
    repositoryPublicKey: Annotated[Text, Field(max_length=4096)] | None = None


class FluxReports(BaseModel):
    configurations: list[FluxConfigurationReport] = Field(default_factory=list, max_length=500)


def _gitops_id(cluster: ResourceId, kind: str, name: str) -> ResourceId:
    type_name = "fluxConfigurations" if kind == "fluxConfiguration" else "sourceControlConfigurations"
    return cluster.extension(NAMESPACE, type_name, name)


@router.post(FLUX_REPORTS_PATH, operation_id="Dp_ReportFluxConfigurations", status_code=204)
async def report_flux_configurations(request: Request, body: FluxReports, agent: AgentCaller) -> Response:
    """config-agent's account of each configuration: objects applied (of which write), their compliance, or
    removed; reports of configurations the cluster does not have are ignored. Operations waiting on a report are
    woken."""
    from halyard.controlplane.configuration.fluxconfigs import REPORTER as FLUX_REPORTER

    cp = control_plane(request)
    await alive(cp, agent)
    cluster = ResourceId.parse(agent.cluster_id)
    now = cp.clock.now()
    async with cp.db.transaction() as session:
        reports = []
        for report in body.configurations:
            rid = _gitops_id(cluster, report.kind, report.name)
            if await session.get(Resource, rid.key) is None:
                continue
            properties: dict[str, Any] = report.model_dump(exclude_none=True, exclude={"name", "kind"})
            properties["statuses"] = [s.model_dump() for s in report.statuses]  # helmReleaseProperties: null
            properties["statusUpdatedAt"] = now.isoformat()
            reports.append(Report(rid.key, FLUX_REPORTER, properties, now))
        await put_reports(session, reports)
        woken = await cp.operations.make_due(session, [r.id_key for r in reports])
    if woken:
        cp.operations.kick()
    return Response(status_code=204)


class FluxEvent(BaseModel):
    configuration: Short
    kind: Literal["fluxConfiguration", "sourceControlConfiguration"] = "fluxConfiguration"
    objectKind: Short
    objectName: Short
    objectNamespace: Short | None = None
    type: Short | None = None  # Normal, Warning
    reason: Short | None = None
    message: Message
    time: Short | None = None
    count: int | None = Field(default=None, ge=0, le=10**9)


class FluxEvents(BaseModel):
    events: list[FluxEvent] = Field(default_factory=list, max_length=200)


EVENTS_KEPT = 200  # per configuration: the newest


@router.post(FLUX_EVENTS_PATH, operation_id="Dp_ReportFluxEvents", status_code=204)
async def report_flux_events(request: Request, body: FluxEvents, agent: AgentCaller) -> Response:
    """flux-logs-agent's batch of the Flux objects' events, kept (the newest ``EVENTS_KEPT``) per configuration
    in its own report row, which no GET of the configuration renders (``…/events`` reads it)."""
    from halyard.controlplane.configuration.fluxconfigs import LOGS_REPORTER
    from halyard.store.models import ResourceReport

    cp = control_plane(request)
    await alive(cp, agent)
    cluster = ResourceId.parse(agent.cluster_id)
    now = cp.clock.now()
    by_config: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for item in body.events:
        by_config.setdefault((item.kind, item.configuration), []).append(item.model_dump(exclude_none=True))
    async with cp.db.transaction() as session:
        reports = []
        for (kind, name), events in by_config.items():
            rid = _gitops_id(cluster, kind, name)
            if await session.get(Resource, rid.key) is None:
                continue
            row = await session.get(ResourceReport, (rid.key, LOGS_REPORTER))
            kept = list((row.properties or {}).get("events") or []) if row is not None else []
            for event in events:
                event.pop("configuration", None)
                event.pop("kind", None)
            merged = sorted([*kept, *events], key=lambda e: str(e.get("time") or ""))[-EVENTS_KEPT:]
            reports.append(Report(rid.key, LOGS_REPORTER, {"events": merged}, now))
        await put_reports(session, reports)
    return Response(status_code=204)
