"""Where the agents dial now: one map per process that resource-sync keeps current, read by every agent at each dial.

Onboarding leaves a map in the cluster; the control plane may send another with a heartbeat (the cluster joined or
left a private link scope), or with a refusal (an agent dialled where the cluster is no longer served). In one
process (local mode) resource-sync sets ``LiveEndpoints`` and every agent's next dial follows; the map is kept in
the agents' state directory (``endpoints.json``), so a restarted process dials where it last went, not where
onboarding said (a private-only scope would refuse that first beat, and a renewal due meanwhile). In-cluster each
agent is its own pod: resource-sync publishes the map in a ConfigMap (``handoff.publish_endpoints``) and every other
pod runs ``EndpointsFollower``, which reads it into its own ``LiveEndpoints``; every pod, resource-sync's too, starts
from that ConfigMap (``follow_published``), so a restarted pod dials where the agents went last, as local agents do
from their file. No agent restarts.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Callable
from pathlib import Path

from lightkube import AsyncClient
from pydantic import ValidationError

from halyard.agent import handoff
from halyard.api.agents import EndpointMap, ServiceEndpoints, endpoints_version

log = logging.getLogger("halyard.agent")
FOLLOW_SECONDS = 10.0  # how often a pod re-reads the published map (one GET of a small ConfigMap)
KEPT_FILE = "endpoints.json"  # local mode: the map followed, in the agents' state directory

Url = str | Callable[[], str]  # a fixed base URL, or where to read the current one at each dial


def url_of(url: Url) -> str:
    """The base URL to dial now, without a trailing slash."""
    return (url() if callable(url) else url).rstrip("/")


class LiveEndpoints:
    """The map this process's agents follow: the onboarding one until another is set.

    With ``kept`` (local mode), each new map is written there (atomically) and read back at start: the map kept is
    followed only when it was followed from the same onboarding map (a cluster onboarded again starts afresh) and
    reads as a map; an unreadable file is logged and onboarding's map followed, never a reason not to start.
    """

    def __init__(self, initial: EndpointMap, kept: Path | None = None) -> None:
        self._map = initial
        self.version = endpoints_version(initial)
        self._onboarding = self.version
        self._kept = kept
        if kept is not None:
            restored = _read_kept(kept, self._onboarding)
            if restored is not None:
                self._follow(restored)
                log.info("following the endpoint map kept before the restart", extra={"dp": self._map.dp,
                         "version": self.version, "file": str(kept)})  # fmt: skip

    def current(self) -> EndpointMap:
        return self._map

    @property
    def onboarding(self) -> str:
        """The version of the onboarding map: what a kept or published map must have been followed from."""
        return self._onboarding

    def set(self, endpoints: ServiceEndpoints) -> bool:
        """Follow ``endpoints`` from now on (the tenant stays onboarding's); whether that changed anything."""
        if endpoints_version(endpoints) == self.version:
            return False
        self._follow(endpoints)
        log.info("following a new endpoint map", extra={"dp": self._map.dp, "version": self.version})
        if self._kept is not None:
            _write_kept(self._kept, self._onboarding, self._map)
        return True

    def _follow(self, endpoints: ServiceEndpoints) -> None:
        fields = {name: getattr(endpoints, name) for name in ServiceEndpoints.model_fields}
        self._map = EndpointMap(**fields, tenant=self._map.tenant)
        self.version = endpoints_version(endpoints)


def _read_kept(path: Path, onboarding: str) -> ServiceEndpoints | None:
    """The map kept in ``path`` if it was followed from the onboarding map ``onboarding``; None (said in the log
    when the file is there but unusable) otherwise."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        log.warning("the kept endpoint map cannot be read; following the onboarding map",
                    extra={"file": str(path), "error": str(exc)})  # fmt: skip
        return None
    try:
        kept = json.loads(raw)
        if not isinstance(kept, dict) or not isinstance(kept.get("endpoints"), dict):
            raise ValueError("not an object with an endpoints map")
        endpoints = ServiceEndpoints.model_validate(kept["endpoints"])
    except (ValueError, ValidationError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        log.warning("the kept endpoint map is corrupt; following the onboarding map",
                    extra={"file": str(path), "error": str(exc)[:300]})  # fmt: skip
        return None
    if kept.get("onboarding") != onboarding:
        log.info("the kept endpoint map was followed from another onboarding; following the onboarding map",
                 extra={"file": str(path)})  # fmt: skip
        return None
    return endpoints


def _write_kept(path: Path, onboarding: str, endpoints: EndpointMap) -> None:
    """Replace ``path`` atomically (a crash leaves the old map or the new one, never half of one). A failure is
    logged: the agents follow the map in memory all the same, and a restart starts from onboarding's again."""
    body = {"onboarding": onboarding, "endpoints": endpoints.model_dump(include=set(ServiceEndpoints.model_fields))}
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w", encoding="utf-8") as out:
            json.dump(body, out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except OSError as exc:
        log.warning("could not keep the endpoint map", extra={"file": str(path), "error": str(exc)})
        temporary.unlink(missing_ok=True)


class EndpointsFollower:
    """In-cluster, in every pod but resource-sync's: follow the map resource-sync publishes."""

    name = "endpoint-map"

    def __init__(self, kube: AsyncClient, live: LiveEndpoints, *, interval: float = FOLLOW_SECONDS) -> None:
        self._kube = kube
        self._live = live
        self._interval = interval

    async def reconcile(self) -> float:
        published = await handoff.published_endpoints(self._kube, self._live.onboarding)
        if published is not None:
            self._live.set(published)
        return self._interval


async def follow_published(kube: AsyncClient, live: LiveEndpoints) -> None:
    """In-cluster, at a pod's start: follow the map resource-sync published (from the same onboarding), so the
    pod's first dial goes where the agents went last, not where onboarding said (a private-only scope would refuse
    it). The ConfigMap outlives the pods; a pod's state directory does not. Unreadable: onboarding's map, logged."""
    try:
        published = await handoff.published_endpoints(kube, live.onboarding)
    except Exception as exc:
        log.warning("the published endpoint map cannot be read; following the onboarding map",
                    extra={"error": str(exc)[:300]})  # fmt: skip
        return
    if published is not None and live.set(published):
        log.info("following the endpoint map published before the restart", extra={"dp": live.current().dp})
