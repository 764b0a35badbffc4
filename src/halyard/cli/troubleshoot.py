"""``halyard connectedk8s troubleshoot -g RG -n NAME [--kube-config F] [--kube-context C]``: the cluster's status
and certificate; its agents' pods (or local process), state and heartbeat; every name the agents dial as they saw
it from where they run (resolved, with private link to an approved endpoint of the scope; TCP; TLS and the
certificate's expiry); the control plane's recent refusals; each failure with its fix in one line.

The agents' view is what they record in the cluster (``halyard-system/halyard-diagnostics``), read with the
cluster's kubeconfig: ``--kube-config``, else the one this machine's local agents of the cluster were started with,
else the user's (as az). Without it (no kubeconfig, another cluster, nothing recorded, a stale record) the names
are checked from this machine instead, and said to be."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.api.diagnostics import Diagnostics
from halyard.cli import localagents
from halyard.cli.agentchecks import cluster_side, recorded_name_checks
from halyard.cli.connectedclusters import API_VERSION, cluster_id
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.kubesession import KubeSession
from halyard.cli.privatelinkchecks import (
    MEMBERS,
    Check,
    cluster_checks,
    name_checks,
    refusal_checks,
    scope_checks,
)
from halyard.kube.agentsview import read_agents

SCOPE_API = "2026-07-15"
NETWORK_API = "2026-01-01"
TABLE = (("Check", "check"), ("OK", "ok"), ("Detail", "detail"), ("Fix", "fix"))


def troubleshoot(
    ctx: typer.Context,
    resource_group: Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")],
    kube_config: Annotated[
        Path | None,
        typer.Option("--kube-config", help="The cluster's kubeconfig (default: its local agents', else yours)."),
    ] = None,
    kube_context: Annotated[str | None, typer.Option("--kube-context", help="The kubeconfig context.")] = None,
) -> None:
    """Check what the cluster's agents need to reach the control plane, as they see it, and say how to fix what
    fails."""
    inv = Invocation.of(ctx)
    path = cluster_id(inv.subscription_id, resource_group, name)
    cluster = inv.arm.get(path, API_VERSION)
    now = dt.datetime.now(dt.UTC)
    checks = cluster_checks(cluster)
    props = cluster.get("properties") or {}
    scope_id = props.get("privateLinkScopeResourceId")
    private_names: list[str] = []
    expected: set[str] = set()
    if props.get("privateLinkState") == "Enabled" and scope_id:
        scope_checked, private_names, expected = _private_link(inv, str(scope_id))
        checks += scope_checked
    else:
        checks.append(Check("private link", True, "Disabled: the agents use the control plane's public address"))
    side, record = _cluster_side(path, kube_config, kube_context, now)
    checks += side
    if record is not None:
        checks += recorded_name_checks(record, private_names, expected, now)
    elif private_names:
        local = localagents.running_pid(localagents.state_dir_for(path)) is not None
        where = "this machine, where the cluster's local agents run" if local else "this machine, not the agents'"
        checks += name_checks(private_names, expected, inv.profile.caCert, where)
    # What the control plane refused of the cluster's agents lately (kept on the server, docs/private-link.md).
    refusals = inv.arm.get(f"{path}/privateLinkRefusals", API_VERSION).get("value") or []
    checks += refusal_checks(list(refusals), now)
    inv.emit([c.as_dict() for c in checks], TABLE)
    if not all(c.ok for c in checks):
        raise typer.Exit(1)


def _cluster_side(
    path: str, kube_config: Path | None, kube_context: str | None, now: dt.datetime
) -> tuple[list[Check], Diagnostics | None]:
    """The agents' side read from the cluster, or why it cannot be (a failure only when the kubeconfig was named:
    yours may well point at another cluster)."""
    named = kube_config is not None or kube_context is not None
    kubeconfig = kube_config.expanduser() if kube_config else None
    if kubeconfig is None:  # the cluster of its local agents on this machine, as delete finds it
        started = localagents.started_target(localagents.state_dir_for(path))
        if started is not None:
            kubeconfig, kube_context = started[0], kube_context or started[1]
            named = True
    try:
        with KubeSession(kubeconfig, kube_context) as kube:
            inside = kube.run(read_agents)
    except CliError as exc:
        shown = f"{kubeconfig}" if kubeconfig else "your kubeconfig ($KUBECONFIG or ~/.kube/config)"
        return [Check("agents' view", not named, f"not read: {shown}: {exc.message}; names are checked from this "
                      "machine instead", "Give the cluster's kubeconfig with --kube-config (and --kube-context)."
                      if named else "")], None  # fmt: skip
    return cluster_side(inside, path, now, named=named)


def _private_link(inv: Invocation, scope_id: str) -> tuple[list[Check], list[str], set[str]]:
    """The scope's checks, its private names (``uuid.member.zone``) and the approved endpoints' addresses."""
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
    return checks, [f"{uuid}.{member}.{zone}" for member in MEMBERS], expected
