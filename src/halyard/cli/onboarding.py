"""``halyard connectedk8s connect``: the flags, checked before anything is written, then the library
``clusteronboarding`` (pre-checks, the resource, the agents, the wait for ``Connected``). A command module only:
where the agents run is ``agentplacement``, the cluster is reached through one ``KubeSession`` for the whole
command, and nothing here is imported by another command.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from halyard.api.cluster import CLUSTER_NAME_PATTERN, CLUSTER_NAME_RULE
from halyard.cli.agentplacement import AGENT_MODES
from halyard.cli.clusteronboarding import Onboarding
from halyard.cli.connectedclusters import flatten
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.gateways import check_gateway_id, proxy_settings
from halyard.cli.keyvalues import parse_tags
from halyard.cli.kubesession import KubeSession


def connect(
    ctx: typer.Context,
    resource_group: Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")],
    location: Annotated[str | None, typer.Option("--location", "-l", help="Location (default: the group's).")] = None,
    kube_config: Annotated[Path | None, typer.Option("--kube-config", help="Path of the kubeconfig.")] = None,
    kube_context: Annotated[str | None, typer.Option("--kube-context", help="The kubeconfig context.")] = None,
    tags: Annotated[list[str] | None, typer.Option("--tags", help="Space-separated tags: key[=value].")] = None,
    distribution: Annotated[str | None, typer.Option("--distribution", help="Detected when omitted.")] = None,
    distribution_version: Annotated[str | None, typer.Option("--distribution-version")] = None,
    infrastructure: Annotated[str | None, typer.Option("--infrastructure", help="Detected when omitted.")] = None,
    disable_auto_upgrade: Annotated[bool, typer.Option("--disable-auto-upgrade")] = False,
    agent_mode: Annotated[
        str | None,
        typer.Option(
            "--agent-mode",
            help="in-cluster (Helm chart; the default) or local (a supervised local process; the default for a "
            "halyard sim cluster, where nothing runs, and where in-cluster asks for --yes).",
        ),
    ] = None,
    onboarding_timeout: Annotated[
        int, typer.Option("--onboarding-timeout", help="Seconds to wait for the agents to connect.")
    ] = 1200,
    agent_registry: Annotated[
        str | None, typer.Option("--agent-registry", help="Registry of the agent image (in-cluster mode).")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the resource exists.")] = False,
    # Private link (issue 13): as az, `--enable-private-link true --private-link-scope-resource-id ID`.
    enable_private_link: Annotated[
        str | None,
        typer.Option(
            "--enable-private-link",
            help="true: the agents reach the control plane only through the "
            "private endpoints of --private-link-scope-resource-id (and publicly if the scope allows).",
        ),
    ] = None,
    private_link_scope_resource_id: Annotated[
        str | None,
        typer.Option(
            "--private-link-scope-resource-id", help="The private link scope (with --enable-private-link true)."
        ),
    ] = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
    gateway_resource_id: Annotated[
        str | None, typer.Option("--gateway-resource-id", help="The gateway the cluster's agents go through.")
    ] = None,
    proxy_https: Annotated[
        str | None, typer.Option("--proxy-https", help="The enterprise proxy for https (http://[user:pw@]host:port).")
    ] = None,
    proxy_http: Annotated[str | None, typer.Option("--proxy-http", help="The enterprise proxy for http.")] = None,
    proxy_skip_range: Annotated[
        str | None,
        typer.Option(
            "--proxy-skip-range", help="Comma-separated CIDRs, hosts and .domain suffixes kept off the proxy."
        ),
    ] = None,
    proxy_cert: Annotated[
        Path | None,
        typer.Option("--proxy-cert", "--custom-ca-cert", help="PEM CA of a TLS-inspecting proxy (outer hop only)."),
    ] = None,
) -> None:
    """Connect a Kubernetes cluster: create its connected-cluster resource and install Halyard's agents in it."""
    inv = Invocation.of(ctx)
    # Checked before anything is written: a bad flag is one line, nothing half-created.
    gateway = check_gateway_id(gateway_resource_id) if gateway_resource_id else None
    proxy = proxy_settings(proxy_https, proxy_http, proxy_skip_range, proxy_cert)
    if proxy_cert is not None:  # local agents started from here trust it for the hop to the gateway
        os.environ["HALYARD_AGENT_PROXY_CERT"] = str(proxy_cert.expanduser().resolve())
    private_link_scope = private_link_choice(enable_private_link, private_link_scope_resource_id)
    if agent_mode is not None and agent_mode not in AGENT_MODES:
        raise UsageError(f"--agent-mode must be one of {', '.join(AGENT_MODES)}.")
    if not CLUSTER_NAME_PATTERN.match(name):
        raise CliError(f"The connected cluster name '{name}' is invalid. {CLUSTER_NAME_RULE}", "InvalidResourceName")
    kubeconfig = kube_config.expanduser().resolve() if kube_config else None
    with KubeSession(kubeconfig, kube_context) as kube:
        onboarding = Onboarding(inv, kube, resource_group, name, agent_mode, agent_registry)
        onboarding.gateway, onboarding.proxy = gateway, proxy
        result = onboarding.run(
            location=location,
            tags=parse_tags(tags) or {},
            distribution=distribution,
            distribution_version=distribution_version,
            infrastructure=infrastructure,
            auto_upgrade=not disable_auto_upgrade,
            timeout=onboarding_timeout,
            wait=not no_wait,
            yes=yes,
            private_link_scope=private_link_scope,
        )
    inv.emit(flatten(result))


def private_link_choice(enable: str | None, scope: str | None) -> str | None:
    """The scope to join (None: private link off), checked as az checks it before anything is sent."""
    if enable is not None and enable.lower() not in ("true", "false"):
        raise UsageError("--enable-private-link must be true or false.")
    enabled = enable is not None and enable.lower() == "true"
    if enabled and not scope:
        raise UsageError("--enable-private-link true needs --private-link-scope-resource-id.")
    if scope and not enabled:
        raise UsageError("--private-link-scope-resource-id is allowed only with --enable-private-link true.")
    return scope if enabled else None
