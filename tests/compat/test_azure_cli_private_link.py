"""The real Azure CLI's ``az network …`` commands of the private link setup (the seeds' steps), unchanged, against
a running control plane: a network, a scope, endpoints approved at once and by hand, the private zone, its link
and records, a zone group, and ``az resource show`` of the scope."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.helpers import group_path
from tests.compat.azcli import AzureCli
from tests.compat.test_azure_cli import documented_login
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
HC = "2021-05-20"  # what az network private-link-resource / private-endpoint-connection send


@pytest.fixture(scope="module")
def cli(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> AzureCli:
    return documented_login(server, tmp_path_factory.mktemp("az-home-pl"))[0]


def test_the_seeds_network_steps_with_az(cli: AzureCli, server: ServerProcess, group: str) -> None:
    scope = f"{group_path(server, group)}/providers/Microsoft.HybridCompute/privateLinkScopes/pls"
    body = json.dumps({"location": "eastus", "properties": {"publicNetworkAccess": "Disabled"}})
    cli.json("rest", "--method", "put", "--url", f"{scope}?api-version=2026-07-15", "--body", body)
    shown = cli.json("resource", "show", "--ids", scope)
    assert shown["properties"]["publicNetworkAccess"] == "Disabled" and shown["properties"]["privateLinkScopeId"]

    vnet = cli.json("network", "vnet", "create", "-g", group, "-n", "vnet1", "-l", "eastus",
                    "--address-prefixes", "10.7.0.0/16", "--subnet-name", "endpoints",
                    "--subnet-prefixes", "10.7.1.0/24")  # fmt: skip
    assert vnet["newVNet"]["addressSpace"]["addressPrefixes"] == ["10.7.0.0/16"]
    subnet = cli.json("network", "vnet", "subnet", "show", "-g", group, "--vnet-name", "vnet1", "-n", "endpoints")
    assert subnet["addressPrefix"] == "10.7.1.0/24"

    links = cli.json("network", "private-link-resource", "list", "--id", scope)
    assert [x["properties"]["groupId"] for x in links] == ["hybridcompute"]

    auto: Any = cli.json("network", "private-endpoint", "create", "-g", group, "-n", "pe-auto", "-l", "eastus",
                         "--vnet-name", "vnet1", "--subnet", "endpoints", "--private-connection-resource-id", scope,
                         "--group-id", "hybridcompute", "--connection-name", "c-auto")  # fmt: skip
    state = auto["privateLinkServiceConnections"][0]["privateLinkServiceConnectionState"]["status"]
    assert state == "Approved" and auto["customDnsConfigs"][0]["ipAddresses"] == ["10.7.1.4"]
    manual: Any = cli.json("network", "private-endpoint", "create", "-g", group, "-n", "pe-manual", "-l", "eastus",
                           "--vnet-name", "vnet1", "--subnet", "endpoints", "--private-connection-resource-id", scope,
                           "--group-id", "hybridcompute", "--connection-name", "c-manual", "--manual-request",
                           "--request-message", "please")  # fmt: skip
    assert manual["manualPrivateLinkServiceConnections"][0]["privateLinkServiceConnectionState"]["status"] == "Pending"

    connections = cli.json("network", "private-endpoint-connection", "list", "--id", scope)
    pending = [c for c in connections if c["properties"]["privateLinkServiceConnectionState"]["status"] == "Pending"]
    assert len(pending) == 1 and len(connections) == 2
    approved = cli.json("network", "private-endpoint-connection", "approve", "--id", pending[0]["id"],
                        "--description", "ok")  # fmt: skip
    assert approved["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"

    zone = "privatelink.halyard.local"
    cli.json("network", "private-dns", "zone", "create", "-g", group, "-n", zone)
    cli.json("network", "private-dns", "link", "vnet", "create", "-g", group, "-z", zone, "-n", "link1",
             "-v", "vnet1", "-e", "false")  # fmt: skip
    cli.json("network", "private-dns", "record-set", "a", "add-record", "-g", group, "-z", zone, "-n", "extra",
             "-a", "10.7.1.9")  # fmt: skip
    cli.json("network", "private-endpoint", "dns-zone-group", "create", "-g", group, "--endpoint-name", "pe-auto",
             "-n", "default", "--private-dns-zone", zone, "--zone-name", "halyard")  # fmt: skip
    records = {r["name"]: r for r in cli.json("network", "private-dns", "record-set", "a", "list", "-g", group,
                                               "-z", zone)}  # fmt: skip
    assert records["extra"]["aRecords"] == [{"ipv4Address": "10.7.1.9"}]
    scope_id = shown["properties"]["privateLinkScopeId"]
    assert records[f"{scope_id}.his"]["aRecords"] == [{"ipv4Address": "10.7.1.4"}]
