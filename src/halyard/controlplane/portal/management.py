"""The management API as the portal calls it: in process, through the whole ASGI stack (the same middleware,
authentication, RBAC and pipeline as any client), with the signed-in user's bearer token. No loopback socket,
no TLS, no second source of truth: a page shows what the API answers that user, errors included."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
from starlette.types import ASGIApp

CLUSTERS_API = "2026-05-01"
CONFIGURATION_API = "2024-11-01"
HYBRIDCOMPUTE_API = "2026-09-01"
AUTHORIZATION_API = "2022-04-01"
RESOURCES_API = "2021-04-01"
DIRECTORY_API = "2026-01-01"
CLUSTERS = "providers/Microsoft.Kubernetes/connectedClusters"


class ApiError(Exception):
    """An ARM error answer, kept as ARM wrote it: the page shows its status, code and message plainly."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status, self.code, self.message = status, code, message


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


class Management:
    """One client per server process, over the app's own ASGI callable."""

    def __init__(self, app: ASGIApp, base_url: str) -> None:
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url, timeout=30, follow_redirects=False
        )

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        form: dict[str, str] | None = None,
    ) -> Answer:
        """The API's answer; an error status raises ``ApiError`` with ARM's (or OAuth's) code and message."""
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        r = await self._http.request(method, path, params=params, json=json, data=form, headers=headers)
        body: Any = None
        if r.content:
            try:
                body = r.json()
            except ValueError:
                body = None
        if r.status_code >= 400:
            raise _error(r.status_code, body)
        return Answer(r.status_code, body if isinstance(body, dict) else {})

    async def close(self) -> None:
        await self._http.aclose()


def _error(status: int, body: Any) -> ApiError:
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return ApiError(status, str(error.get("code", "")), str(error.get("message", "")))
        if isinstance(error, str):  # OAuth's envelope (the token endpoint)
            return ApiError(status, error, str(body.get("error_description", "")))
    return ApiError(status, "Error", f"The management API answered {status}.")
