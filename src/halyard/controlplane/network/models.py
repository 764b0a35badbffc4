"""Request shapes of the Microsoft.Network subset (what ``az network …`` sends), lenient as ARM: read-only and
unknown fields are ignored, every string is storable text and every collection bounded."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text
from halyard.controlplane.arm.tags import Tags

MAX_ITEMS = 64
Short = Annotated[Text, Field(max_length=256)]
ResourceIdText = Annotated[Text, Field(min_length=1, max_length=1024)]
Prefix = Annotated[Text, Field(min_length=1, max_length=64)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class SubResource(_Lenient):
    id: ResourceIdText


class AddressSpace(_Lenient):
    addressPrefixes: list[Prefix] = Field(min_length=1, max_length=MAX_ITEMS)


class SubnetProperties(_Lenient):
    addressPrefix: Prefix | None = None
    addressPrefixes: list[Prefix] | None = Field(default=None, max_length=MAX_ITEMS)
    privateEndpointNetworkPolicies: Short | None = None


class InlineSubnet(_Lenient):
    name: Annotated[Text, Field(min_length=1, max_length=80)]
    properties: SubnetProperties = Field(default_factory=SubnetProperties)


class VirtualNetworkProperties(_Lenient):
    addressSpace: AddressSpace
    subnets: list[InlineSubnet] | None = Field(default=None, max_length=MAX_ITEMS)


class VirtualNetworkPut(_Lenient):
    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    properties: VirtualNetworkProperties


class SubnetPut(_Lenient):
    tags: Tags | None = None
    properties: SubnetProperties


class LinkServiceConnectionProperties(_Lenient):
    privateLinkServiceId: ResourceIdText
    groupIds: list[Short] | None = Field(default=None, max_length=MAX_ITEMS)
    requestMessage: Text | None = Field(default=None, max_length=140)


class LinkServiceConnection(_Lenient):
    name: Annotated[Text, Field(min_length=1, max_length=80)]
    properties: LinkServiceConnectionProperties


class CustomDnsConfig(_Lenient):
    fqdn: Short | None = None
    ipAddresses: list[Prefix] | None = Field(default=None, max_length=MAX_ITEMS)


class PrivateEndpointProperties(_Lenient):
    subnet: SubResource
    privateLinkServiceConnections: list[LinkServiceConnection] | None = Field(default=None, max_length=MAX_ITEMS)
    manualPrivateLinkServiceConnections: list[LinkServiceConnection] | None = Field(default=None, max_length=MAX_ITEMS)
    customNetworkInterfaceName: Short | None = None


class PrivateEndpointPut(_Lenient):
    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    properties: PrivateEndpointProperties


class ZoneConfigProperties(_Lenient):
    privateDnsZoneId: ResourceIdText


class ZoneConfig(_Lenient):
    name: Annotated[Text, Field(min_length=1, max_length=80)]
    properties: ZoneConfigProperties


class ZoneGroupProperties(_Lenient):
    privateDnsZoneConfigs: list[ZoneConfig] = Field(min_length=1, max_length=5)


class ZoneGroupPut(_Lenient):
    tags: Tags | None = None
    properties: ZoneGroupProperties


class PrivateDnsZonePut(_Lenient):
    location: Text | None = Field(default=None, max_length=64)
    tags: Tags | None = None
    # Nothing in properties is the caller's to set (maxNumberOf… are read-only): ignored.


class VirtualNetworkLinkProperties(_Lenient):
    virtualNetwork: SubResource
    registrationEnabled: bool | None = None


class VirtualNetworkLinkPut(_Lenient):
    location: Text | None = Field(default=None, max_length=64)
    tags: Tags | None = None
    properties: VirtualNetworkLinkProperties


class ARecord(_Lenient):
    ipv4Address: Prefix


class RecordSetProperties(_Lenient):
    ttl: int | None = Field(default=None, ge=0, le=2_147_483_647)
    aRecords: list[ARecord] | None = Field(default=None, max_length=MAX_ITEMS)
    metadata: dict[str, Short] | None = None


class RecordSetPut(_Lenient):
    tags: Tags | None = None
    properties: RecordSetProperties = Field(default_factory=RecordSetProperties)


class TagsPatch(_Lenient):
    tags: Tags | None = None


class NetworkOut(BaseModel):
    """What GET answers (the OpenAPI document's response schema)."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    properties: dict[str, object]


Status = Literal["Pending", "Approved", "Rejected", "Disconnected"]
