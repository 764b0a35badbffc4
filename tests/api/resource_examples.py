"""A minimal valid PUT body for every resource type the server declares, for the resource contract suite.

A type without an entry here fails the suite on the day it is declared: add its example with the type. A type whose
body names other resources (a private endpoint's subnet and scope) names the ones ``prepare_examples`` made once
per server in the group ``rg-examples``.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx

from halyard.api.extensions import entry_digest
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.arm.resourcetypes import ResourceTypes
from halyard.controlplane.configuration.agentpresence import CONFIG_AGENT, EXTENSION_MANAGER, record
from halyard.controlplane.configuration.extensions import REPORTER, ExtensionBehaviour, desired_entry
from halyard.controlplane.configuration.fluxconfigs import FLUX_KEY, SOURCE_CONTROL_KEY
from halyard.controlplane.configuration.fluxconfigs import REPORTER as FLUX_REPORTER
from halyard.controlplane.configuration.published import catalog_of
from halyard.store import Database
from halyard.store.models import Resource
from halyard.store.reports import Report, put_reports
from tests.api.helpers import cluster_body

EXTENSIONS_KEY = "microsoft.kubernetesconfiguration/extensions"
GITOPS_KEYS = (FLUX_KEY, SOURCE_CONTROL_KEY)

Example = Callable[[], dict[str, Any]]
SHARED: dict[str, str] = {}  # what the examples refer to: filled by prepare_examples
_subnets = itertools.count(1)

HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}
DNS = {"api-version": "2018-09-01"}


async def prepare_examples(client: httpx.AsyncClient, subscription: str) -> None:
    """The network, subnet, scope and zone the examples name, in the server's subscription."""
    group = f"/subscriptions/{subscription}/resourceGroups/rg-examples"
    r = await client.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})
    assert r.status_code in (200, 201), r.text
    scope = f"{group}/providers/Microsoft.HybridCompute/privateLinkScopes/examples"
    vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/examples"
    zone = f"{group}/providers/Microsoft.Network/privateDnsZones/privatelink.halyard.local"
    for path, api, body in (
        (scope, HC, {"location": "eastus", "properties": {"publicNetworkAccess": "Disabled"}}),
        (vnet, NET, _vnet("default")),
        (zone, DNS, {"location": "global"}),
    ):
        r = await client.put(path, params=api, json=body)
        assert r.status_code in (200, 201), r.text
        await _settle(client, r)
    SHARED.update(scope=scope, vnet=vnet, subnet=f"{vnet}/subnets/default", zone=zone)


async def _settle(client: httpx.AsyncClient, r: httpx.Response) -> None:
    url = r.headers.get("Azure-AsyncOperation")
    for _ in range(400):
        if url is None or (await client.get(url)).json()["status"] != "InProgress":
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{url} did not finish")


def _vnet(*subnets: str) -> dict[str, Any]:
    inline = [{"name": name, "properties": {"addressPrefix": f"10.0.{i}.0/24"}} for i, name in enumerate(subnets)]
    return {
        "location": "eastus",
        "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]}, "subnets": inline},
    }


def _endpoint() -> dict[str, Any]:
    connection = {"privateLinkServiceId": SHARED["scope"], "groupIds": ["hybridcompute"]}
    return {
        "location": "eastus",
        "properties": {
            "subnet": {"id": SHARED["subnet"]},
            "privateLinkServiceConnections": [{"name": "examples", "properties": connection}],
        },
    }


