"""Moving a connected cluster to another location (and resource group): Arc's manual region move as one re-runnable
procedure (``halyard connectedk8s move``).

Steps, each skipped when already done, so an interrupted move run again continues:

1. the old resource still exists (and is not already the moved one): the control plane snapshots its configuration
   resources (``snapshotConfiguration``: protected settings stay sealed in its store, never through this client);
   the agents' deployment is removed from the cluster; the old resource is deleted;
2. the cluster is connected as the new resource (``clusteronboarding``, as ``connect`` does) unless it is already,
   and the move waits for ``Connected``;
3. the snapshot is restored onto the new resource (``restoreConfiguration``: what is missing is created);
4. the move waits for every configuration resource to converge (provisioningState Succeeded or Failed);
5. the new LISTs are compared with the old ones (ids, times, identities aside); any difference is printed and fails
   the move, the snapshot kept; none: the snapshot is discarded.

Which configuration types move is the control plane's answer (every EXTENSION-placement type of
Microsoft.KubernetesConfiguration under connected clusters it serves), not a list here.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halyard.cli.agentplacement import remove_agents
from halyard.cli.clusteronboarding import Onboarding
from halyard.cli.connectedclusters import API_VERSION, cluster_id, prop
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.kubesession import KubeSession
from halyard.cli.profile import config_dir

MOVE_API_VERSION = "2026-01-01"  # the control plane's snapshotConfiguration and restoreConfiguration
TERMINAL = ("succeeded", "failed", "canceled")
AGENT_START_POLL_SECONDS = 1.0  # how often a restore refused for agents not yet started is asked again
# Moments that differ by nature between the two LISTs: statusUpdatedAt is when config-agent last reported a Flux
# configuration (the new resource's reports are new); sourceUpdatedAt, the source's own fetch, is compared.
VOLATILE = ("time", "lastModifiedAt", "createdAt", "statusUpdatedAt")


@dataclass
class MoveRequest:
    group: str
    name: str
    location: str
    new_group: str
    agent_mode: str | None = None
    registry: str | None = None
    timeout: int = 1200


@dataclass
class MoveResult:
    id: str
    location: str
    configuration: list[str] = field(default_factory=list)
    differences: list[str] = field(default_factory=list)
    steps: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "location": self.location,
            "configuration": self.configuration,
            "differences": self.differences,
            "steps": self.steps,
        }


class RegionMove:
    def __init__(self, inv: Invocation, kube: KubeSession, request: MoveRequest) -> None:
        self.inv = inv
        self.kube = kube
        self.request = request
        self.old_id = cluster_id(inv.subscription_id, request.group, request.name)
        self.new_id = cluster_id(inv.subscription_id, request.new_group, request.name)
        self.location = request.location.replace(" ", "").lower()
        # What GET showed of the old resource (no secret: GET has none), kept on this machine until the move ends, so
        # a re-run after the old resource is gone connects the new one with the same tags, distribution and options.
        self._memo = config_dir() / "moves" / (hashlib.sha256(self.old_id.lower().encode()).hexdigest()[:16] + ".json")
        self._old_body: dict[str, Any] | None = _read(self._memo)

    def _onboarding(self) -> Onboarding:
        return Onboarding(
            self.inv, self.kube, self.request.new_group, self.request.name, self.request.agent_mode,
            self.request.registry,
        )  # fmt: skip

    def run(self) -> MoveResult:
        result = MoveResult(self.new_id, self.location)
        old = self._get(self.old_id)
        same_id = self.old_id.lower() == self.new_id.lower()
        # Moved within its group already (a re-run): only a move started here knows, from its saved memo.
        moved_in_place = old is not None and same_id and old["location"] == self.location
        if moved_in_place and self._old_body is None:
            raise UsageError("The cluster is already in that location and resource group: nothing to move.")
        if old is not None and not moved_in_place:
            if not same_id and self._get(self.new_id) is not None:
                raise CliError(
                    f"{self.new_id} already exists while {self.old_id} does too: it is another cluster. Choose "
                    "another resource group, or delete it first.",
                    "ResourceAlreadyExists",
                )
            with self.inv.progress("Checking the new location"):
                self._onboarding().check_target(self.location)  # before anything changes
            self._leave(old, result)
        else:
            result.steps.append("the old resource is already gone: its snapshot is used")
            old = None
        new = self._get(self.new_id)
        if new is None or prop(new, "connectivityStatus") != "Connected":
            new = self._connect(old, result)
        with self.inv.progress("Recreating the configuration"):
            restored = self._restore(discard=False)
        created = [r["id"] for r in restored.get("restored", []) if r["status"] == "Created"]
        result.steps.append(f"configuration restored: {len(created)} created")
        types = restored.get("types", [])
        with self.inv.progress("Waiting for the configuration to converge"):
            current = self._converged(types, len(restored["resources"]))
        result.configuration = [f"{_short_type(r['type'])}/{r['name']}" for r in current]
        result.differences = compare(restored["resources"], current, self.old_id, self.new_id)
        if result.differences:
            for line in result.differences:
                self.inv.warn(line)
            raise CliError(
                "The cluster moved, but its configuration differs from before (above). The snapshot is kept: fix "
                "the resources, then run the same move again to compare once more.",
                "MoveDifferences",
            )
        self._restore(discard=True)
        self._memo.unlink(missing_ok=True)
        result.steps.append("compared: no difference; snapshot discarded")
        return result

    # ---- steps ---------------------------------------------------------------------------------------------------

    def _leave(self, old: dict[str, Any], result: MoveResult) -> None:
        self._old_body = old
        _write(self._memo, old)
        with self.inv.progress("Saving the configuration"):
            snapshot = self.inv.arm.call("POST", f"{self.old_id}/snapshotConfiguration", MOVE_API_VERSION)
        result.steps.append(f"configuration saved: {len(snapshot['resources'])} resources")
        with self.inv.progress("Removing the agents from the cluster"):
            removed = remove_agents(self.old_id, self.kube)
        result.steps.append("agents removed: " + (", ".join(removed) or "none were there"))
        with self.inv.progress("Deleting the old connected cluster"):
            first = self.inv.arm.request("DELETE", self.old_id, params={"api-version": API_VERSION})
            if first.status_code == 202:
                self.inv.arm.wait("DELETE", self.inv.arm.resource_url(self.old_id, API_VERSION), first)
        result.steps.append(f"deleted {self.old_id}")

    def _connect(self, old: dict[str, Any] | None, result: MoveResult) -> dict[str, Any]:
        """Connect the cluster as the new resource, with what the old one carried (tags, distribution, the agents'
        auto-upgrade, private link, its gateway); on a re-run, as the first run saw the old one."""
        old = old or self._old_body
        props = (old or {}).get("properties") or {}
        onboarding = self._onboarding()
        gateway = props.get("gateway") or {}
        if gateway.get("enabled") and gateway.get("resourceId"):
            onboarding.gateway = str(gateway["resourceId"])
        profile = props.get("arcAgentProfile") or {}
        scope = props.get("privateLinkScopeResourceId") if props.get("privateLinkState") == "Enabled" else None
        new = onboarding.run(
            location=self.location,
            tags=(old or {}).get("tags") or {},
            distribution=props.get("distribution"),
            distribution_version=props.get("distributionVersion"),
            infrastructure=props.get("infrastructure"),
            auto_upgrade=profile.get("agentAutoUpgrade", "Enabled") != "Disabled",
            timeout=self.request.timeout,
            wait=True,
            yes=True,  # the move was asked for; connect's own prompts would stop it half-way
            private_link_scope=scope,
        )
        result.steps.append(f"connected as {self.new_id} in {self.location}")
        return new

    def _restore(self, *, discard: bool) -> dict[str, Any]:
        """Recreate what the snapshot holds. Connected comes with the first heartbeat; the agents that act on the
        configuration (extension-manager, config-agent) are known from their first poll, a moment later, and a write
        is refused until then (AgentNotRunning): asked again until the move's timeout, as a restore is idempotent."""
        body = {"sourceClusterId": self.old_id, "discardSnapshot": discard}
        deadline = time.monotonic() + self.request.timeout
        while True:
            try:
                answer: dict[str, Any] = self.inv.arm.call(
                    "POST", f"{self.new_id}/restoreConfiguration", MOVE_API_VERSION, json=body
                )
                return answer
            except CliError as exc:
                if exc.code != "AgentNotRunning" or time.monotonic() > deadline:
                    raise
            time.sleep(AGENT_START_POLL_SECONDS)

    def _converged(self, types: list[dict[str, str]], expected: int) -> list[dict[str, Any]]:
        """The new cluster's configuration resources once each is in a final state (or the timeout names those
        still running)."""
        deadline = time.monotonic() + self.request.timeout
        current: list[dict[str, Any]] = []
        while True:
            current = []
            for t in types:
                namespace, type_name = t["type"].split("/", 1)
                current += self.inv.arm.list(f"{self.new_id}/providers/{namespace}/{type_name}", t["apiVersion"])
            running = [r["name"] for r in current if str(prop(r, "provisioningState")).lower() not in TERMINAL]
            if not running and len(current) >= expected:
                return current
            if time.monotonic() > deadline:
                raise CliError(
                    f"The configuration did not converge within {self.request.timeout} s: still running "
                    f"{', '.join(running) or '(some not created yet)'}. Run the same move again to continue.",
                    "MoveTimeout",
                )
            time.sleep(0.5)

    def _get(self, resource_id: str) -> dict[str, Any] | None:
        response = self.inv.arm.send("GET", resource_id, params={"api-version": API_VERSION})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            self.inv.arm.request("GET", resource_id, params={"api-version": API_VERSION})  # raises its ARM error
        body: dict[str, Any] = response.json()
        return body


