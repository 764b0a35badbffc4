"""Request and response shapes of Microsoft.Kubernetes/connectedClusters (2021-10-01 … 2026-05-01).

Request models ignore unknown and read-only fields, as ARM does: ``az resource tag`` GETs and PUTs back the whole
resource, ``provisioningState`` included.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from halyard.api.text import Text, storable
from halyard.controlplane.arm.tags import Tags

# Every string is storable text and every collection bounded: what a caller writes here, every reader of the
# subscription lists (lengths as ARM's for tags; generous elsewhere, never unbounded).
MAX_ITEMS = 64
Short = Annotated[Text, Field(max_length=256)]
ResourceIdText = Annotated[Text, Field(max_length=1024)]
MAX_SETTINGS = 64


def _check_settings(settings: dict[str, str]) -> dict[str, str]:
    if len(settings) > MAX_SETTINGS:
        raise ValueError(f"at most {MAX_SETTINGS} settings are allowed per feature")
    for key, value in settings.items():
        if len(key) > 256 or len(value) > 16384:
            raise ValueError("a setting's name may have at most 256 characters and its value 16384")
        storable(key)
        storable(value)
    return settings


FeatureSettings = Annotated[dict[str, str], AfterValidator(_check_settings)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Identity(_Lenient):
    type: Literal["SystemAssigned", "None"] = "SystemAssigned"


class AadProfile(_Lenient):
    enableAzureRBAC: bool | None = None
    adminGroupObjectIDs: list[Short] | None = Field(default=None, max_length=MAX_ITEMS)
    tenantID: Short | None = None


class SystemComponent(_Lenient):
    type: Short | None = None
    userSpecifiedVersion: Short | None = None
    majorVersion: int | None = Field(default=None, ge=0, le=1_000_000)


class ArcAgentProfile(_Lenient):
    desiredAgentVersion: Short | None = None
    agentAutoUpgrade: Literal["Enabled", "Disabled"] | None = None
    systemComponents: list[SystemComponent] | None = Field(default=None, max_length=MAX_ITEMS)


class Gateway(_Lenient):
    enabled: bool | None = None
    resourceId: ResourceIdText | None = None


class ArcAgentryConfiguration(_Lenient):
    feature: Text = Field(min_length=1, max_length=64)
    settings: FeatureSettings | None = None
    protectedSettings: FeatureSettings | None = None


class OidcIssuerProfile(_Lenient):
    enabled: bool | None = None
    selfHostedIssuerUrl: Text | None = Field(default=None, max_length=2048)


class WorkloadIdentity(_Lenient):
    enabled: bool | None = None


class SecurityProfile(_Lenient):
    workloadIdentity: WorkloadIdentity | None = None


class ConnectedClusterProperties(_Lenient):
    agentPublicKeyCertificate: Text = Field(
        max_length=16384,
        description="Base64 DER of the agents' onboarding public key (RSA PKCS#1 as az sends it, or SPKI).",
    )
    distribution: Text | None = Field(default=None, max_length=64)
    distributionVersion: Text | None = Field(default=None, max_length=64)
    infrastructure: Text | None = Field(default=None, max_length=64)
    privateLinkState: Literal["Enabled", "Disabled"] | None = None
    privateLinkScopeResourceId: ResourceIdText | None = None
    azureHybridBenefit: Literal["True", "False", "NotApplicable"] | None = None
    aadProfile: AadProfile | None = None
    arcAgentProfile: ArcAgentProfile | None = None
    gateway: Gateway | None = None
    arcAgentryConfigurations: list[ArcAgentryConfiguration] | None = Field(default=None, max_length=MAX_ITEMS)
    oidcIssuerProfile: OidcIssuerProfile | None = None
    securityProfile: SecurityProfile | None = None


class ConnectedClusterPut(_Lenient):
    location: Text = Field(min_length=1, max_length=64)
    tags: Tags | None = None
    identity: Identity
    kind: Literal["ProvisionedCluster", "AWS", "GCP"] | None = None
    properties: ConnectedClusterProperties


class ConnectedClusterPatchProperties(_Lenient):
    distribution: Text | None = Field(default=None, max_length=64)
    distributionVersion: Text | None = Field(default=None, max_length=64)
    azureHybridBenefit: Literal["True", "False", "NotApplicable"] | None = None
    gateway: Gateway | None = None


class ConnectedClusterPatch(_Lenient):
    tags: Tags | None = None
    properties: ConnectedClusterPatchProperties | None = None


class SystemData(BaseModel):
    createdBy: str | None = None
    createdByType: str | None = None
    createdAt: str | None = None
    lastModifiedBy: str | None = None
    lastModifiedByType: str | None = None
    lastModifiedAt: str | None = None


class IdentityOut(BaseModel):
    type: str
    principalId: str | None = None
    tenantId: str | None = None


class ConnectedClusterOut(BaseModel):
    """What GET answers (the OpenAPI document's response schema)."""

    model_config = ConfigDict(extra="allow")
    id: str
    name: str
    type: str
    location: str | None
    tags: dict[str, str]
    identity: IdentityOut | None = None
    kind: str | None = None
    systemData: SystemData
    properties: dict[str, object]


class CredentialRequest(BaseModel):
    authenticationMethod: Literal["AAD", "Token"]
    clientProxy: bool | None = None
