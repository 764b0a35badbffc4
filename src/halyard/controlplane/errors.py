"""Turns every failure into the ARM error envelope (or OAuth2's, on the token endpoint). Never a traceback."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from halyard.core.errors import (
    HalyardError,
    InvalidRequest,
    MethodNotAllowed,
    NotFound,
    OAuthError,
    TooManyRequests,
    Unauthenticated,
)

log = logging.getLogger("halyard.errors")


def error_response(exc: HalyardError) -> JSONResponse:
    headers = dict(exc.headers)
    if isinstance(exc, Unauthenticated):
        headers.setdefault(
            "WWW-Authenticate",
            f'Bearer authorization_uri="", error="invalid_token", error_description="{exc.message}"',
        )
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


def _describe(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        loc = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body",))
        if error.get("type") == "json_invalid":
            return "The request content is not valid JSON."
        parts.append(f"{loc or 'body'}: {error.get('msg', 'invalid')}")
    return "The request content was invalid and could not be deserialized: " + "; ".join(parts)


def throttled_delay(exc: HalyardError, most: float) -> float:
    """How long a refusal's answer is held: a 429's, its ``Retry-After`` up to ``most`` seconds; any other, none.

    A client told to come back later that asks again at once (a cluster piling up certificate requests asked 280
    times a second on four keep-alive connections) spends the event loop's time on requests refused anyway; held,
    each of its connections asks at most once per delay. An honest client waits the ``Retry-After`` regardless."""
    if not isinstance(exc, TooManyRequests) or most <= 0:
        return 0.0
    retry_after = exc.headers.get("Retry-After", "")
    return min(most, float(retry_after)) if retry_after.isdigit() else most


def install_error_handlers(
    app: FastAPI,
    *,
    throttled_answer_delay: float = 0.0,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> None:
    @app.exception_handler(HalyardError)
    async def _halyard(_: Request, exc: HalyardError) -> JSONResponse:
        delay = throttled_delay(exc, throttled_answer_delay)
        if delay:
            await sleep(delay)
        return error_response(exc)

    @app.exception_handler(OAuthError)
    async def _oauth(_: Request, exc: OAuthError) -> JSONResponse:
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        return error_response(InvalidRequest(_describe(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 404:
            return error_response(
                NotFound(
                    f"No HTTP resource was found that matches the request URI '{request.url.path}'.",
                    code="NotFound",
                )
            )
        if exc.status_code == 405:
            return error_response(MethodNotAllowed(f"The method '{request.method}' is not allowed on this path."))
        return error_response(HalyardError(str(exc.detail), code="BadRequest"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        # The type only: the message of an arbitrary exception may carry request data.
        log.error("unhandled error", extra={"path": request.url.path, "error": type(exc).__name__})
        return JSONResponse(
            {
                "error": {
                    "code": "InternalServerError",
                    "message": "The server encountered an internal error.",
                }
            },
            status_code=500,
        )
