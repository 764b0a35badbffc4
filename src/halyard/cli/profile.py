"""The CLI's configuration directory: one login profile per server, the current server, cached tokens.

Layout of ``$HALYARD_CONFIG_DIR`` (default ``~/.halyard``; the directory is 0700, every file 0600)::

    config.json              {"current": "<server URL>"}
    profiles/<server>.json   server, tenant, clientId, clientSecret, caCert, audience, subscriptions, default
    tokens/<server>.json     {"accessToken", "expiresOn"}  (the cached access token)

As ``az`` keeps a service principal's secret in its config directory to refresh tokens, the profile holds the
secret; the file permissions are what protect it (see docs/cli.md).
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from halyard.cli.errors import CliError
from halyard.core.files import write_private

CONFIG_DIR_ENV = "HALYARD_CONFIG_DIR"


def config_dir() -> Path:
    return Path(os.environ.get(CONFIG_DIR_ENV) or Path.home() / ".halyard")


@dataclass
class Subscription:
    id: str
    name: str
    state: str
    tenantId: str
    homeTenantId: str
    managedByTenants: list[Any] = field(default_factory=list)


@dataclass
class Profile:
    server: str
    tenant: str
    clientId: str
    clientSecret: str
    audience: str
    caCert: str | None = None
    subscriptions: list[Subscription] = field(default_factory=list)
    default: str | None = None
    # A user signed in with a device code: their sign-in name and current refresh token (rotated on every use,
    # so the profile is rewritten each time it is spent); clientSecret is then empty.
    userName: str | None = None
    refreshToken: str | None = None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Profile:
        subs = [Subscription(**s) for s in data.get("subscriptions", [])]
        return cls(**{**data, "subscriptions": subs})

    def subscription(self, name_or_id: str | None) -> Subscription:
        """The subscription named or with that id, or the default one."""
        wanted = name_or_id or self.default
        for sub in self.subscriptions:
            if wanted and wanted.lower() in (sub.id.lower(), sub.name.lower()):
                return sub
        if name_or_id:
            raise CliError(
                f"Subscription '{name_or_id}' not found. Check the spelling and casing and try again.",
                "SubscriptionNotFound",
            )
        raise CliError(
            f"No subscription is available to {self.clientId} on {self.server}. Ask for a role assignment, "
            "then run 'halyard login' again.",
            "SubscriptionNotFound",
        )


@dataclass(frozen=True)
class CachedToken:
    access_token: str
    expires_on: float


def server_key(server: str) -> str:
    """A file name for a server URL: readable, one per origin and path."""
    parts = urlsplit(server)
    return re.sub(r"[^A-Za-z0-9.-]+", "_", (parts.netloc + parts.path).strip("/")) or "default"


class ProfileStore:
    """Reads and writes the configuration directory. Every write is atomic and owner-only."""

    def __init__(self, root: Path | None = None) -> None:
        self.root = root or config_dir()

    def _ensure_root(self) -> None:
        for directory in (self.root, self.root / "profiles", self.root / "tokens"):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)

    def _write(self, path: Path, data: dict[str, Any]) -> None:
        try:
            self._ensure_root()
            write_private(path, (json.dumps(data, indent=2, sort_keys=True) + "\n").encode())
        except OSError as exc:
            raise CliError(f"Cannot write {path}: {exc.strerror or exc}.", "ConfigNotWritable") from None

    def _read(self, path: Path) -> dict[str, Any] | None:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise CliError(f"Cannot read {path}: {exc}. Run 'halyard login' again.", "ConfigCorrupt") from None
        return data if isinstance(data, dict) else None

    def _profile_path(self, server: str) -> Path:
        return self.root / "profiles" / f"{server_key(server)}.json"

    def _token_path(self, server: str) -> Path:
        return self.root / "tokens" / f"{server_key(server)}.json"

    def current_server(self) -> str | None:
        data = self._read(self.root / "config.json")
        return str(data["current"]) if data and data.get("current") else None

    def set_current(self, server: str | None) -> None:
        self._write(self.root / "config.json", {"current": server})

    def profiles(self) -> list[Profile]:
        directory = self.root / "profiles"
        if not directory.is_dir():
            return []
        found = []
        for path in sorted(directory.glob("*.json")):
            data = self._read(path)
            if data:
                found.append(Profile.from_json(data))
        return found

    def load(self, server: str) -> Profile | None:
        data = self._read(self._profile_path(server))
        return Profile.from_json(data) if data else None

    def current(self) -> Profile:
        """The profile of the current server; an error telling the user to log in when there is none."""
        server = self.current_server()
        profile = self.load(server) if server else None
        if profile is None:
            raise CliError("Please run 'halyard login' to setup account.", "NotLoggedIn")
        return profile

    def save(self, profile: Profile) -> None:
        self._write(self._profile_path(profile.server), asdict(profile))

    def remove(self, server: str) -> bool:
        existed = False
        for path in (self._profile_path(server), self._token_path(server)):
            try:
                path.unlink()
                existed = True
            except FileNotFoundError:
                pass
        return existed

    def cached_token(self, server: str) -> CachedToken | None:
        data = self._read(self._token_path(server))
        if not data or "accessToken" not in data:
            return None
        return CachedToken(str(data["accessToken"]), float(data.get("expiresOn", 0)))

    def cache_token(self, server: str, token: CachedToken) -> None:
        self._write(self._token_path(server), {"accessToken": token.access_token, "expiresOn": token.expires_on})

    def forget_token(self, server: str) -> None:
        try:
            self._token_path(server).unlink()
        except FileNotFoundError:
            pass
