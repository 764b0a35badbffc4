"""The long poll of a cluster's desired state from ``dp`` (decision 009), one way for every agent that has one
(extension-manager's extensions, config-agent's Flux configurations)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx

from halyard.agent.controlplane import ControlPlaneError, send

if TYPE_CHECKING:
    from halyard.agent.resourcesync import TokenSource

TOKEN_WAIT_SECONDS = 30.0


async def poll_desired(
    http: httpx.AsyncClient, url: str, tokens: TokenSource, since: str | None, hold: float
) -> dict[str, Any]:
    """The desired state at ``url``, asked as the cluster: at once when nothing was seen yet (no ``since``), else
    held by the server up to ``hold`` seconds until it moves past ``since``. A refused token (401) is forgotten, so
    that the retry (the caller's backoff) is made with a new one."""
    await tokens.wait_ready(TOKEN_WAIT_SECONDS)
    token = await tokens.token()
    params: dict[str, Any] = {"wait": hold if since else 0}
    if since:
        params["since"] = since
    try:
        return await send(
            http, "GET", url, params=params, headers={"Authorization": f"Bearer {token}"}, timeout=hold + 15
        )
    except ControlPlaneError as exc:
        if exc.status == 401:
            tokens.forget_token()
        raise
