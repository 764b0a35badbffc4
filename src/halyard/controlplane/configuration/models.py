"""Request and response shapes of Microsoft.KubernetesConfiguration/extensions (2023-05-01 … 2025-03-01).

Proxy resources: no location, no tags. Request models ignore unknown and read-only fields, as ARM does (a client
echoing a GET back sends ``provisioningState``, ``currentVersion`` and ``statuses``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from halyard.api.text import Text, storable
from halyard.controlplane.arm.tags import Tags

Short = Annotated[Text, Field(max_length=256)]
MAX_SETTINGS = 100


def _check_settings(settings: dict[str, str]) -> dict[str, str]:
    if len(settings) > MAX_SETTINGS:
        raise ValueError(f"at most {MAX_SETTINGS} settings are allowed")
    for key, value in settings.items():
        if not key or len(key) > 256 or len(value) > 16384:
            raise ValueError("a setting's name must have 1 to 256 characters and its value at most 16384")
        storable(key)
        storable(value)
    return settings


Settings = Annotated[dict[str, str], AfterValidator(_check_settings)]


class _Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")


class ClusterScope(_Lenient):
    releaseNamespace: Short | None = None


class NamespaceScope(_Lenient):
    targetNamespace: Short | None = None


class Scope(_Lenient):
    cluster: ClusterScope | None = None
    namespace: NamespaceScope | None = None


class Identity(_Lenient):
    type: Literal["SystemAssigned"] | None = None


class ExtensionProperties(_Lenient):
    extensionType: Short
    autoUpgradeMinorVersion: bool | None = None
    releaseTrain: Short | None = None
    version: Short | None = None
    autoUpgradeMode: Literal["none", "patch", "compatible"] | None = None
    scope: Scope | None = None
    configurationSettings: Settings | None = None
    configurationProtectedSettings: Settings | None = None


class ExtensionPatchProperties(_Lenient):
    autoUpgradeMinorVersion: bool | None = None
    releaseTrain: Short | None = None
    version: Short | None = None
    configurationSettings: dict[str, str | None] | None = Field(default=None, max_length=MAX_SETTINGS)
    configurationProtectedSettings: dict[str, str | None] | None = Field(default=None, max_length=MAX_SETTINGS)


class ExtensionPut(_Lenient):
    tags: Tags | None = None  # not in Arc's extension model; kept because every ARM resource can be tagged
    identity: Identity | None = None
    properties: ExtensionProperties


class ExtensionPatch(_Lenient):
    tags: Tags | None = None
    properties: ExtensionPatchProperties | None = None


class ExtensionStatus(BaseModel):
    code: str | None = None
    displayStatus: str | None = None
    level: str | None = None
    message: str | None = None
    time: str | None = None


class ExtensionOut(BaseModel):
    """What GET answers (the OpenAPI document's response shape); protected settings appear by name only."""

    id: str
    name: str
    type: str
    tags: dict[str, str] | None = None
    identity: dict[str, Any] | None = None
    systemData: dict[str, Any] | None = None
    properties: dict[str, Any]
