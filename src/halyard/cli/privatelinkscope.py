"""``halyard private-link-scope firewall-rules -g RG -n SCOPE``: what a site's firewall must let through when its
clusters use this scope: the endpoints' addresses from the site, the forwarders' way to the control plane, and
what still needs a path outside (nothing of Halyard's own services: management and login go through the endpoint
too, unlike Arc)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.resourceids import resource_id

SCOPE_API = "2026-07-15"
NETWORK_API = "2026-01-01"
app = typer.Typer(help="Private link scopes (private link).", no_args_is_help=True)
TABLE = (("From", "from"), ("To", "to"), ("Port", "port"), ("Why", "why"))


@app.command("firewall-rules")
def firewall_rules(
    ctx: typer.Context,
    group: Annotated[str, typer.Option("--resource-group", "-g", help="The scope's resource group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The private link scope's name.")],
) -> None:
    """List the firewall rules a site needs for this scope's clusters."""
    inv = Invocation.of(ctx)
    scope = inv.arm.get(
        resource_id(inv.subscription_id, group, "Microsoft.HybridCompute", "privateLinkScopes", name), SCOPE_API
    )
    rules: list[dict[str, Any]] = []
    for connection in (scope.get("properties") or {}).get("privateEndpointConnections") or []:
        props = connection.get("properties") or {}
        if (props.get("privateLinkServiceConnectionState") or {}).get("status") != "Approved":
            continue
        endpoint = (props.get("privateEndpoint") or {}).get("id")
        if not endpoint:
            continue
        try:
            body = inv.arm.get(str(endpoint), NETWORK_API)
        except CliError:
            inv.warn(f"connection {connection.get('name')} names endpoint {endpoint}, which no longer exists")
            continue
        dns = (body.get("properties") or {}).get("customDnsConfigs") or []
        for address in sorted({a for entry in dns for a in entry.get("ipAddresses") or []}):
            fqdns = ", ".join(sorted(entry["fqdn"] for entry in dns if address in (entry.get("ipAddresses") or [])))
            rules.append({"from": "the site's clusters (agents, kubectl via cluster connect)", "to": address,
                          "port": "443/tcp", "why": f"private endpoint {body['name']}: {fqdns}"})  # fmt: skip
            rules.append({"from": f"the forwarder's host (halyard endpoint run, at {address})",
                          "to": "the control plane's endpoint ingress (HALYARD_ENDPOINT_INGRESS)", "port": "tcp",
                          "why": "mutual TLS from the forwarder; not needed when the control plane serves the "
                          "address itself"})  # fmt: skip
    public = (scope.get("properties") or {}).get("publicNetworkAccess") == "Enabled"
    rules.append({"from": "the site's clusters", "to": "the control plane's public address" if public else "nothing",
                  "port": "443/tcp" if public else "-",
                  "why": "publicNetworkAccess Enabled: the public path is also served" if public else
                  "publicNetworkAccess Disabled: no Halyard service needs a public path (management and login go "
                  "through the endpoint too)"})  # fmt: skip
    rules.append({"from": "the site's clusters", "to": "your agent image registry", "port": "443/tcp",
                  "why": "in-cluster agents pull their images (not needed with a registry inside the site)"})  # fmt: skip
    inv.emit(rules, TABLE)
