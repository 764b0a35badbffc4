"""``halyard arcgateway create/list/show/update/delete/settings update/logs``: gateways, as ``az arcgateway``."""

from __future__ import annotations

import time
from typing import Annotated, Any

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import UsageError
from halyard.cli.gateways import (
    API_VERSION,
    NAMESPACE,
    TABLE,
    check_gateway_id,
    flatten,
    gateway_id,
    gateways_collection,
)
from halyard.cli.keyvalues import parse_tags
from halyard.cli.resourceids import group_scope

app = typer.Typer(help="Manage Arc gateways: one name for an enterprise proxy to allow.", no_args_is_help=True)
settings_app = typer.Typer(help="Manage the gateway settings of a resource.", no_args_is_help=True)
app.add_typer(settings_app, name="settings")
Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the gateway.")]
Tags = Annotated[list[str] | None, typer.Option("--tags", help='Space-separated tags: key[=value]; "" clears them.')]
Features = Annotated[
    list[str] | None,
    typer.Option("--allowed-features", help="Features the gateway allows (space-separated): * (default), "
                 "cluster-connect, extensions, configuration."),
]  # fmt: skip
GatewayType = Annotated[str | None, typer.Option("--gateway-type", help="The gateway's type: Public.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")]


def _gateway_type(value: str | None) -> str | None:
    if value is None:
        return None
    if value.lower() != "public":
        raise UsageError(f"argument --gateway-type: '{value}' is not one of: Public.")
    return "Public"


def _features(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    return [part.strip() for value in values for part in value.split(",") if part.strip()]


def _put(inv: Invocation, path: str, body: dict[str, Any], no_wait: bool) -> dict[str, Any]:
    first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=body)
    if no_wait:
        result: dict[str, Any] = first.json()
        return result
    with inv.progress("Running"):
        result = inv.arm.wait("PUT", inv.arm.resource_url(path, API_VERSION), first)
    return result


@app.command("create")
def create(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    location: Annotated[str, typer.Option("--location", "-l", help="Location (region) of the gateway.")],
    tags: Tags = None,
    allowed_features: Features = None,
    gateway_type: GatewayType = "Public",
    no_wait: NoWait = False,
) -> None:
    """Create a gateway (an operation of a second or two); its gatewayEndpoint is the one name to allow."""
    inv = Invocation.of(ctx)
    properties: dict[str, Any] = {"gatewayType": _gateway_type(gateway_type) or "Public"}
    properties["allowedFeatures"] = _features(allowed_features) or ["*"]
    body = {"location": location, "tags": parse_tags(tags) or {}, "properties": properties}
    inv.emit(flatten(_put(inv, gateway_id(inv.subscription_id, resource_group, name), body, no_wait)), TABLE)


@app.command("show")
def show(ctx: typer.Context, resource_group: Group, name: Name) -> None:
    """Show a gateway, with the clusters that use it and when each was last seen through it (once every one has
    been, the firewall rules for the other names can go)."""
    inv = Invocation.of(ctx)
    path = gateway_id(inv.subscription_id, resource_group, name)
    shown = flatten(inv.arm.get(path, API_VERSION))
    shown["linkedClusters"] = inv.arm.get(f"{path}/linkedClusters", API_VERSION).get("value", [])
    inv.emit(shown, TABLE)


@app.command("list")
def list_gateways(
    ctx: typer.Context,
    resource_group: Annotated[str | None, typer.Option("--resource-group", "-g", help="Only this group.")] = None,
) -> None:
    """List the gateways of a resource group, or of the subscription."""
    inv = Invocation.of(ctx)
    path = gateways_collection(inv.subscription_id, resource_group)
    inv.emit([flatten(g) for g in inv.arm.list(path, API_VERSION)], TABLE)


