"""Where the agents dial now: one map per process that resource-sync keeps current, read by every agent at each dial.

Onboarding leaves a map in the cluster; the control plane may send another with a heartbeat (the cluster joined or
left a private link scope), or with a refusal (an agent dialled where the cluster is no longer served). In one
process (local mode) resource-sync sets ``LiveEndpoints`` and every agent's next dial follows. In-cluster each agent
is its own pod: resource-sync publishes the map in a ConfigMap (``handoff.publish_endpoints``) and every other pod
runs ``EndpointsFollower``, which reads it into its own ``LiveEndpoints``. No agent restarts.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from lightkube import AsyncClient

from halyard.agent import handoff
from halyard.api.agents import EndpointMap, ServiceEndpoints, endpoints_version

log = logging.getLogger("halyard.agent")
FOLLOW_SECONDS = 10.0  # how often a pod re-reads the published map (one GET of a small ConfigMap)

Url = str | Callable[[], str]  # a fixed base URL, or where to read the current one at each dial


def url_of(url: Url) -> str:
    """The base URL to dial now, without a trailing slash."""
    return (url() if callable(url) else url).rstrip("/")


class LiveEndpoints:
    """The map this process's agents follow: the onboarding one until another is set."""

    def __init__(self, initial: EndpointMap) -> None:
        self._map = initial
        self.version = endpoints_version(initial)

    def current(self) -> EndpointMap:
        return self._map

    def set(self, endpoints: ServiceEndpoints) -> bool:
        """Follow ``endpoints`` from now on (the tenant stays onboarding's); whether that changed anything."""
        version = endpoints_version(endpoints)
        if version == self.version:
            return False
        fields = {name: getattr(endpoints, name) for name in ServiceEndpoints.model_fields}
        self._map = EndpointMap(**fields, tenant=self._map.tenant)
        self.version = version
        log.info("following a new endpoint map", extra={"dp": self._map.dp, "version": version})
        return True


class EndpointsFollower:
    """In-cluster, in every pod but resource-sync's: follow the map resource-sync publishes."""

    name = "endpoint-map"

    def __init__(self, kube: AsyncClient, live: LiveEndpoints, *, interval: float = FOLLOW_SECONDS) -> None:
        self._kube = kube
        self._live = live
        self._interval = interval

    async def reconcile(self) -> float:
        published = await handoff.published_endpoints(self._kube)
        if published is not None:
            self._live.set(published)
        return self._interval
