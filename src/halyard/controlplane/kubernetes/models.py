"""Request and response shapes of Microsoft.Kubernetes/connectedClusters (2021-10-01 … 2026-05-01).

Request models ignore unknown and read-only fields, as ARM does: ``az resource tag`` GETs and PUTs back the whole
resource, ``provisioningState`` included.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class Identity(_Lenient):
    type: Literal["SystemAssigned", "None"] = "SystemAssigned"


class AadProfile(_Lenient):
    enableAzureRBAC: bool | None = None
    adminGroupObjectIDs: list[str] | None = None
    tenantID: str | None = None


class SystemComponent(_Lenient):
    type: str | None = None
    userSpecifiedVersion: str | None = None
    majorVersion: int | None = None


class ArcAgentProfile(_Lenient):
    desiredAgentVersion: str | None = None
    agentAutoUpgrade: Literal["Enabled", "Disabled"] | None = None
    systemComponents: list[SystemComponent] | None = None


class Gateway(_Lenient):
    enabled: bool | None = None
    resourceId: str | None = None


class ArcAgentryConfiguration(_Lenient):
    feature: str = Field(min_length=1, max_length=64)
    settings: dict[str, str] | None = None
    protectedSettings: dict[str, str] | None = None


class OidcIssuerProfile(_Lenient):
    enabled: bool | None = None
    selfHostedIssuerUrl: str | None = None


class WorkloadIdentity(_Lenient):
    enabled: bool | None = None


class SecurityProfile(_Lenient):
    workloadIdentity: WorkloadIdentity | None = None


class ConnectedClusterProperties(_Lenient):
    agentPublicKeyCertificate: str = Field(
        description="Base64 DER of the agents' onboarding public key (RSA PKCS#1 as az sends it, or SPKI)."
    )
    distribution: str | None = Field(default=None, max_length=64)
    distributionVersion: str | None = Field(default=None, max_length=64)
    infrastructure: str | None = Field(default=None, max_length=64)
    privateLinkState: Literal["Enabled", "Disabled"] | None = None
    privateLinkScopeResourceId: str | None = None
    azureHybridBenefit: Literal["True", "False", "NotApplicable"] | None = None
    aadProfile: AadProfile | None = None
    arcAgentProfile: ArcAgentProfile | None = None
    gateway: Gateway | None = None
    arcAgentryConfigurations: list[ArcAgentryConfiguration] | None = None
    oidcIssuerProfile: OidcIssuerProfile | None = None
    securityProfile: SecurityProfile | None = None


class ConnectedClusterPut(_Lenient):
    location: str = Field(min_length=1, max_length=64)
    tags: dict[str, str] | None = None
    identity: Identity
    kind: Literal["ProvisionedCluster", "AWS", "GCP"] | None = None
    properties: ConnectedClusterProperties


class ConnectedClusterPatchProperties(_Lenient):
    distribution: str | None = Field(default=None, max_length=64)
    distributionVersion: str | None = Field(default=None, max_length=64)
    azureHybridBenefit: Literal["True", "False", "NotApplicable"] | None = None
    gateway: Gateway | None = None


class ConnectedClusterPatch(_Lenient):
    tags: dict[str, str] | None = None
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
