"""Request shapes of Microsoft.HybridCompute gateways and settings (api-versions of ``az arcgateway``
and of azure-mgmt-hybridcompute). What they share with the other HybridCompute types is ``arm/proxytypes.py``'s."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from halyard.api.text import Text
from halyard.controlplane.arm.proxytypes import Lenient, ProxyPut, TaggedPatch, TrackedPut

Feature = Annotated[Text, Field(min_length=1, max_length=64)]
ResourceIdText = Annotated[Text, Field(max_length=1024)]


class GatewayProperties(Lenient):
    gatewayType: Literal["Public"] | None = None
    allowedFeatures: list[Feature] | None = Field(default=None, max_length=16)


class GatewayPut(TrackedPut[GatewayProperties]):
    pass


class GatewayPatch(TaggedPatch[GatewayProperties]):
    pass


class GatewayProps(Lenient):
    gatewayResourceId: ResourceIdText | None = None


class SettingsProperties(Lenient):
    gatewayProperties: GatewayProps | None = None


class SettingsPut(ProxyPut[SettingsProperties]):
    pass


class SettingsPatch(TaggedPatch[SettingsProperties]):
    pass