def _read(path: Path) -> dict[str, Any] | None:
    try:
        value = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _write(path: Path, value: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_suffix(".tmp")
    with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as out:
        json.dump(value, out)
    tmp.replace(path)


def compare(before: list[dict[str, Any]], after: list[dict[str, Any]], old_id: str, new_id: str) -> list[str]:
    """What differs between the old LISTs and the new, one line each: a resource missing or new, or a property
    whose value changed. Ids are compared with the old cluster's id read as the new one's; moments, system data
    and identities (new principals by nature) are left out."""
    old = {_key(r): _comparable(r, old_id) for r in before}
    new = {_key(r): _comparable(r, new_id) for r in after}
    lines = [f"{key}: missing in the new location" for key in sorted(old.keys() - new.keys())]
    lines += [f"{key}: only in the new location" for key in sorted(new.keys() - old.keys())]
    for key in sorted(old.keys() & new.keys()):
        for path, was, now in _differences(old[key], new[key], ""):
            lines.append(f"{key}: {path}: {json.dumps(was)} -> {json.dumps(now)}")
    return lines


def _key(resource: dict[str, Any]) -> str:
    return f"{_short_type(resource['type'])}/{resource['name']}"


def _short_type(full_type: str) -> str:
    return full_type.split("/", 1)[-1]


def _comparable(resource: dict[str, Any], cluster: str) -> Any:
    """The resource with its cluster's id (any case) read as ``{cluster}``, and what differs by nature left out."""
    kept = {k: v for k, v in resource.items() if k not in ("id", "systemData", "identity")}
    text = re.sub(re.escape(cluster), "{cluster}", json.dumps(kept), flags=re.IGNORECASE)
    return _without_moments(json.loads(text))


def _without_moments(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_moments(v) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [_without_moments(v) for v in value]
    return value


def _differences(was: Any, now: Any, path: str) -> list[tuple[str, Any, Any]]:
    if isinstance(was, dict) and isinstance(now, dict):
        found = []
        for key in sorted(was.keys() | now.keys()):
            found += _differences(was.get(key), now.get(key), f"{path}.{key}" if path else key)
        return found
    return [] if was == now else [(path or "(whole)", was, now)]
