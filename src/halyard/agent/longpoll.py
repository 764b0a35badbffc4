"""The long poll of a cluster's desired state from ``dp`` (decision 009), one way for every agent that has one
(extension-manager's extensions, config-agent's Flux configurations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from halyard.agent.controlplane import ControlPlaneError, send

if TYPE_CHECKING:
    from halyard.agent.resourcesync import TokenSource

TOKEN_WAIT_SECONDS = 30.0
# Asked of the server, which holds a poll at most its own ``long_poll_seconds`` (5 min by default, as a Kubernetes
# watch): an idle fleet then renews a poll per cluster every few minutes. Every proxy between must let an answer
# take this long (docs/operations.md).
HOLD_SECONDS = 300.0
BEYOND_HOLD_SECONDS = 30.0  # the client's own timeout past the hold: the server answers at the hold's end


async def poll_desired(
    http: httpx.AsyncClient, url: str, tokens: TokenSource, since: str | None, hold: float
) -> dict[str, Any] | None:
    """The desired state at ``url``, asked as the cluster: at once when nothing was seen yet (no ``since``), else
    held by the server up to ``hold`` seconds until it moves past ``since``; None when the hold ended with it still
    at ``since`` (``If-None-Match``: the server answers 304 and reads nothing). A refused token (401) is forgotten,
    so that the retry (the caller's backoff) is made with a new one."""
    await tokens.wait_ready(TOKEN_WAIT_SECONDS)
    token = await tokens.token()
    params: dict[str, Any] = {"wait": hold if since else 0}
    headers = {"Authorization": f"Bearer {token}"}
    if since:
        params["since"] = since
        headers["If-None-Match"] = f'"{since}"'
    try:
        return await send(http, "GET", url, params=params, headers=headers, timeout=hold + BEYOND_HOLD_SECONDS)
    except ControlPlaneError as exc:
        if exc.status == 304:
            return None
        if exc.status == 401:
            tokens.forget_token()
        raise
