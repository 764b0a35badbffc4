"""api-version checking: every ARM call names one, and it must be one the resource type serves."""

from __future__ import annotations

from collections.abc import Sequence

from fastapi import Query, Request

from halyard.core.errors import InvalidApiVersion, MissingApiVersion


def require_api_version(request: Request, supported: Sequence[str], what: str) -> str:
    version = request.query_params.get("api-version")
    if not version:
        raise MissingApiVersion(
            "The api-version query parameter (?api-version=) is required for all requests. "
            f"Supported api-versions for {what} are '{', '.join(supported)}'."
        )
    for candidate in supported:
        if candidate.lower() == version.lower():
            return candidate
    raise InvalidApiVersion(
        f"The resource type '{what}' could not be found for api version '{version}'. "
        f"The supported api-versions are '{', '.join(supported)}'."
    )


def api_version_query(supported: Sequence[str]) -> object:
    """The OpenAPI declaration of the parameter; the value is checked by ``require_api_version``."""
    return Query(
        alias="api-version",
        description="The API version to use for this operation.",
        json_schema_extra={"enum": list(supported)},
    )


def newest_stable_first(versions: Sequence[str]) -> list[str]:
    """az takes the first non-preview entry of a provider's ``apiVersions``: list newest stable first."""
    stable = sorted((v for v in versions if "preview" not in v), reverse=True)
    preview = sorted((v for v in versions if "preview" in v), reverse=True)
    return stable + preview
