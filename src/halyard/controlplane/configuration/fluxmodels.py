"""Request and response shapes of Microsoft.KubernetesConfiguration/fluxConfigurations (2022-03-01 … 2025-04-01)
and of the older sourceControlConfigurations (Flux v1's API, 2021-03-01 … 2024-11-01).

Proxy resources: no location. Request models ignore unknown and read-only fields (a client echoing a GET back sends
``statuses``, ``complianceState``, ``provisioningState``); every string and collection is bounded. The rules that
span fields (one source, names, ``dependsOn``) are ``fluxrules.py``'s.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text
from halyard.controlplane.arm.tags import Tags
from halyard.controlplane.configuration.models import Settings

Short = Annotated[Text, Field(max_length=256)]
Url = Annotated[Text, Field(max_length=2048)]
Long = Annotated[Text, Field(max_length=16384)]  # known_hosts, CA certificates
Seconds = Annotated[int, Field(ge=1, le=35_000_000)]
MAX_KUSTOMIZATIONS = 64


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class RepositoryRef(_Lenient):
    branch: Short | None = None
    tag: Short | None = None
    semver: Short | None = None
    commit: Short | None = None


class GitRepository(_Lenient):
    url: Url | None = None
    timeoutInSeconds: Seconds | None = None
    syncIntervalInSeconds: Seconds | None = None
    repositoryRef: RepositoryRef | None = None
    sshKnownHosts: Long | None = None  # base64, as the CLI sends it
    httpsUser: Short | None = None
    httpsCACert: Long | None = None
    localAuthRef: Short | None = None
    provider: Literal["Azure", "Generic", "GitHub"] | None = None


class Bucket(_Lenient):
    url: Url | None = None
    bucketName: Short | None = None
    insecure: bool | None = None
    timeoutInSeconds: Seconds | None = None
    syncIntervalInSeconds: Seconds | None = None
    accessKey: Short | None = None
    localAuthRef: Short | None = None


class OciRepositoryRef(_Lenient):
    tag: Short | None = None
    semver: Short | None = None
    digest: Short | None = None


class OciRepository(_Lenient):
    url: Url | None = None
    timeoutInSeconds: Seconds | None = None
    syncIntervalInSeconds: Seconds | None = None
    repositoryRef: OciRepositoryRef | None = None
    insecure: bool | None = None
    serviceAccountName: Short | None = None
    localAuthRef: Short | None = None


class PostBuild(_Lenient):
    substitute: dict[Short, Long] | None = Field(default=None, max_length=100)


class Kustomization(_Lenient):
    path: Annotated[Text, Field(max_length=1024)] | None = None
    dependsOn: list[Short] | None = Field(default=None, max_length=MAX_KUSTOMIZATIONS)
    timeoutInSeconds: Seconds | None = None
    syncIntervalInSeconds: Seconds | None = None
    retryIntervalInSeconds: Seconds | None = None
    prune: bool | None = None
    force: bool | None = None
    wait: bool | None = None
    postBuild: PostBuild | None = None


class AzureBlob(_Lenient):
    """Accepted only to be refused with a reason (no Azure storage here)."""

    url: Url | None = None
    containerName: Short | None = None


class FluxConfigurationProperties(_Lenient):
    scope: Literal["cluster", "namespace"] | None = None
    namespace: Short | None = None
    sourceKind: Literal["GitRepository", "Bucket", "AzureBlob", "OCIRepository"] | None = None
    suspend: bool | None = None
    gitRepository: GitRepository | None = None
    bucket: Bucket | None = None
    azureBlob: AzureBlob | None = None  # refused by the rules with a clear reason
    ociRepository: OciRepository | None = None
    kustomizations: dict[Short, Kustomization | None] | None = Field(default=None, max_length=MAX_KUSTOMIZATIONS)
    configurationProtectedSettings: Settings | None = None
    waitForReconciliation: bool | None = None
    reconciliationWaitDuration: Short | None = None


class FluxConfigurationPut(_Lenient):
    tags: Tags | None = None  # not in Arc's model; kept because every ARM resource can be tagged (as extensions)
    properties: FluxConfigurationProperties


class FluxConfigurationPatchProperties(_Lenient):
    """A PATCH's properties: every field optional; a null kustomization removes it, as Arc's PATCH does."""

    sourceKind: Literal["GitRepository", "Bucket", "AzureBlob", "OCIRepository"] | None = None
    suspend: bool | None = None
    gitRepository: GitRepository | None = None
    bucket: Bucket | None = None
    ociRepository: OciRepository | None = None
    kustomizations: dict[Short, Kustomization | None] | None = Field(default=None, max_length=MAX_KUSTOMIZATIONS)
    configurationProtectedSettings: dict[Short, Long | None] | None = Field(default=None, max_length=100)


class FluxConfigurationPatch(_Lenient):
    tags: Tags | None = None
    properties: FluxConfigurationPatchProperties | None = None


class HelmOperatorProperties(_Lenient):
    chartVersion: Short | None = None
    chartValues: Long | None = None


class SourceControlProperties(_Lenient):
    repositoryUrl: Url
    operatorNamespace: Short | None = None
    operatorInstanceName: Short | None = None
    operatorType: Literal["Flux"] | None = None
    operatorParams: Long | None = None
    configurationProtectedSettings: Settings | None = None
    operatorScope: Literal["cluster", "namespace"] | None = None
    sshKnownHostsContents: Long | None = None
    enableHelmOperator: bool | None = None
    helmOperatorProperties: HelmOperatorProperties | None = None


class SourceControlPut(_Lenient):
    tags: Tags | None = None
    properties: SourceControlProperties


class SourceControlPatch(_Lenient):
    tags: Tags | None = None  # the API has no PATCH; the pipeline's generic one changes nothing of the spec


class ConfigurationOut(BaseModel):
    """What GET answers (the OpenAPI document's response shape); protected settings never appear."""

    id: str
    name: str
    type: str
    tags: dict[str, str] | None = None
    systemData: dict[str, Any] | None = None
    properties: dict[str, Any]
