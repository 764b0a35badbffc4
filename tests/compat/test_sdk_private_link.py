"""azure-mgmt-hybridcompute 10.0.0 (the SDK connectedk8s validates scopes with) against a running control plane:
CRUD of private link scopes, the link resources, and approving a pending endpoint connection as an LRO."""

from __future__ import annotations

import time
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.hybridcompute import HybridComputeManagementClient

from tests.api.helpers import group_path, make_group
from tests.compat.recipes import recipe
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def test_scopes_crud_and_a_connection_approved(server: ServerProcess) -> None:
    clients: dict[str, Any] = {"admin": server.admin}
    exec(recipe("python"), clients)
    options = {"base_url": clients["server"], "credential_scopes": [server.admin["audience"] + ".default"],
               "connection_verify": clients["ca"]}  # fmt: skip
    client = HybridComputeManagementClient(clients["credential"], server.admin["subscription"], **options)
    group = make_group(server)
    scopes = client.private_link_scopes

    created = scopes.create_or_update(
        group, "sdk-scope", {"location": "eastus", "properties": {"publicNetworkAccess": "Disabled"}}
    )
    assert created.name == "sdk-scope" and created.properties.public_network_access == "Disabled"
    assert created.properties.private_link_scope_id
    assert scopes.get(group, "sdk-scope").location == "eastus"
    assert scopes.update_tags(group, "sdk-scope", {"tags": {"by": "sdk"}}).tags == {"by": "sdk"}
    assert "sdk-scope" in {s.name for s in scopes.list_by_resource_group(group)}
    assert "sdk-scope" in {s.name for s in scopes.list()}

    links = list(client.private_link_resources.list_by_private_link_scope(group, "sdk-scope"))
    assert [x.properties.group_id for x in links] == ["hybridcompute"]
    assert links[0].properties.required_zone_names == ["privatelink.halyard.local"]

    # A manual endpoint (as az network private-endpoint create --manual-request sends it) leaves a Pending connection.
    scope_id = f"{group_path(server, group)}/providers/Microsoft.HybridCompute/privateLinkScopes/sdk-scope"
    with server.client() as c:
        vnet = f"{group_path(server, group)}/providers/Microsoft.Network/virtualNetworks/v"
        body = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.5.0.0/16"]},
                "subnets": [{"name": "s", "properties": {"addressPrefix": "10.5.0.0/24"}}]}}  # fmt: skip
        assert c.put(vnet, params={"api-version": "2025-07-01"}, json=body).status_code == 201
        _wait_subnet(c, f"{vnet}/subnets/s")
        request = {"name": "m", "properties": {"privateLinkServiceId": scope_id, "groupIds": ["hybridcompute"]}}
        body = {"location": "eastus", "properties": {"subnet": {"id": f"{vnet}/subnets/s"},
                "manualPrivateLinkServiceConnections": [request]}}  # fmt: skip
        pe = f"{group_path(server, group)}/providers/Microsoft.Network/privateEndpoints/pe"
        r = c.put(pe, params={"api-version": "2026-01-01"}, json=body)
        assert r.status_code == 201, r.text
    connections = client.private_endpoint_connections
    (pending,) = connections.list_by_private_link_scope(group, "sdk-scope")
    assert pending.properties.private_link_service_connection_state.status == "Pending"
    approved = connections.begin_create_or_update(
        group, "sdk-scope", pending.name,
        {"properties": {"privateLinkServiceConnectionState": {"status": "Approved", "description": "by sdk"}}},
    ).result()  # fmt: skip
    assert approved.properties.private_link_service_connection_state.status == "Approved"
    assert connections.get(group, "sdk-scope", pending.name).properties.private_endpoint.id.endswith("/pe")

    scopes.begin_delete(group, "sdk-scope").result()
    with pytest.raises(ResourceNotFoundError):
        scopes.get(group, "sdk-scope")


def _wait_subnet(c: Any, path: str) -> None:
    for _ in range(200):
        if c.get(path, params={"api-version": "2024-07-01"}).status_code == 200:
            return
        time.sleep(0.05)
    raise AssertionError(f"{path} was never made")
