"""The agent versions a control plane offers, and which one a cluster's agents should run (pure but for reading the installed version).

The catalog comes from the server setting ``agent_versions`` (``HALYARD_AGENT_VERSIONS``, comma-separated); the
highest version is the latest. A cluster's target follows ``arcAgentProfile`` as Azure Arc does: with
``agentAutoUpgrade`` Enabled (the default) the latest offered version, with it Disabled the pinned
``desiredAgentVersion`` if there is one, else none (the agents stay on what they run).

Also how versions compare (``0.2`` is ``0.2.0``) and which halyard is installed here (package metadata, the one
read beyond the arguments): what the agents' upgrade check and the CLI's ``connectedk8s upgrade`` share.
"""

from __future__ import annotations

import importlib
import importlib.metadata
from dataclasses import dataclass

from packaging.version import InvalidVersion, Version


@dataclass(frozen=True)
class AgentCatalog:
    versions: tuple[str, ...]  # as configured, highest first

    @classmethod
    def parse(cls, text: str) -> AgentCatalog:
        """``"0.1.0, 0.2.0"`` → the catalog; ValueError naming what is not a version."""
        parsed: dict[Version, str] = {}
        for item in (part.strip() for part in text.split(",")):
            if not item:
                continue
            try:
                parsed.setdefault(Version(item), item)
            except InvalidVersion:
                raise ValueError(
                    f"agent version {item!r} is not a version (expected e.g. 0.2.0); agent_versions is {text!r}"
                ) from None
        if not parsed:
            raise ValueError("agent_versions names no version: offer at least one (e.g. HALYARD_AGENT_VERSIONS=0.1.0)")
        return cls(tuple(parsed[v] for v in sorted(parsed, reverse=True)))

    @property
    def latest(self) -> str:
        return self.versions[0]

    def find(self, version: str) -> str | None:
        """The offered spelling of ``version`` (``0.2`` finds ``0.2.0``), or None when it is not offered."""
        try:
            wanted = Version(version)
        except InvalidVersion:
            return None
        return next((v for v in self.versions if Version(v) == wanted), None)

    def target(self, auto_upgrade: str | None, desired: str | None) -> str | None:
        """The version a cluster's agents should run; None: stay on the running one."""
        if (auto_upgrade or "Enabled") == "Enabled":
            return self.latest
        # A pin the catalog no longer offers is not followed: the agents stay put rather than chase a withdrawn one.
        return self.find(desired) if desired else None


def same_version(a: str, b: str) -> bool:
    try:
        return Version(a) == Version(b)
    except InvalidVersion:
        return a == b


def installed_version() -> str | None:
    """The halyard installed on this machine now (read fresh: a pip install since the agents started shows)."""
    importlib.invalidate_caches()
    try:
        return importlib.metadata.version("halyard")
    except importlib.metadata.PackageNotFoundError:
        return None
