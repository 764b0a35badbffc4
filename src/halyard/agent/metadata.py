"""metadata-operator: keeps an up-to-date picture of the cluster (version, nodes, cores, distribution, infra)."""

from __future__ import annotations

import asyncio

from lightkube import AsyncClient

from halyard.kube.facts import ClusterFacts
from halyard.kube.observe import observe_cluster


class MetadataOperator:
    name = "metadata-operator"

    def __init__(self, kube: AsyncClient, interval: float) -> None:
        self._kube = kube
        self.interval = interval
        self.facts: ClusterFacts | None = None
        self.ready = asyncio.Event()

    async def reconcile(self) -> float:
        self.facts = await observe_cluster(self._kube)
        self.ready.set()
        return self.interval
