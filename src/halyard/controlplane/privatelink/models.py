"""Request shapes of Microsoft.HybridCompute/privateLinkScopes and their endpoint connections."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text
from halyard.controlplane.arm.tags import Tags
from halyard.controlplane.network.models import ResourceIdText, Short


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ScopeProperties(_Lenient):
    publicNetworkAccess: Literal["Enabled", "Disabled"] | None = None


class ScopePut(_Lenient):
    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    properties: ScopeProperties = Field(default_factory=ScopeProperties)


class ScopePatch(_Lenient):
    tags: Tags | None = None
    properties: ScopeProperties | None = None


class EndpointRef(_Lenient):
    id: ResourceIdText | None = None


class ConnectionState(_Lenient):
    status: Literal["Pending", "Approved", "Rejected", "Disconnected"]
    description: Text | None = Field(default=None, max_length=1024)
    actionsRequired: Short | None = None


class ConnectionProperties(_Lenient):
    privateEndpoint: EndpointRef | None = None
    privateLinkServiceConnectionState: ConnectionState


class ConnectionPut(_Lenient):
    tags: Tags | None = None
    properties: ConnectionProperties


class ConnectionPatch(_Lenient):
    tags: Tags | None = None
    properties: ConnectionProperties | None = None


class ScopeOut(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    properties: dict[str, object]
