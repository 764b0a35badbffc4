"""What the Microsoft.HybridCompute types (gateways, their clusters' ``settings``, private link scopes) share: their
lenient request models (unknown and read-only fields ignored, as ARM does), their response model, and how they are
declared (PATCH answered synchronously in every api-version, as azure-mgmt-hybridcompute expects: it polls no PATCH).

A type states only what is its own (its properties model, name rule, behaviour, placement); a subclass of a generic
model keeps the type's own name in the OpenAPI document (``class GatewayPut(TrackedPut[GatewayProperties])``).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text
from halyard.controlplane.arm.resourcetypes import Behaviour, ResourceType
from halyard.controlplane.arm.tags import Tags


class Lenient(BaseModel):
    """A request model: fields it does not know (read-only ones a GET showed, newer api-versions') are ignored."""

    model_config = ConfigDict(extra="ignore")


P = TypeVar("P", bound=BaseModel)


class TrackedPut(Lenient, Generic[P]):
    """The PUT of a resource with a location (gateways, scopes)."""

    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    properties: P | None = None


class ProxyPut(Lenient, Generic[P]):
    """The PUT of a resource without a location (a cluster's ``settings``, a scope's connections)."""

    tags: Tags | None = None
    properties: P | None = None


class TaggedPatch(Lenient, Generic[P]):
    """A PATCH: tags, and properties merged by the type's behaviour."""

    tags: Tags | None = None
    properties: P | None = None


class ResourceOut(BaseModel):
    """What GET answers (the OpenAPI document's response schema)."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    properties: dict[str, object]


def hybrid_type(
    namespace: str,
    type_name: str,
    api_versions: Sequence[str],
    *,
    put_model: type[BaseModel],
    patch_model: type[BaseModel],
    behaviour: Behaviour,
    name_pattern: re.Pattern[str],
    name_rule: str,
    display: str,
    **declared: Any,
) -> ResourceType:
    """A HybridCompute-style type: ``ResourceOut`` answered, PATCH synchronous; ``declared`` is the rest of the
    ``ResourceType`` (placement, parent, RBAC prefix, route parameter) as the type needs."""
    return ResourceType(
        namespace=namespace,
        type_name=type_name,
        api_versions=api_versions,
        put_model=put_model,
        patch_model=patch_model,
        response_model=ResourceOut,
        behaviour=behaviour,
        name_pattern=name_pattern,
        name_rule=name_rule,
        display=display,
        sync_patch_versions=frozenset(api_versions),
        **declared,
    )
