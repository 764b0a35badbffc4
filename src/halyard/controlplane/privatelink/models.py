"""Request shapes of Microsoft.HybridCompute/privateLinkScopes and their endpoint connections."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from halyard.api.text import Text
from halyard.controlplane.arm.proxytypes import Lenient, ProxyPut, TaggedPatch, TrackedPut
from halyard.controlplane.network.models import ResourceIdText, Short


class ScopeProperties(Lenient):
    publicNetworkAccess: Literal["Enabled", "Disabled"] | None = None


class ScopePut(TrackedPut[ScopeProperties]):
    properties: ScopeProperties = Field(default_factory=ScopeProperties)


class ScopePatch(TaggedPatch[ScopeProperties]):
    pass


class EndpointRef(Lenient):
    id: ResourceIdText | None = None


class ConnectionState(Lenient):
    status: Literal["Pending", "Approved", "Rejected", "Disconnected"]
    description: Text | None = Field(default=None, max_length=1024)
    actionsRequired: Short | None = None


class ConnectionProperties(Lenient):
    privateEndpoint: EndpointRef | None = None
    privateLinkServiceConnectionState: ConnectionState


class ConnectionPut(ProxyPut[ConnectionProperties]):
    properties: ConnectionProperties


class ConnectionPatch(TaggedPatch[ConnectionProperties]):
    pass