EXAMPLES: dict[str, Example] = {
    "microsoft.kubernetes/connectedclusters": lambda: cluster_body(),
    "microsoft.hybridcompute/gateways": lambda: {
        "location": "eastus",
        "properties": {"gatewayType": "Public", "allowedFeatures": ["*"]},
    },
    "microsoft.hybridcompute/settings": lambda: {"properties": {"gatewayProperties": {"gatewayResourceId": None}}},
    "microsoft.kubernetesconfiguration/extensions": lambda: {
        "properties": {"extensionType": "microsoft.flux", "configurationSettings": {"a": "b"}}
    },
    "microsoft.kubernetesconfiguration/fluxconfigurations": lambda: {
        "properties": {
            "scope": "cluster",
            "namespace": "flux-system",
            "sourceKind": "GitRepository",
            "gitRepository": {"url": "https://git.example/apps.git", "repositoryRef": {"branch": "main"}},
            "kustomizations": {"infra": {"path": "./infra"}, "apps": {"path": "./apps", "dependsOn": ["infra"]}},
        }
    },
    "microsoft.kubernetesconfiguration/sourcecontrolconfigurations": lambda: {
        "properties": {"repositoryUrl": "https://git.example/apps.git", "operatorParams": "--git-branch=main"}
    },
    "microsoft.hybridcompute/privatelinkscopes": lambda: {
        "location": "eastus",
        "properties": {"publicNetworkAccess": "Disabled"},
    },
    "microsoft.hybridcompute/privatelinkscopes/privateendpointconnections": lambda: {
        "properties": {"privateLinkServiceConnectionState": {"status": "Approved", "description": "ok"}}
    },
    "microsoft.network/virtualnetworks": _vnet,
    # Subnets of one network must not overlap: each example takes the next /24.
    "microsoft.network/virtualnetworks/subnets": lambda: {
        "properties": {"addressPrefix": f"10.0.{next(_subnets) % 255 + 1}.0/24"}
    },
    "microsoft.network/privateendpoints": _endpoint,
    "microsoft.network/privateendpoints/privatednszonegroups": lambda: {
        "properties": {"privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": SHARED["zone"]}}]}
    },
    "microsoft.network/privatednszones": lambda: {"location": "global"},
    "microsoft.network/privatednszones/virtualnetworklinks": lambda: {
        "location": "global",
        "properties": {"virtualNetwork": {"id": SHARED["vnet"]}, "registrationEnabled": False},
    },
    "microsoft.network/privatednszones/a": lambda: {
        "properties": {"ttl": 300, "aRecords": [{"ipv4Address": "10.0.0.5"}]}
    },
}

# Types whose resources have one fixed name per container (a cluster's ``settings/default``): the suite uses it.
FIXED_NAMES: dict[str, str] = {"microsoft.hybridcompute/settings": "default"}


async def play_agents_started(db: Database, cluster_id: str) -> None:
    """Record that the cluster's extension-manager and config-agent have polled, as their first poll does
    (``agentpresence.py``): its configuration writes are then accepted and wait for the agents' reports, which
    :func:`play_agents` plays. The in-process suites' clusters have no agents; a write on such a cluster is refused
    (AgentNotRunning), which ``tests/configuration/test_agent_presence.py`` covers."""
    async with db.transaction() as session:
        for agent in (EXTENSION_MANAGER, CONFIG_AGENT):
            await record(session, ResourceId.parse(cluster_id).key, agent, datetime.now(UTC))


async def play_agents(db: Database, types: ResourceTypes, resource_id: str) -> None:
    """What the cluster's agents report once converged on this resource, whichever acts on it (nothing for others)."""
    await play_extension_manager(db, types, resource_id)
    await play_config_agent(db, resource_id)


async def play_config_agent(db: Database, resource_id: str) -> None:
    """Report for a Flux or source-control configuration what config-agent would once converged: this write's
    objects applied (its etag), or removed when it is being deleted."""
    rid = ResourceId.parse(resource_id)
    if rid.full_type.lower() not in GITOPS_KEYS:
        return
    async with db.transaction() as session:
        row = await session.get(Resource, rid.key)
        if row is None:
            return
        if row.provisioning_state == "Deleting":
            report: dict[str, Any] = {"state": "Removed"}
        else:
            report = {"state": "Applied", "appliedGeneration": row.etag, "complianceState": "Compliant"}
        await put_reports(session, [Report(rid.key, FLUX_REPORTER, report, datetime.now(UTC))])


async def play_extension_manager(db: Database, types: ResourceTypes, resource_id: str) -> None:
    """Report for an extension what its cluster's extension-manager would once converged: installed as delivered
    now (the digest of its entry), or uninstalled when it is being deleted. The contract suite's clusters have no
    agents; an extension's operation waits for this report (anything else is not an extension: nothing done)."""
    rid = ResourceId.parse(resource_id)
    rtype = types.get(rid.full_type)
    if rtype is None or rtype.key != EXTENSIONS_KEY or not isinstance(rtype.behaviour, ExtensionBehaviour):
        return
    async with db.transaction() as session:
        row = await session.get(Resource, rid.key)
        if row is None:
            return
        if row.provisioning_state == "Deleting":
            report = {"installState": "Uninstalled"}
        else:
            entry = desired_entry(row, await catalog_of(session), rtype.behaviour.unseal(row))
            report = {"installState": "Installed", "digest": entry_digest(entry), "currentVersion": entry["version"]}
        await put_reports(session, [Report(rid.key, REPORTER, report, datetime.now(UTC))])
