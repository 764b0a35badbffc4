"""Throw-away resource types, one of each placement, declared exactly as a real type is: a models class, a
behaviour, and one ``types.add`` line each. They show that ADR 001's claim holds for every placement (routes, ids,
lists, RBAC actions, provider listing, operations and delete cascade follow from the declaration alone), and the
resource contract suite runs them beside the real types.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

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
from halyard.store.models import Resource

NAMESPACE = "Halyard.Throwaway"
EXTENSIONS = "Halyard.ThrowawayExtensions"
VERSIONS = ("2026-01-01",)
WIDGET_LIMIT = 3  # per subscription: a rule only a behaviour that sees the store can enforce


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
    if rtype_key.split("/")[-1] in ("widgets", "quotawidgets", "subwidgets", "tenantwidgets"):
        body["location"] = "eastus"
    return body
