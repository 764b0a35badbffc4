"""What every management route shares: the error schema, JSON replies, auth dependencies."""

from typing import Annotated, Any

from fastapi import Depends
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.auth import authenticated
from halyard.controlplane.arm.pipeline import Reply
from halyard.controlplane.plane import ControlPlane, plane


class ErrorDetail(BaseModel):
    code: str
    message: str
    target: str | None = None
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    """The ARM error envelope."""

    error: ErrorDetail


ERRORS: dict[int | str, dict[str, Any]] = {code: {"model": ErrorResponse} for code in (400, 401, 403, 404, 409, 412)}

Caller = Annotated[AuthorizedCaller, Depends(authenticated)]
Plane = Annotated[ControlPlane, Depends(plane)]


def reply(r: Reply) -> Response:
    if r.body is None:
        return Response(status_code=r.status, headers=r.headers)
    return JSONResponse(r.body, status_code=r.status, headers=r.headers)
