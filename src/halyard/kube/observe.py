"""Read a live cluster's facts (nodes and version) through lightkube."""

from __future__ import annotations

from typing import Any

from lightkube import AsyncClient
from lightkube.resources.core_v1 import Node

from halyard.kube.client import server_version
from halyard.kube.facts import ClusterFacts, cluster_facts


async def observe_cluster(client: AsyncClient) -> ClusterFacts:
    version = await server_version(client)
    nodes: list[dict[str, Any]] = [node.to_dict() async for node in client.list(Node)]
    return cluster_facts(version, nodes)
