"""``halyard connectedk8s troubleshoot -g RG -n NAME``: the cluster's status and, when it uses private link, its
scope, endpoint connections and every service name checked from this machine (where local agents run), each
failure with its fix in one line."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

import typer

from halyard.cli.connectedclusters import API_VERSION, cluster_id
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.privatelinkchecks import (
    MEMBERS,
    Check,
    cluster_checks,
    name_checks,
    refusal_checks,
    scope_checks,
)

SCOPE_API = "2026-07-15"
NETWORK_API = "2026-01-01"
TABLE = (("Check", "check"), ("OK", "ok"), ("Detail", "detail"), ("Fix", "fix"))


def troubleshoot(
    ctx: typer.Context,
    resource_group: Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")],
) -> None:
    """Check what the cluster's agents need to reach the control plane, and say how to fix what fails."""
    inv = Invocation.of(ctx)
    path = cluster_id(inv.subscription_id, resource_group, name)
    cluster = inv.arm.get(path, API_VERSION)
    checks = cluster_checks(cluster)
    props = cluster.get("properties") or {}
    scope_id = props.get("privateLinkScopeResourceId")
    if props.get("privateLinkState") == "Enabled" and scope_id:
        checks += _private_link(inv, str(scope_id))
    else:
        checks.append(Check("private link", True, "Disabled: the agents use the control plane's public address"))
    # What the control plane refused of the cluster's agents lately (kept on the server, docs/private-link.md).
    refusals = inv.arm.get(f"{path}/privateLinkRefusals", API_VERSION).get("value") or []
    checks += refusal_checks(list(refusals), dt.datetime.now(dt.UTC))
    inv.emit([c.as_dict() for c in checks], TABLE)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _private_link(inv: Invocation, scope_id: str) -> list[Check]:
    scope = inv.arm.get(scope_id, SCOPE_API)
    connections: list[dict[str, Any]] = list((scope.get("properties") or {}).get("privateEndpointConnections") or [])
    checks = scope_checks(scope, connections)
    expected: set[str] = set()
    for connection in connections:
        endpoint = ((connection.get("properties") or {}).get("privateEndpoint") or {}).get("id")
        status = ((connection.get("properties") or {}).get("privateLinkServiceConnectionState") or {}).get("status")
        if endpoint and status == "Approved":
            try:
                body = inv.arm.get(str(endpoint), NETWORK_API)
            except CliError:
                checks.append(Check(f"endpoint {str(endpoint).rsplit('/', 1)[-1]}", False,
                                    "its connection is Approved but the endpoint no longer exists",
                                    f"Delete the connection: `az network private-endpoint-connection delete --id "
                                    f"{connection.get('id')}`."))  # fmt: skip
                continue
            for entry in (body.get("properties") or {}).get("customDnsConfigs") or []:
                expected.update(entry.get("ipAddresses") or [])
    uuid = (scope.get("properties") or {}).get("privateLinkScopeId")
    # The zone as the control plane names it (its private link resource's requiredZoneNames).
    resource = inv.arm.get(f"{scope_id}/privateLinkResources/hybridcompute", SCOPE_API)
    zone = str(resource["properties"]["requiredZoneNames"][0])
    names = [f"{uuid}.{member}.{zone}" for member in MEMBERS]
    return checks + name_checks(names, expected, inv.profile.caCert)
