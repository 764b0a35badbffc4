"""The Kubernetes client library the agents use (lightkube) lists, watches and server-side applies."""

from __future__ import annotations

import asyncio

import pytest
from lightkube import AsyncClient, KubeConfig
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import ConfigMap, Namespace, Node

from tests.sim.conftest import Sim

pytestmark = pytest.mark.e2e


async def test_list_watch_apply(sim: Sim) -> None:
    client = AsyncClient(KubeConfig.from_file(sim.clusters[-1].kubeconfig))
    try:
        nodes = [n async for n in client.list(Node)]
        assert sorted(n.metadata.name for n in nodes) == ["control-plane", "node-1", "node-2"]
        assert all(n.status.nodeInfo.kubeletVersion == "v1.31.2" for n in nodes)

        await client.create(Namespace(metadata=ObjectMeta(name="lk")))
        events: list[tuple[str, str]] = []

        opened = asyncio.Event()

        async def watch() -> None:
            async for kind, obj in client.watch(ConfigMap, namespace="lk"):
                if obj.metadata.name == "sentinel":
                    opened.set()
                    continue
                events.append((kind, obj.data["k"]))
                if len(events) == 3:
                    return

        watcher = asyncio.create_task(watch())
        await client.create(ConfigMap(metadata=ObjectMeta(name="sentinel", namespace="lk")))
        await asyncio.wait_for(opened.wait(), 10)  # the watch is open: what follows is seen through it
        cm = ConfigMap(metadata=ObjectMeta(name="agent", namespace="lk"), data={"k": "1"})
        applied = await client.apply(cm, field_manager="agent")
        assert applied.metadata.managedFields[0].manager == "agent"
        await client.apply(ConfigMap(metadata=ObjectMeta(name="agent", namespace="lk"), data={"k": "2"}),
                           field_manager="agent")  # fmt: skip
        await client.delete(ConfigMap, "agent", namespace="lk")
        await asyncio.wait_for(watcher, 10)
        assert events == [("ADDED", "1"), ("MODIFIED", "2"), ("DELETED", "2")]
    finally:
        await client.close()
