"""``halyard connectedk8s show/list/delete/update/upgrade``: connected clusters, as ``az connectedk8s``.

``connect`` is a command module of its own (``cli/onboarding.py``), registered when the command line names it: it
imports what installing agents needs. These commands call the libraries ``connectedclusters`` (ids, output),
``agentplacement`` (where the agents run), ``agentupgrade`` and ``kubesession``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.api import cluster as names
from halyard.cli import localagents
from halyard.cli.agentplacement import NetworkChange, locate, remove_agents
from halyard.cli.agentupgrade import upgrade_agents
from halyard.cli.connectedclusters import API_VERSION, TABLE, cluster_id, clusters_collection, flatten
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.gateways import API_VERSION as GATEWAY_API_VERSION
from halyard.cli.gateways import ProxySettings, check_gateway_id, link, proxy_settings, with_proxy
from halyard.cli.keyvalues import parse_tags
from halyard.cli.kubesession import KubeSession
from halyard.cli.privatelinkflags import private_link_update, with_private_link
from halyard.kube.helm import RELEASE

app = typer.Typer(help="Manage connected Kubernetes clusters.", no_args_is_help=True)
Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")]
KubeConfig = Annotated[Path | None, typer.Option("--kube-config", help="Path of the cluster's kubeconfig.")]
KubeContext = Annotated[str | None, typer.Option("--kube-context", help="The kubeconfig context.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")]
AUTO_UPGRADE = {"true": "Enabled", "false": "Disabled"}


@app.command("show")
def show(ctx: typer.Context, resource_group: Group, name: Name) -> None:
    """Show a connected cluster."""
    inv = Invocation.of(ctx)
    inv.emit(flatten(inv.arm.get(cluster_id(inv.subscription_id, resource_group, name), API_VERSION)), TABLE)


@app.command("list")
def list_clusters(
    ctx: typer.Context,
    resource_group: Annotated[
        str | None, typer.Option("--resource-group", "-g", help="Only this resource group.")
    ] = None,
) -> None:
    """List connected clusters of a resource group, or of the subscription."""
    inv = Invocation.of(ctx)
    path = clusters_collection(inv.subscription_id, resource_group)
    inv.emit([flatten(c) for c in inv.arm.list(path, API_VERSION)], TABLE)


@app.command("delete")
def delete(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    force: Annotated[
        bool, typer.Option("--force", help="Delete the resource even when the cluster cannot be cleaned up.")
    ] = False,
    yes: Yes = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")] = False,
) -> None:
    """Delete a connected cluster: the resource (its agent identity is revoked with it), then the agents, their
    Secrets, RBAC and namespace in the cluster (from --kube-config, or the kubeconfig its local agents use)."""
    inv = Invocation.of(ctx)
    path = cluster_id(inv.subscription_id, resource_group, name)
    inv.confirm("Are you sure you want to perform this operation?", yes)
    started = localagents.started_target(localagents.state_dir_for(path))
    cluster_known = kube_config is not None or started is not None
    if kube_config is None and started is not None:
        kube_config, kube_context = started[0], kube_context or started[1]
    first = inv.arm.request("DELETE", path, params={"api-version": API_VERSION})
    if not no_wait and first.status_code not in (200, 204):
        with inv.progress("Running"):
            inv.arm.wait("DELETE", inv.arm.resource_url(path, API_VERSION), first)
    if not cluster_known:
        inv.warn(_left_in_cluster(resource_group, name))
        return
    with KubeSession(kube_config.expanduser() if kube_config else None, kube_context) as kube:
        _clean_cluster(inv, path, kube, force)


@app.command("update")
def update(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    tags: Annotated[
        list[str] | None, typer.Option("--tags", help='Space-separated tags: key[=value]; "" clears them.')
    ] = None,
    distribution: Annotated[str | None, typer.Option("--distribution", help="The Kubernetes distribution.")] = None,
    distribution_version: Annotated[
        str | None, typer.Option("--distribution-version", help="The distribution's version.")
    ] = None,
    auto_upgrade: Annotated[
        str | None,
        typer.Option(
            "--auto-upgrade",
            help="true: the agents follow the newest version by themselves; false: they "
            "stay at their version until connectedk8s upgrade.",
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accepted as az accepts it; update asks nothing.")] = False,
    gateway_resource_id: Annotated[
        str | None, typer.Option("--gateway-resource-id", help="Move the cluster's agents onto this gateway.")
    ] = None,
    disable_gateway: Annotated[
        bool, typer.Option("--disable-gateway", help="Take the cluster off its gateway.")
    ] = False,
    proxy_https: Annotated[str | None, typer.Option("--proxy-https", help="The enterprise proxy for https.")] = None,
    proxy_http: Annotated[str | None, typer.Option("--proxy-http", help="The enterprise proxy for http.")] = None,
    proxy_skip_range: Annotated[
        str | None, typer.Option("--proxy-skip-range", help="Comma-separated CIDRs, hosts, .domain suffixes.")
    ] = None,
    proxy_cert: Annotated[
        Path | None, typer.Option("--proxy-cert", "--custom-ca-cert", help="PEM CA of a TLS-inspecting proxy.")
    ] = None,
    disable_proxy: Annotated[bool, typer.Option("--disable-proxy", help="The agents go direct again.")] = False,
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    enable_private_link: Annotated[
        str | None,
        typer.Option(
            "--enable-private-link",
            help="true: join --private-link-scope-resource-id (the agents then come through its private endpoints); "
            "false: leave its scope.",
        ),
    ] = None,
    private_link_scope_resource_id: Annotated[
        str | None,
        typer.Option(
            "--private-link-scope-resource-id", help="The private link scope (with --enable-private-link true)."
        ),
    ] = None,
) -> None:
    """Update a connected cluster's tags, distribution and agent auto-upgrade (PATCH, then a full PUT for the
    agent profile, as az does); its gateway (settings/default), proxy settings and private link scope, which reach
    the agents with their next heartbeat (no re-onboarding)."""
    inv = Invocation.of(ctx)
    if auto_upgrade is not None and auto_upgrade.lower() not in AUTO_UPGRADE:
        raise UsageError(f"argument --auto-upgrade: '{auto_upgrade}' is not true or false.")
    if gateway_resource_id is not None and disable_gateway:
        raise UsageError("--gateway-resource-id and --disable-gateway cannot be used together.")
    gateway = check_gateway_id(gateway_resource_id) if gateway_resource_id is not None else None
    proxy = proxy_settings(proxy_https, proxy_http, proxy_skip_range, proxy_cert)
    if disable_proxy and not proxy.empty:
        raise UsageError("--disable-proxy cannot be used together with --proxy-https, --proxy-http, "
                         "--proxy-skip-range or --proxy-cert.")  # fmt: skip
    network = gateway is not None or disable_gateway or disable_proxy or not proxy.empty
    private_link = private_link_update(enable_private_link, private_link_scope_resource_id)
    patch: dict[str, Any] = {}
    new_tags = parse_tags(tags)
    if new_tags is not None:
        patch["tags"] = new_tags
    changes = {"distribution": distribution, "distributionVersion": distribution_version}
    if any(v is not None for v in changes.values()):
        patch["properties"] = {k: v for k, v in changes.items() if v is not None}
    if not patch and auto_upgrade is None and not network and private_link is None:
        raise UsageError(
            "Nothing to update: give at least one of --tags, --distribution, --distribution-version, --auto-upgrade, "
            "--gateway-resource-id, --disable-gateway, --proxy-https, --proxy-http, --proxy-skip-range, "
            "--proxy-cert, --disable-proxy, --enable-private-link."
        )
    path = cluster_id(inv.subscription_id, resource_group, name)
    url = inv.arm.resource_url(path, API_VERSION)
    cluster: dict[str, Any] | None = None
    with inv.progress("Updating the connected cluster"):
        if patch:
            first = inv.arm.request("PATCH", path, params={"api-version": API_VERSION}, json=patch)
            cluster = inv.arm.wait("PATCH", url, first)
        if auto_upgrade is not None:
            # The patch body has no agent profile: the full resource goes back with it changed.
            cluster = inv.arm.get(path, API_VERSION)
            properties = cluster.setdefault("properties", {})
            profile = dict(properties.get("arcAgentProfile") or {})
            properties["arcAgentProfile"] = {**profile, "agentAutoUpgrade": AUTO_UPGRADE[auto_upgrade.lower()]}
            first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=cluster)
            cluster = inv.arm.wait("PUT", url, first)
        if disable_proxy or not proxy.empty:
            cluster = with_proxy(inv.arm.get(path, API_VERSION), None if disable_proxy else proxy)
            first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=cluster)
            cluster = inv.arm.wait("PUT", url, first)
        if private_link is not None:
            cluster = with_private_link(inv.arm.get(path, API_VERSION), *private_link)
            first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=cluster)
            cluster = inv.arm.wait("PUT", url, first)
        if gateway is not None or disable_gateway:
            link(inv, path, gateway)
            cluster = None  # shown as it now is, its gateway included
    if network:
        change = _network_change(inv, gateway, disable_gateway, None if disable_proxy else proxy, disable_proxy)
        _reroute_agents(inv, path, change, kube_config, kube_context)
    inv.emit(flatten(cluster or inv.arm.get(path, API_VERSION)), TABLE)


def _network_change(
    inv: Invocation, gateway: str | None, disable_gateway: bool, proxy: ProxySettings | None, disable_proxy: bool
) -> NetworkChange:
    endpoint = None
    if gateway is not None:
        url = (inv.arm.get(gateway, GATEWAY_API_VERSION).get("properties") or {}).get("gatewayUrl") or ""
        endpoint = str(url).removeprefix("https://")
    elif disable_gateway:
        endpoint = ""
    if disable_proxy:
        return NetworkChange(gateway=endpoint, proxy="", skip_range="", proxy_cert="")
    if proxy is None or proxy.empty:
        return NetworkChange(gateway=endpoint)
    return NetworkChange(
        gateway=endpoint, proxy=proxy.https or proxy.http, skip_range=proxy.skip_range, proxy_cert=proxy.cert_pem
    )


def _reroute_agents(
    inv: Invocation, resource_id: str, change: NetworkChange, kube_config: Path | None, kube_context: str | None
) -> None:
    """Start arc-proxy where it must now run (local agents), or change the chart's network values (in-cluster). A
    running arc-proxy follows the resource by itself, so agents out of reach are said, not fatal."""
    try:
        with KubeSession(kube_config.expanduser() if kube_config else None, kube_context) as kube:
            agents = locate(resource_id, kube)
            with inv.progress("Pointing the agents at the new gateway and proxy settings"):
                agents.reroute(change)
    except CliError as exc:
        if exc.code not in ("KubeconfigError", "AgentsNotFound"):
            raise
        inv.warn(
            f"The cluster's resource is updated, but its agents were not reached from here: {exc.message} Agents "
            "whose arc-proxy runs follow the new settings with their next heartbeat; to start arc-proxy, or change "
            "it in the cluster's chart, run this update again with --kube-config."
        )


@app.command("upgrade")
def upgrade(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    agent_version: Annotated[str, typer.Option("--agent-version", help="The agent version to move to.")],
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    upgrade_timeout: Annotated[
        int, typer.Option("--upgrade-timeout", min=1, help="Seconds to wait for the agents to report the version.")
    ] = 600,
    no_wait: Annotated[
        bool, typer.Option("--no-wait", help="Return once the version is set and the upgrade started.")
    ] = False,
) -> None:
    """Upgrade a connected cluster's agents to --agent-version (auto-upgrade must be off: see update). The version
    must be one the server offers (checked first). Local agents are restarted on this machine's halyard, which must
    be that version; in-cluster agents are upgraded with helm in the cluster of --kube-config/--kube-context."""
    inv = Invocation.of(ctx)
    with KubeSession(kube_config.expanduser() if kube_config else None, kube_context) as kube:
        cluster = upgrade_agents(inv, kube, resource_group, name, agent_version, upgrade_timeout, wait=not no_wait)
    inv.emit(flatten(cluster), TABLE)


@app.command("move")
def move(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    location: Annotated[str, typer.Option("--location", "-l", help="The location to move the cluster to.")],
    new_group: Annotated[
        str | None, typer.Option("--new-resource-group", help="The resource group to move it to (default: its own).")
    ] = None,
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    agent_mode: Annotated[
        str | None, typer.Option("--agent-mode", help="in-cluster or local, as connect (default: as connect).")
    ] = None,
    agent_registry: Annotated[str | None, typer.Option("--agent-registry", help="As connect's.")] = None,
    timeout: Annotated[int, typer.Option("--timeout", min=1, help="Seconds to wait for each step.")] = 1200,
    yes: Yes = False,
) -> None:
    """Move a connected cluster to another location (and resource group): its configuration resources saved by the
    control plane (protected settings included, sealed), the agents and the old resource removed, the cluster
    connected again, everything recreated and compared with before. Interrupted, run it again: it continues."""
    from halyard.cli.regionmove import MoveRequest, RegionMove  # its connect flow is heavy: loaded when used

    inv = Invocation.of(ctx)
    inv.confirm("The cluster is disconnected and connected again in the new location; continue?", yes)
    old_id = cluster_id(inv.subscription_id, resource_group, name)
    started = localagents.started_target(localagents.state_dir_for(old_id))
    if started is not None:  # its local agents know the cluster, and run here again after the move
        kube_config, kube_context = kube_config or started[0], kube_context or started[1]
        agent_mode = agent_mode or "local"
    request = MoveRequest(resource_group, name, location, new_group or resource_group, agent_mode, agent_registry,
                          timeout)  # fmt: skip
    with KubeSession(kube_config.expanduser() if kube_config else None, kube_context) as kube:
        inv.emit(RegionMove(inv, kube, request).run().as_dict())


def _clean_cluster(inv: Invocation, resource_id: str, kube: KubeSession, force: bool) -> None:
    """Remove what onboarding installed. The identity is already revoked, so agents left behind can do nothing;
    still, a clean-up that fails is an error (``--force``: a warning), and running delete again retries it."""
    try:
        removed = remove_agents(resource_id, kube)
    except Exception as exc:  # any failure to reach or clean the cluster is reported the same way
        message = (
            f"The resource is deleted, but the cluster's agents could not be removed ({type(exc).__name__}: {exc}). "
            "Run the same delete again with a working --kube-config to finish."
        )
        if force:
            inv.warn(message)
            return
        raise CliError(message, "ClusterCleanupFailed") from None
    if removed:
        inv.note("Removed: " + ", ".join(removed) + ".")


def _left_in_cluster(group: str, name: str) -> str:
    """What a delete that knows no cluster leaves there, and the command that removes it (delete of a resource
    that is gone succeeds, so the same delete with the kubeconfig only cleans up)."""
    return (
        f"The connected cluster is deleted and its identity revoked, but nothing was removed from its Kubernetes "
        f"cluster: no --kube-config was given and no local agents of it run on this machine. If it was connected "
        f"with in-cluster agents, the Helm release {RELEASE} and the namespace {names.NAMESPACE} (its agents, "
        f"Secrets and ConfigMap) are still there; remove them with: halyard connectedk8s delete -g {group} "
        f"-n {name} --kube-config <the cluster's kubeconfig> --yes"
    )
