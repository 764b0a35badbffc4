"""Throw-away resource types, one of each placement, declared exactly as a real type is: a models class, a
behaviour, and one ``types.add`` line each. They show that ADR 001's claim holds for every placement (routes, ids,
lists, RBAC actions, provider listing, operations and delete cascade follow from the declaration alone), and the
resource contract suite runs them beside the real types.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from halyard.controlplane.arm.operations import Pending
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    Placement,
    PlainBehaviour,
    ResourceType,
    ResourceTypes,
    WriteContext,
)
from halyard.controlplane.catalog import declare_types
from halyard.controlplane.plane import TypeServices
from halyard.core.errors import Conflict
from halyard.store.models import Resource, ResourceReport

NAMESPACE = "Halyard.Throwaway"
EXTENSIONS = "Halyard.ThrowawayExtensions"
VERSIONS = ("2026-01-01",)
WIDGET_LIMIT = 3  # per subscription: a rule only a behaviour that sees the store can enforce
GATE_REPORTER = "gate"  # the "cluster" a gated widget waits on, played by the test writing its report row


class Body(BaseModel):
    model_config = ConfigDict(extra="ignore")
    location: str | None = Field(default=None, max_length=64)
    tags: dict[str, str] | None = None
    properties: dict[str, str] = Field(default_factory=dict)


class Patch(BaseModel):
    model_config = ConfigDict(extra="ignore")
    tags: dict[str, str] | None = None
    properties: dict[str, str] | None = None


class Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class LimitedWidgets(PlainBehaviour):
    """At most ``WIDGET_LIMIT`` widgets per subscription, counted in the write's own transaction."""

    def __init__(self) -> None:
        self.rtype: ResourceType | None = None

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert self.rtype is not None
        if existing is None:
            count = await ctx.count(self.rtype, subscription_id=ctx.resource_id.subscription_id)
            if count >= WIDGET_LIMIT:
                raise Conflict(
                    f"A subscription holds at most {WIDGET_LIMIT} widgets; delete one first.",
                    code="WidgetLimitReached",
                )
        return await super().desired(body, existing, ctx)


class GatedWidgets(PlainBehaviour):
    """Waits on a reporter as extensions wait on their cluster, when its properties ask (``waitFor: report``):
    provisioning until the report says ``installed`` (``failed`` fails it), deletion until it says ``released``
    (unless forced); ``locked: yes`` refuses a DELETE; a reported ``state`` is the provisioningState shown."""

    async def _report(self, resource: Resource, ctx: WriteContext) -> Mapping[str, Any] | None:
        row = await ctx.session.get(ResourceReport, (resource.id_key, GATE_REPORTER))
        return row.properties if row is not None else None

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        if resource.properties.get("waitFor") != "report":
            return
        report = await self._report(resource, ctx)
        if report is None or report.get("outcome") not in ("installed", "failed"):
            raise Pending("waiting for the reporter to install it", retry_after=0.05)
        if report["outcome"] == "failed":
            raise Conflict("The reporter could not install the widget.", code="ReportedFailure")

    def provisioning_state(self, resource: Resource, reported: Mapping[str, Any]) -> str:
        return str(reported.get("state") or resource.provisioning_state)

    async def check_delete(self, resource: Resource, ctx: WriteContext) -> None:
        if resource.properties.get("locked") == "yes":
            raise Conflict("The widget is locked; unlock it first.", code="WidgetLocked")

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        if resource.properties.get("waitFor") != "report" or ctx.force:
            return
        report = await self._report(resource, ctx)
        if report is None or report.get("outcome") != "released":
            raise Pending("waiting for the reporter to release it", retry_after=0.05)


def _type(name: str, placement: Placement, *, namespace: str = NAMESPACE, **kwargs: Any) -> ResourceType:
    return ResourceType(
        namespace=namespace,
        type_name=name,
        api_versions=VERSIONS,
        put_model=Body,
        patch_model=Patch,
        response_model=Out,
        behaviour=kwargs.pop("behaviour", PlainBehaviour()),
        name_pattern=re.compile(r"^[a-z0-9][-a-z0-9]{0,30}$"),
        name_rule="It must be 1-31 lower-case letters, digits and '-', starting with a letter or digit.",
        display=name,
        placement=placement,
        **kwargs,
    )


def declare_with_throwaways(services: TypeServices) -> ResourceTypes:
    """The server's own types, then one throw-away type of each placement."""
    types = declare_types(services)
    widgets = _type("widgets", Placement.GROUP)
    types.add(widgets)
    limited = LimitedWidgets()
    limited.rtype = _type("quotaWidgets", Placement.GROUP, behaviour=limited)
    types.add(limited.rtype)
    types.add(_type("gatedWidgets", Placement.GROUP, behaviour=GatedWidgets(), force_delete=True))
    types.add(_type("parts", Placement.CHILD, parent=widgets, requires_location=False))
    types.add(_type("subWidgets", Placement.SUBSCRIPTION))
    types.add(_type("tenantWidgets", Placement.TENANT))
    types.add(_type("addons", Placement.EXTENSION, namespace=EXTENSIONS, parent=widgets, requires_location=False))
    clusters = types.get("Microsoft.Kubernetes/connectedClusters")
    assert clusters is not None
    types.add(
        _type(
            "settings",
            Placement.EXTENSION,
            namespace=EXTENSIONS,
            parent=clusters,
            requires_location=False,
            rbac_type="Microsoft.Kubernetes/connectedClusters/settings",
            name_param="settingName",
        )
    )
    return types


def example(rtype_key: str) -> dict[str, Any]:
    """A valid PUT body for a throw-away type."""
    body: dict[str, Any] = {"properties": {"colour": "blue"}}
    if rtype_key.split("/")[-1] in ("widgets", "quotawidgets", "gatedwidgets", "subwidgets", "tenantwidgets"):
        body["location"] = "eastus"
    return body
