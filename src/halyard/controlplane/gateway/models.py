"""Request and response shapes of Microsoft.HybridCompute gateways and settings (api-versions of ``az arcgateway``
and of azure-mgmt-hybridcompute). Request models ignore unknown and read-only fields, as ARM does."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text
from halyard.controlplane.arm.tags import Tags

Feature = Annotated[Text, Field(min_length=1, max_length=64)]
ResourceIdText = Annotated[Text, Field(max_length=1024)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class GatewayProperties(_Lenient):
    gatewayType: Literal["Public"] | None = None
    allowedFeatures: list[Feature] | None = Field(default=None, max_length=16)


class GatewayPut(_Lenient):
    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    properties: GatewayProperties | None = None


class GatewayPatch(_Lenient):
    tags: Tags | None = None
    properties: GatewayProperties | None = None


class GatewayProps(_Lenient):
    gatewayResourceId: ResourceIdText | None = None


class SettingsProperties(_Lenient):
    gatewayProperties: GatewayProps | None = None


class SettingsPut(_Lenient):
    tags: Tags | None = None
    properties: SettingsProperties | None = None


class SettingsPatch(_Lenient):
    tags: Tags | None = None
    properties: SettingsProperties | None = None


class ResourceOut(BaseModel):
    """What GET answers (the OpenAPI document's response schema)."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    properties: dict[str, object]
