"""The kubeconfig exec credential plugin's answer (``client.authentication.k8s.io/v1`` ExecCredential) and where its
token comes from: the profile's cached management token, refreshed only when it nears expiry.

kubectl runs the plugin once per process (every ``kubectl get``), so the cached path must import nothing heavy: this
module imports only the profile store; httpx and the token client are loaded only when a refresh is due. ``main``
serves the usual command line (:func:`fast`) before loading the command tree (typer, httpx, every command module:
about a second of imports).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from halyard.cli.errors import CliError
from halyard.cli.profile import CachedToken, Profile, ProfileStore

API_VERSION = "client.authentication.k8s.io/v1"
# As the CLI refreshes its own token (tokens.REFRESH_MARGIN_SECONDS, not imported: that module loads httpx).
REFRESH_MARGIN_SECONDS = 300


def exec_credential(token: str, expires_on: float) -> dict[str, Any]:
    """The ExecCredential kubectl reads from the plugin's stdout; it reuses the token until ``expirationTimestamp``
    (RFC 3339, UTC), then runs the plugin again."""
    stamp = datetime.fromtimestamp(int(expires_on), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "kind": "ExecCredential",
        "apiVersion": API_VERSION,
        "spec": {"interactive": False},
        "status": {"token": token, "expirationTimestamp": stamp},
    }


def fresh_enough(cached: CachedToken | None, now: float) -> bool:
    """Whether a cached token may still be handed out (more than the margin left)."""
    return cached is not None and cached.expires_on - now > REFRESH_MARGIN_SECONDS


def profile_for(store: ProfileStore, server: str | None) -> Profile:
    """The profile of ``server`` (a kubeconfig may pin the server it was made for), else the current one."""
    if server is None:
        return store.current()
    wanted = server.rstrip("/").lower()
    for profile in store.profiles():
        if profile.server.rstrip("/").lower() == wanted:
            return profile
    raise CliError(f"No login for {server}: run 'halyard login --server {server}' first.", "NotLoggedIn")


def current_token(store: ProfileStore, profile: Profile, *, now: float | None = None) -> CachedToken:
    """The profile's token: the cached one while fresh enough, else a new one (cached for the next call)."""
    cached = store.cached_token(profile.server)
    if fresh_enough(cached, time.time() if now is None else now):
        assert cached is not None
        return cached
    # The slow path: a token request (httpx, the profile's CA), as every other command refreshes.
    from halyard.cli.tokens import TokenProvider
    from halyard.cli.transport import Transport, tls_verify

    transport = Transport(tls_verify(profile.caCert))
    try:
        TokenProvider(store, profile, transport).token(force_refresh=True)
    finally:
        transport.close()
    refreshed = store.cached_token(profile.server)
    assert refreshed is not None
    return refreshed


def render(credential: dict[str, Any]) -> str:
    return json.dumps(credential) + "\n"


def fast(argv: Sequence[str]) -> int | None:
    """Serve ``get-token [--server URL] [--output|-o json]`` without the command tree; None: not that shape."""
    args = list(argv)
    if not args or args[0] != "get-token":
        return None
    server: str | None = None
    i = 1
    while i < len(args):
        name, eq, inline = args[i].partition("=")
        value = inline if eq else (args[i + 1] if i + 1 < len(args) else None)
        if name in ("--output", "-o") and value == "json":
            pass
        elif name == "--server" and value:
            server = value
        else:
            return None  # help, other options or values: the full parser says what is wrong
        i += 1 if eq else 2
    store = ProfileStore()
    try:
        token = current_token(store, profile_for(store, server))
    except CliError as exc:
        print(exc.line(), file=sys.stderr)
        return exc.exit_code
    sys.stdout.write(render(exec_credential(token.access_token, token.expires_on)))
    return 0
