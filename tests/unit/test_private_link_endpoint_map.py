"""The endpoint map of a cluster in a private link scope, and the agents applying a changed one."""

from __future__ import annotations

import asyncio
from typing import Any

from halyard.agent.metrics import AgentMetrics
from halyard.agent.resourcesync import ResourceSync
from halyard.api.agents import ServiceEndpoints
from halyard.controlplane.agentfacing.arrival import PUBLIC
from halyard.controlplane.agentfacing.endpoints import EndpointMaps
from halyard.core.settings import Settings


def test_a_scope_member_gets_the_scopes_private_names() -> None:
    maps = EndpointMaps(Settings(domain="corp.example"))
    public = maps.for_cluster("/c", PUBLIC)
    private = maps.for_cluster("/c", PUBLIC, scope_uuid="1234")
    assert public.dp.startswith("https://") and "privatelink" not in public.dp
    assert private.dp == "https://1234.dp.privatelink.corp.example/dp"
    assert private.his == "https://1234.his.privatelink.corp.example/his"
    assert private.relay == "https://1234.relay.privatelink.corp.example/relay"
    assert private.management == private.login == "https://1234.management.privatelink.corp.example"
    assert private.agentAudience == public.agentAudience


def test_resource_sync_applies_a_changed_map_once() -> None:
    shared: list[ServiceEndpoints] = []

    async def share(endpoints: ServiceEndpoints) -> None:
        shared.append(endpoints)

    unused: Any = None
    sync = ResourceSync(unused, "https://cp/dp", unused, unused, AgentMetrics(), health=unused, share_endpoints=share)
    private = EndpointMaps(Settings()).for_cluster("/c", PUBLIC, scope_uuid="abcd")

    async def run() -> None:
        await sync._apply_endpoints(None)
        assert sync._url == "https://cp/dp/v1/heartbeat" and shared == []
        await sync._apply_endpoints(private)
        await sync._apply_endpoints(private)  # unchanged: nothing again

    asyncio.run(run())
    assert sync._url == "https://abcd.dp.privatelink.halyard.local/dp/v1/heartbeat"
    assert shared == [private]
