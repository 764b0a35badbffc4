"""The one exception hierarchy, mapped to ARM error codes and HTTP statuses in one place.

Handlers raise these; the HTTP layer turns them into ``{"error": {"code", "message"}}`` bodies.
"""

from __future__ import annotations

from typing import Any


class HalyardError(Exception):
    """An error a client should see, with its ARM code and HTTP status."""

    status: int = 400
    code: str = "BadRequest"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        target: str | None = None,
        details: list[dict[str, Any]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.target = target
        self.details = details or []
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.target:
            error["target"] = self.target
        if self.details:
            error["details"] = self.details
        return {"error": error}


class InvalidRequest(HalyardError):
    status = 400
    code = "InvalidRequestContent"


class InvalidResourceName(HalyardError):
    status = 400
    code = "InvalidResourceName"


class MissingApiVersion(HalyardError):
    status = 400
    code = "MissingApiVersionParameter"


class InvalidApiVersion(HalyardError):
    status = 400
    code = "InvalidApiVersionParameter"


class Unauthenticated(HalyardError):
    status = 401
    code = "AuthenticationFailed"


class InvalidAuthenticationToken(Unauthenticated):
    code = "InvalidAuthenticationToken"


class AuthorizationFailed(HalyardError):
    status = 403
    code = "AuthorizationFailed"


class NotFound(HalyardError):
    status = 404
    code = "ResourceNotFound"


class ResourceGroupNotFound(NotFound):
    code = "ResourceGroupNotFound"


class SubscriptionNotFound(NotFound):
    code = "SubscriptionNotFound"


class MethodNotAllowed(HalyardError):
    status = 405
    code = "MethodNotAllowed"


class Conflict(HalyardError):
    status = 409
    code = "Conflict"


class PreconditionFailed(HalyardError):
    status = 412
    code = "PreconditionFailed"


class UnsupportedMediaType(HalyardError):
    status = 415
    code = "UnsupportedMediaType"


class TooManyRequests(HalyardError):
    status = 429
    code = "TooManyRequests"


class ServiceUnavailable(HalyardError):
    status = 503
    code = "ServiceUnavailable"


class OAuthError(Exception):
    """An OAuth2 token-endpoint error, in the body shape MSAL understands (not the ARM envelope)."""

    def __init__(
        self,
        error: str,
        description: str,
        *,
        status: int = 400,
        aadsts: int = 0,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error = error
        self.description = description
        self.status = status
        self.aadsts = aadsts
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        prefix = f"AADSTS{self.aadsts}: " if self.aadsts else ""
        body: dict[str, Any] = {"error": self.error, "error_description": prefix + self.description}
        if self.aadsts:
            body["error_codes"] = [self.aadsts]
        return body