@app.command("update")
def update(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    tags: Tags = None,
    allowed_features: Features = None,
    gateway_type: GatewayType = None,
    no_wait: NoWait = False,
) -> None:
    """Change a gateway's tags, allowed features or type (GET, then PUT, as az does)."""
    inv = Invocation.of(ctx)
    new_tags, features, kind = parse_tags(tags), _features(allowed_features), _gateway_type(gateway_type)
    if new_tags is None and features is None and kind is None:
        raise UsageError("Nothing to update: give at least one of --tags, --allowed-features, --gateway-type.")
    path = gateway_id(inv.subscription_id, resource_group, name)
    current = inv.arm.get(path, API_VERSION)
    properties = {k: v for k, v in (current.get("properties") or {}).items() if k in ("gatewayType", "allowedFeatures")}
    if features is not None:
        properties["allowedFeatures"] = features
    if kind is not None:
        properties["gatewayType"] = kind
    body = {
        "location": current.get("location"),
        "tags": new_tags if new_tags is not None else current.get("tags") or {},
        "properties": properties,
    }
    inv.emit(flatten(_put(inv, path, body, no_wait)), TABLE)


@app.command("delete")
def delete(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
    no_wait: NoWait = False,
) -> None:
    """Delete a gateway. Clusters linked to it are refused by the gateway service from then on."""
    inv = Invocation.of(ctx)
    path = gateway_id(inv.subscription_id, resource_group, name)
    inv.confirm("Are you sure you want to perform this operation?", yes)
    first = inv.arm.request("DELETE", path, params={"api-version": API_VERSION})
    if not no_wait and first.status_code not in (200, 204):
        with inv.progress("Running"):
            inv.arm.wait("DELETE", inv.arm.resource_url(path, API_VERSION), first)


@settings_app.command("update")
def settings_update(
    ctx: typer.Context,
    resource_group: Group,
    base_provider: Annotated[str, typer.Option("--base-provider", help="Provider of the base resource.")],
    base_resource_type: Annotated[str, typer.Option("--base-resource-type", help="Type of the base resource.")],
    base_resource_name: Annotated[str, typer.Option("--base-resource-name", help="Name of the base resource.")],
    gateway_resource_id: Annotated[
        str | None,
        typer.Option("--gateway-resource-id", help='The gateway to use; "" unlinks the resource from its gateway.'),
    ] = None,
    name: Annotated[str, typer.Option("--settings-resource-name", "--name", "-n", help="Always default.")] = "default",
) -> None:
    """Link a resource (a connected cluster) to a gateway, or unlink it (GET, then PUT of settings/default)."""
    inv = Invocation.of(ctx)
    if name.lower() != "default":
        raise UsageError(f"argument --name: the settings resource is named 'default', not '{name}'.")
    gateway = check_gateway_id(gateway_resource_id) if gateway_resource_id else None
    base = f"{group_scope(inv.subscription_id, resource_group)}/providers/{base_provider}/{base_resource_type}/"
    path = f"{base}{base_resource_name}/providers/{NAMESPACE}/settings/default"
    body = {"properties": {"gatewayProperties": {"gatewayResourceId": gateway}}}
    inv.emit(_put(inv, path, body, no_wait=False))


LOG_TABLE = (
    ("Time", "time"),
    ("Cluster", "cluster"),
    ("Destination", "destination"),
    ("Up", "bytesUp"),
    ("Down", "bytesDown"),
    ("Ms", "durationMs"),
    ("Verdict", "verdict"),
    ("Reason", "reason"),
)


@app.command("logs")
def logs(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only this cluster (its resource id).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only from this time (ISO 8601).")] = None,
    verdict: Annotated[str | None, typer.Option("--verdict", help="allowed or denied.")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing new records (Ctrl-C ends).")] = False,
) -> None:
    """The gateway's audit: one record per agent connection (time, cluster, destination, bytes, verdict)."""
    inv = Invocation.of(ctx)
    if verdict is not None and verdict not in ("allowed", "denied"):
        raise UsageError(f"argument --verdict: '{verdict}' is not allowed or denied.")
    path = f"{gateway_id(inv.subscription_id, resource_group, name)}/auditRecords"
    query = {k: v for k, v in (("clusterId", cluster), ("since", since), ("verdict", verdict)) if v}
    after = 0
    while True:
        rows = inv.arm.get(path, API_VERSION, {**query, "after": str(after)}).get("value", [])
        for row in rows:
            row["cluster"] = (row.get("clusterId") or "").rsplit("/", 1)[-1]
        if rows:
            after = int(rows[-1]["id"])
        if not follow:
            inv.emit(rows, LOG_TABLE)
            return
        for row in rows:
            inv.emit(row, LOG_TABLE)
        time.sleep(2.0)
