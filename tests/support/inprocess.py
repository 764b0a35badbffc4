"""Signing in to a control plane run in-process (ASGI transport, no TLS), as its admin or any principal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx


async def secret_token(client: httpx.AsyncClient, admin: dict[str, Any], client_id: str, secret: str) -> str:
    """An access token for the management audience, by client credentials."""
    r = await client.post(
        f"/{admin['tenant']}/oauth2/v2.0/token",
        data={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": secret,
            "scope": admin["audience"] + ".default",
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def sign_in_admin(client: httpx.AsyncClient, data_dir: Path) -> dict[str, Any]:
    """Sign ``client`` in as the admin of the server whose data directory this is; the admin's ``admin.json``."""
    admin: dict[str, Any] = json.loads((data_dir / "admin.json").read_text())
    token = await secret_token(client, admin, admin["clientId"], admin["clientSecret"])
    client.headers["Authorization"] = f"Bearer {token}"
    return admin
