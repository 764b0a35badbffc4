"""The endpoint map of a cluster in a private link scope, and the agents applying a changed one."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.endpoints import KEPT_FILE, LiveEndpoints, url_of
from halyard.agent.options import AgentOptions
from halyard.agent.runner import live_endpoints
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


def _maps() -> tuple[EndpointMap, EndpointMap]:
    public = EndpointMaps(Settings()).for_cluster("/c", PUBLIC)
    private = EndpointMaps(Settings()).for_cluster("/c", PUBLIC, scope_uuid="abcd")
    return EndpointMap(**public.model_dump(), tenant="t1"), EndpointMap(**private.model_dump(), tenant="t1")


def test_local_agents_keep_the_followed_map_across_a_restart(tmp_path: Path) -> None:
    onboarding, private = _maps()
    kept = tmp_path / KEPT_FILE
    first = LiveEndpoints(onboarding, kept)
    assert not kept.exists()  # nothing followed yet: nothing kept
    assert first.set(private)
    assert [p.name for p in tmp_path.iterdir()] == [KEPT_FILE]  # replaced atomically: no temporary left
    restarted = LiveEndpoints(onboarding, kept)
    assert restarted.current() == private and restarted.version == first.version
    assert restarted.set(onboarding)  # leaving the scope is kept too
    assert LiveEndpoints(onboarding, kept).current() == onboarding
    # Onboarded again (another map from onboarding): what was kept belongs to the old cluster and is not followed.
    first.set(private)
    again = EndpointMap(**{**onboarding.model_dump(), "dp": "https://cp2.test/dp"})
    assert LiveEndpoints(again, kept).current() == again


@pytest.mark.parametrize(
    "content",
    [b"", b"{not json", b"\xff\xfe", b"[]", b'{"onboarding": "x"}', b'{"onboarding": "x", "endpoints": {"dp": 1}}'],
)
def test_a_corrupt_kept_map_falls_back_to_onboarding_and_says_so(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    onboarding, private = _maps()
    kept = tmp_path / KEPT_FILE
    kept.write_bytes(content)
    with caplog.at_level(logging.WARNING, logger="halyard.agent"):
        live = LiveEndpoints(onboarding, kept)
    assert live.current() == onboarding
    assert any("kept endpoint map is corrupt" in r.getMessage() for r in caplog.records), caplog.text
    assert live.set(private) and LiveEndpoints(onboarding, kept).current() == private  # and replaced by the next


def test_only_local_mode_keeps_the_map(tmp_path: Path) -> None:
    onboarding, _ = _maps()
    config = ClusterConfig("/c", onboarding, "", None)
    local = AgentOptions(kubeconfig=None, context=None, state_dir=tmp_path)
    assert live_endpoints(local, config)._kept == tmp_path / KEPT_FILE
    pod = AgentOptions(kubeconfig=None, context=None, state_dir=tmp_path, agents=("resource-sync",), in_cluster=True)
    assert live_endpoints(pod, config)._kept is None
