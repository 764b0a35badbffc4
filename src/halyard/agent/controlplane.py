"""The agents' HTTPS client for the control plane: one connection pool, the onboarding CA, readable errors."""

from __future__ import annotations

import ssl
from typing import Any

import httpx

from halyard import __version__

USER_AGENT = f"halyard-agent/{__version__}"


class ControlPlaneError(Exception):
    """The control plane answered with an error (ARM or OAuth envelope), or could not be reached."""

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: str = "",
        retry_after: float | None = None,
        additional_info: list[dict[str, Any]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.retry_after = retry_after  # seconds the server asked us to wait (429/503), if it said
        self.additional_info = additional_info or []  # the ARM error's additionalInfo ({type, info})

    def info(self, kind: str) -> dict[str, Any] | None:
        """The ``info`` of the error's additionalInfo entry of this type, if any."""
        for entry in self.additional_info:
            if entry.get("type") == kind and isinstance(entry.get("info"), dict):
                info: dict[str, Any] = entry["info"]
                return info
        return None


def http_client(ca_bundle: str, *, timeout: float = 15.0, proxy: str | None = None) -> httpx.AsyncClient:
    """A client trusting ``ca_bundle`` (PEM) or, when empty, the system store. Proxies come from the environment,
    or ``proxy`` (arc-proxy, when a gateway or an enterprise proxy is set)."""
    verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else True
    return httpx.AsyncClient(verify=verify, timeout=timeout, headers={"User-Agent": USER_AGENT}, proxy=proxy)


async def send(
    http: httpx.AsyncClient, method: str, url: str, *, resend_on_close: bool = True, **kwargs: Any
) -> dict[str, Any]:
    """The JSON body of a 2xx answer; ControlPlaneError with the server's own words otherwise.

    A pooled connection the server (or a proxy between) closed as idle just as it was reused fails with no response
    at all: a clean close reads as ``RemoteProtocolError``, a close with the request unread as a reset
    (``ReadError``). Such a request (almost always) never reached the application, so it is sent once more on a
    fresh connection. Every agent call is safe to repeat: heartbeats are idempotent, a replayed client assertion is
    refused (the caller then mints a new one), and a replayed proof only certifies the same key again. A held long
    poll says ``resend_on_close=False``: its close is news to its caller (agent/longpoll.py).
    """
    try:
        try:
            response = await http.request(method, url, **kwargs)
        except (httpx.RemoteProtocolError, httpx.ReadError):
            if not resend_on_close:
                raise
            response = await http.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        raise ControlPlaneError(f"cannot reach {url}: {type(exc).__name__}: {exc}") from exc
    if response.is_success:
        body: dict[str, Any] = response.json()
        return body
    code, message = "", response.text[:300]
    additional: list[dict[str, Any]] = []
    try:
        payload = response.json()
        if isinstance(payload.get("error"), dict):
            code, message = payload["error"].get("code", ""), payload["error"].get("message", message)
            info = payload["error"].get("additionalInfo")
            additional = [x for x in info if isinstance(x, dict)] if isinstance(info, list) else []
        elif isinstance(payload.get("error"), str):
            code, message = payload["error"], payload.get("error_description", message)
    except ValueError:
        pass
    raise ControlPlaneError(
        f"{url}: {response.status_code} {code}: {message}",
        status=response.status_code,
        code=code,
        retry_after=_seconds(response.headers.get("Retry-After")),
        additional_info=additional,
    )


def _seconds(value: str | None) -> float | None:
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None
