"""The endpoint map of a cluster in a private link scope, and the agents applying a changed one."""

from __future__ import annotations

from halyard.agent.endpoints import LiveEndpoints, url_of
from halyard.api.agents import EndpointMap, endpoints_version
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


def test_live_endpoints_follow_a_changed_map_once_and_keep_the_tenant() -> None:
    public = EndpointMaps(Settings()).for_cluster("/c", PUBLIC)
    live = LiveEndpoints(EndpointMap(**public.model_dump(), tenant="t1"))
    assert live.version == endpoints_version(public)  # what the agents echo: the server's digest of the same map
    private = EndpointMaps(Settings()).for_cluster("/c", PUBLIC, scope_uuid="abcd")
    assert live.set(private) and not live.set(private)
    assert live.current().dp == "https://abcd.dp.privatelink.halyard.local/dp" and live.current().tenant == "t1"
    assert live.version == endpoints_version(private) != endpoints_version(public)
    assert url_of(lambda: live.current().relay_url()) == "https://abcd.relay.privatelink.halyard.local/relay"
