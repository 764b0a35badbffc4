"""A client of the management API: bearer token, ARM error envelope, ``nextLink`` paging, long-running operations.

The token is attached only to URLs of the logged-in server, never to another origin a response points at.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

from halyard.cli.errors import CliError
from halyard.cli.tokens import TokenProvider
from halyard.cli.transport import Transport

TERMINAL_STATES = {"succeeded", "failed", "canceled", "cancelled"}
DEFAULT_POLL_SECONDS = 2.0
MAX_POLL_SECONDS = 60.0


def arm_error(response: httpx.Response) -> CliError:
    """The ARM error envelope (``{"error": {"code", "message"}}``) of a failed response, as a :class:`CliError`."""
    body: Any
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("code"):
        return CliError(str(error.get("message") or error["code"]), str(error["code"]), status=response.status_code)
    if isinstance(error, str):  # OAuth2 shape
        return CliError(str(body.get("error_description") or error), error, status=response.status_code)
    reason = response.reason_phrase or "Error"
    text = response.text.strip()[:300]
    message = f"{reason} (HTTP {response.status_code})" + (f": {text}" if text else "")
    return CliError(message, re.sub(r"\W", "", reason.title()) or "HttpError", status=response.status_code)


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def json_body(response: httpx.Response) -> Any:
    """The JSON body of a successful answer (``None`` when empty); an error line when it is not JSON."""
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        raise CliError(
            f"The server answered HTTP {response.status_code} with a body that is not JSON; is it a Halyard server?",
            "InvalidResponse",
        ) from None


class ArmClient:
    def __init__(self, transport: Transport, server: str, tokens: TokenProvider | None) -> None:
        self.transport = transport
        self.server = server.rstrip("/")
        self.tokens = tokens

    def url(self, path_or_url: str) -> str:
        """Absolute URLs stay; paths resolve against the server."""
        if urlsplit(path_or_url).scheme:
            return path_or_url
        return urljoin(self.server + "/", path_or_url.lstrip("/"))

    def resource_url(self, path: str, api_version: str) -> str:
        """The absolute URL of a resource with its api-version: what :meth:`wait` re-reads at the end."""
        return str(httpx.URL(self.url(path)).copy_merge_params({"api-version": api_version}))

    def is_ours(self, url: str) -> bool:
        a, b = urlsplit(url), urlsplit(self.server)
        return (a.scheme.lower(), a.netloc.lower()) == (b.scheme.lower(), b.netloc.lower())

    def send(
        self,
        method: str,
        path_or_url: str,
        *,
        params: dict[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """One request, whatever its status; the token is refreshed and the request retried once on a 401."""
        url = self.url(path_or_url)
        if params:
            url = str(httpx.URL(url).copy_merge_params(params))
        authorize = self.tokens is not None and self.is_ours(url)
        for attempt in range(2):
            all_headers = dict(headers or {})
            if authorize and self.tokens is not None:
                all_headers["Authorization"] = "Bearer " + self.tokens.token(force_refresh=attempt > 0)
            response = self.transport.send(method, url, json=json, content=content, headers=all_headers)
            if response.status_code != 401 or not authorize:
                break
        return response

    def request(self, method: str, path_or_url: str, **kwargs: Any) -> httpx.Response:
        """Like :meth:`send`, but a 4xx/5xx answer raises its ARM error."""
        response = self.send(method, path_or_url, **kwargs)
        if response.status_code >= 400:
            raise arm_error(response)
        return response

    def call(
        self, method: str, path: str, api_version: str, *, json: Any = None, params: dict[str, str] | None = None
    ) -> Any:
        """One request with ``api-version``; its JSON answer, or its ARM error raised."""
        return json_body(self.request(method, path, params={"api-version": api_version, **(params or {})}, json=json))

    def get(self, path: str, api_version: str, params: dict[str, str] | None = None) -> Any:
        return self.call("GET", path, api_version, params=params)

    def list(
        self, path: str, api_version: str, params: dict[str, str] | None = None, *, limit: int | None = None
    ) -> list[Any]:
        """Every item of a list, following ``nextLink`` to the end (or until ``limit`` items)."""
        page = self.get(path, api_version, params)
        items: list[Any] = []
        seen: set[str] = set()
        while True:
            items += (page or {}).get("value", [])
            next_link = (page or {}).get("nextLink")
            if limit is not None and len(items) >= limit:
                return items[:limit]
            if not next_link or next_link in seen:
                return items
            seen.add(next_link)
            page = json_body(self.request("GET", next_link))

    def wait(
        self, method: str, resource_url: str, first: httpx.Response, sleep: Callable[[float], None] = time.sleep
    ) -> Any:
        """Poll a long-running operation to its end (Azure-AsyncOperation, then Location, then provisioningState).

        ``resource_url`` is the resource's absolute URL with its api-version (:meth:`resource_url`). Returns the
        final resource body (``None`` for a delete). A failed or canceled operation raises its error.
        """
        async_url = first.headers.get("Azure-AsyncOperation")
        location = first.headers.get("Location")
        delay = _retry_after(first)
        if async_url:
            self._poll_status(async_url, delay, sleep)
            if method == "DELETE":
                return None
            # PUT ends on the resource itself; PATCH and POST on their Location (final-state-via location).
            return _json(self.request("GET", resource_url if method == "PUT" or not location else location))
        if location and first.status_code == 202:
            return self._poll_location(location, delay, sleep)
        body = _json(first)
        state = _provisioning_state(body)
        while method != "DELETE" and state is not None and state.lower() not in TERMINAL_STATES:
            sleep(delay)
            body = _json(self.request("GET", resource_url))
            state = _provisioning_state(body)
        if state is not None and state.lower() in TERMINAL_STATES - {"succeeded"}:
            raise CliError(f"The operation ended in state {state}.", "OperationFailed")
        return body

    def _poll_status(self, url: str, delay: float, sleep: Callable[[float], None]) -> None:
        while True:
            sleep(delay)
            response = self.request("GET", url)
            body = _json(response) or {}
            status = str(body.get("status", "")).lower()
            if status in TERMINAL_STATES:
                if status != "succeeded":
                    error = body.get("error") or {}
                    raise CliError(
                        str(error.get("message") or f"The operation ended with status {body.get('status')}."),
                        str(error.get("code") or "OperationFailed"),
                    )
                return
            delay = _retry_after(response, delay)

    def _poll_location(self, url: str, delay: float, sleep: Callable[[float], None]) -> Any:
        while True:
            sleep(delay)
            response = self.request("GET", url)
            if response.status_code != 202:
                return _json(response)
            delay = _retry_after(response, delay)


def _provisioning_state(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("properties"), dict):
        state = body["properties"].get("provisioningState")
        return str(state) if state is not None else None
    return None


def _retry_after(response: httpx.Response, default: float = DEFAULT_POLL_SECONDS) -> float:
    value = response.headers.get("Retry-After")
    try:
        return min(max(float(value), 0.0), MAX_POLL_SECONDS) if value is not None else default
    except ValueError:
        return default
