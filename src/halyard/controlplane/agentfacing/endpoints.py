"""Where agents reach each control-plane service: the one place that builds an endpoint map.

Every cluster gets its map from here, at onboarding (``GET /his/v1/endpoints``) and wherever the agents are told
again. Today every cluster and arrival gets the server's own base URL; private link (endpoint FQDNs of the
cluster's scope) and gateways (the gateway's URL) change what this returns, not the agents.
"""

from __future__ import annotations

from halyard.api.agents import ServiceEndpoints
from halyard.controlplane.agentfacing.arrival import Arrival
from halyard.controlplane.privatelink import names
from halyard.core.settings import Settings


def his_url(settings: Settings) -> str:
    return f"{settings.base_url}/his"


def dp_url(settings: Settings) -> str:
    return f"{settings.base_url}/dp"


def private_his_url(settings: Settings, scope_uuid: str) -> str:
    """``his`` under a private link scope's names (what its agents sign proofs for)."""
    return f"https://{names.fqdn(settings, scope_uuid, 'his')}/his"


class EndpointMaps:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def for_cluster(self, cluster_id: str | None, arrival: Arrival, scope_uuid: str | None = None) -> ServiceEndpoints:
        """The map for one cluster (None: a cluster still onboarding), as reached through ``arrival``; a cluster in
        a private link scope (``scope_uuid``, its privateLinkScopeId) gets the scope's private names."""
        if scope_uuid is not None:
            return self._private(scope_uuid)
        base = self._settings.base_url
        return ServiceEndpoints(
            management=base,
            login=base,
            his=his_url(self._settings),
            dp=dp_url(self._settings),
            agentAudience=self._settings.agent_audience,
            relay=self._settings.relay_url,
        )

    def _private(self, scope_uuid: str) -> ServiceEndpoints:
        def url(member: str, path: str = "") -> str:
            return f"https://{names.fqdn(self._settings, scope_uuid, member)}{path}"

        return ServiceEndpoints(
            management=url("management"),
            login=url("management"),
            his=private_his_url(self._settings, scope_uuid),
            dp=url("dp", "/dp"),
            agentAudience=self._settings.agent_audience,
            relay=url("relay", "/relay"),
        )
