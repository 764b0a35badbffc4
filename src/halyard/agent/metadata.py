"""metadata-operator: keeps an up-to-date picture of the cluster (version, nodes, cores, distribution, infra)."""

from __future__ import annotations

import asyncio
import contextlib

from lightkube import AsyncClient

from halyard.agent import handoff
from halyard.kube.facts import ClusterFacts
from halyard.kube.observe import observe_cluster


class MetadataOperator:
    name = "metadata-operator"

    def __init__(self, kube: AsyncClient, interval: float, *, publish: bool = False) -> None:
        self._kube = kube
        self.interval = interval
        self._publish = publish
        self.latest: ClusterFacts | None = None
        self.ready = asyncio.Event()

    async def reconcile(self) -> float:
        facts = await observe_cluster(self._kube)
        if self._publish and facts != self.latest:
            await handoff.publish_facts(self._kube, facts)
        self.latest = facts
        self.ready.set()
        return self.interval

    async def facts(self, timeout: float) -> ClusterFacts | None:
        if not self.ready.is_set() and timeout > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.ready.wait(), timeout)
        return self.latest
