"""Bearer-token authentication for the management API, as a FastAPI dependency."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.plane import ControlPlane, plane
from halyard.core.errors import Unauthenticated

_bearer = HTTPBearer(
    auto_error=False, description="An access token from the login service for the management audience."
)


async def authenticated(
    request: Request,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
    cp: ControlPlane = Depends(plane),
) -> AuthorizedCaller:
    """The verified caller with its role assignments; 401 with ``WWW-Authenticate`` otherwise."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthenticated(
            "Authentication failed. The 'Authorization' header is missing or not a Bearer token.",
            code="AuthenticationFailed",
        )
    caller = await cp.tokens.verify(credentials.credentials, audience=cp.settings.audience)
    authorized = await cp.access.resolve(caller)
    request.state.caller = authorized
    return authorized
