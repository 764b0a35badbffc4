"""The external OpenID Connect providers users may sign in with, as the operator configures them: a JSON file named
by ``HALYARD_FEDERATION_FILE`` (it holds client secrets: keep it 0600, like the data directory)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

# Algorithms an id token may be signed with: asymmetric only (a symmetric one would make the client secret a
# signing key, and "none" no signature at all).
ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512")


class ClaimMapping(BaseModel):
    """Which claims of the id token give the Halyard user's sign-in name, e-mail, display name and groups."""

    model_config = ConfigDict(extra="forbid")
    user_name: str = "preferred_username"
    email: str = "email"
    display_name: str = "name"
    groups: str = "groups"


class GroupMapping(BaseModel):
    """How the provider's groups become Halyard groups: ``map`` (a provider group's claim value → a Halyard group's
    name or object id) first; then, with ``by_name``, a Halyard group of the same display name. A provider group
    that maps to no Halyard group is ignored (groups are never created by a sign-in). ``by_name`` is off unless
    asked for: where people may name their own groups at the provider, matching by name would let them pick
    Halyard's."""

    model_config = ConfigDict(extra="forbid")
    by_name: bool = False
    map: dict[str, str] = Field(default_factory=dict)


class Provider(BaseModel):
    model_config = ConfigDict(extra="forbid")
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,31}$", description="Short name, in URLs and on the button.")
    display_name: str = Field(min_length=1, max_length=64, description='"Sign in with <display_name>".')
    issuer: str = Field(description="The provider's issuer URL; its /.well-known/openid-configuration is read.")
    client_id: str = Field(min_length=1, max_length=256)
    client_secret: str = ""
    token_auth: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "profile", "email"])
    ca_file: Path | None = Field(default=None, description="CA bundle for the provider's TLS (default: system).")
    claims: ClaimMapping = Field(default_factory=ClaimMapping)
    groups: GroupMapping = Field(default_factory=GroupMapping)
    users: Literal["existing", "create"] = Field(
        default="existing",
        description="existing: only users an administrator created sign in (matched by user name); create: a user "
        "is created at their first sign-in (just in time), without a password.",
    )

    @field_validator("issuer")
    @classmethod
    def _https_issuer(cls, value: str) -> str:
        if not value.startswith("https://"):
            raise ValueError("the issuer must be an https:// URL (OpenID Connect Discovery §4)")
        return value.rstrip("/")

    @field_validator("scopes")
    @classmethod
    def _openid_scope(cls, value: list[str]) -> list[str]:
        return value if "openid" in value else ["openid", *value]


class FederationConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    providers: list[Provider] = Field(default_factory=list)

    def provider(self, provider_id: str) -> Provider | None:
        return next((p for p in self.providers if p.id == provider_id), None)


def load(path: Path | None) -> FederationConfig:
    """The configured providers (none without a file); ValueError naming the file and the field that is wrong."""
    if path is None:
        return FederationConfig()
    try:
        config = FederationConfig.model_validate_json(path.read_bytes())
    except (OSError, ValidationError) as exc:
        raise ValueError(f"federation file {path}: {exc}") from None
    ids = [p.id for p in config.providers]
    if len(ids) != len(set(ids)):
        raise ValueError(f"federation file {path}: provider ids must be unique")
    return config
