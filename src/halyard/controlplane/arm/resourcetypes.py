"""The contract a resource type implements to plug into the one ARM resource pipeline."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from halyard.controlplane.arm.apiversions import newest_stable_first

if TYPE_CHECKING:
    from halyard.controlplane.plane import ControlPlane
    from halyard.store.models import Resource


@dataclass
class Desired:
    """What a validated PUT or PATCH asks the resource to become."""

    location: str | None
    tags: dict[str, str]
    properties: dict[str, Any]
    identity: dict[str, Any] | None = None
    kind: str | None = None
    sealed: dict[str, Any] | None = None  # secret values, stored encrypted, never rendered


class Behaviour(Protocol):
    """What differs between resource types; everything else is the pipeline's."""

    def desired(self, body: BaseModel, existing: Resource | None, api_version: str, cp: ControlPlane) -> Desired:
        """Validate a PUT body (read-only fields ignored) against the stored resource, if any."""
        ...

    def patched(self, body: BaseModel, existing: Resource, api_version: str, cp: ControlPlane) -> Desired:
        """Validate a PATCH body and merge it onto the stored resource."""
        ...

    def render_properties(self, resource: Resource, api_version: str, cp: ControlPlane) -> dict[str, Any]:
        """The ``properties`` a GET answers for this api-version (no secret values)."""
        ...

    async def provision(self, resource_id: str, cp: ControlPlane) -> None:
        """The asynchronous part of a create or update; idempotent."""
        ...

    async def deprovision(self, resource: Resource, cp: ControlPlane) -> None:
        """Undo what the resource holds outside its row (identities, ...); idempotent."""
        ...


@dataclass
class ResourceType:
    namespace: str
    type_name: str
    api_versions: Sequence[str]
    put_model: type[BaseModel]
    patch_model: type[BaseModel]
    response_model: type[BaseModel]
    behaviour: Behaviour
    name_pattern: re.Pattern[str]
    name_rule: str
    display: str
    locations: Sequence[str] | None = None  # None: every location the server offers
    sync_patch_versions: frozenset[str] = frozenset()
    requires_location: bool = True

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.type_name}"

    @property
    def key(self) -> str:
        return self.full_type.lower()


@dataclass
class Provider:
    namespace: str
    types: list[ResourceType] = field(default_factory=list)
    extra_types: list[tuple[str, Sequence[str]]] = field(default_factory=list)  # (type, api versions)


class ResourceTypes:
    """The registry: which providers and resource types this server serves."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self._types: dict[str, ResourceType] = {}

    def add(self, rtype: ResourceType) -> None:
        provider = self.providers.setdefault(rtype.namespace.lower(), Provider(rtype.namespace))
        provider.types.append(rtype)
        self._types[rtype.key] = rtype

    def add_extra(self, namespace: str, type_name: str, api_versions: Sequence[str]) -> None:
        provider = self.providers.setdefault(namespace.lower(), Provider(namespace))
        provider.extra_types.append((type_name, api_versions))

    def get(self, full_type: str) -> ResourceType | None:
        return self._types.get(full_type.lower())

    def provider(self, namespace: str) -> Provider | None:
        return self.providers.get(namespace.lower())

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def provider_body(
        self, provider: Provider, subscription_id: str, state: str, locations: list[str]
    ) -> dict[str, Any]:
        types = [
            {
                "resourceType": t.type_name,
                "locations": [display_location(x) for x in (t.locations or locations)],
                "apiVersions": newest_stable_first(t.api_versions),
                "defaultApiVersion": newest_stable_first(t.api_versions)[0],
                "capabilities": "SystemAssignedResourceIdentity",
            }
            for t in provider.types
        ]
        types += [
            {"resourceType": name, "locations": [], "apiVersions": newest_stable_first(versions)}
            for name, versions in provider.extra_types
        ]
        return {
            "id": f"/subscriptions/{subscription_id}/providers/{provider.namespace}",
            "namespace": provider.namespace,
            "registrationState": state,
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": types,
        }


_DISPLAY = {
    "eastus": "East US",
    "westus": "West US",
    "westeurope": "West Europe",
    "northeurope": "North Europe",
    "local": "Local",
}


def normalize_location(location: str) -> str:
    """'East US' and 'eastus' are the same location; ARM stores the short form."""
    return location.replace(" ", "").lower()


def display_location(location: str) -> str:
    return _DISPLAY.get(location, location)
