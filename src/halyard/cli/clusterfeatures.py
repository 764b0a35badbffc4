"""``halyard connectedk8s enable-features/disable-features``: the cluster's optional agent features (cluster-connect,
azure-rbac), as ``az connectedk8s enable-features``. The choice lives in the cluster (FEATURES in its ConfigMap
halyard-system/halyard-clusterconfig, read by every agent as it starts), so the command writes it there and restarts
the agents where they run: the local ``halyard agent run`` process, or the chart's Deployments (helm upgrade, which
also turns the feature's own Deployment on or off)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import typer

from halyard.api import cluster as names
from halyard.cli import localagents
from halyard.cli.agentplacement import locate
from halyard.cli.connectedclusters import cluster_id
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.kubesession import KubeSession
from halyard.kube import onboarding as kube_onboarding

Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the connected cluster.")]
Features = Annotated[
    list[str],
    typer.Option("--features", help=f"Space-separated features: {' '.join(names.FEATURES)}."),
]
KubeConfig = Annotated[
    Path | None,
    typer.Option("--kube-config", help="Path of the cluster's kubeconfig (default: the one its local agents use)."),
]
KubeContext = Annotated[str | None, typer.Option("--kube-context", help="The kubeconfig context.")]
SkipList = Annotated[
    str | None,
    typer.Option(
        "--skip-azure-rbac-list",
        help="Accepted as az accepts it: comma-separated users, emails or object ids that azure-rbac leaves to the "
        "cluster's own RBAC (kept in the cluster's configuration for guard).",
    ),
]
KEY_AZURE_RBAC_SKIP = "AZURE_RBAC_SKIP_LIST"


@dataclass(frozen=True)
class FeaturePlan:
    """What a command changes: the features on afterwards, those it turns on or off, those already so."""

    after: frozenset[str]
    changed: tuple[str, ...]
    unchanged: tuple[str, ...]


def parse_requested(values: list[str]) -> tuple[str, ...]:
    """The features named (space- or comma-separated, az's names), in the order of :data:`names.FEATURES`."""
    wanted = {part.strip().lower() for value in values for part in value.split(",") if part.strip()}
    unknown = sorted(wanted - set(names.FEATURES))
    if unknown:
        raise UsageError(
            f"argument --features: unsupported feature(s) {', '.join(unknown)}; Halyard's are: "
            f"{', '.join(names.FEATURES)}."
        )
    if not wanted:
        raise UsageError("argument --features: name at least one feature.")
    return tuple(f for f in names.FEATURES if f in wanted)


def plan(before: frozenset[str], requested: tuple[str, ...], *, enable: bool) -> FeaturePlan:
    changed = tuple(f for f in requested if (f in before) != enable)
    unchanged = tuple(f for f in requested if f not in changed)
    after = (before | set(requested)) if enable else (before - set(requested))
    return FeaturePlan(frozenset(after), changed, unchanged)


def enable_features(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    features: Features,
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    skip_azure_rbac_list: SkipList = None,
) -> None:
    """Enable optional features of a connected cluster's agents (cluster-connect: kubectl through the relay;
    azure-rbac: guard decides Kubernetes requests from role assignments), then restart the agents."""
    _change(ctx, resource_group, name, features, kube_config, kube_context, enable=True, skip=skip_azure_rbac_list)


def disable_features(
    ctx: typer.Context,
    resource_group: Group,
    name: Name,
    features: Features,
    kube_config: KubeConfig = None,
    kube_context: KubeContext = None,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Accepted as az accepts it; nothing is asked.")] = False,
) -> None:
    """Disable optional features of a connected cluster's agents, then restart the agents (their Deployments for
    the feature are removed in-cluster)."""
    _change(ctx, resource_group, name, features, kube_config, kube_context, enable=False, skip=None)


def _change(
    ctx: typer.Context,
    group: str,
    name: str,
    features: list[str],
    kube_config: Path | None,
    kube_context: str | None,
    *,
    enable: bool,
    skip: str | None,
) -> None:
    inv = Invocation.of(ctx)
    requested = parse_requested(features)
    resource_id = cluster_id(inv.subscription_id, group, name)
    kubeconfig = kube_config.expanduser() if kube_config else None
    if kubeconfig is None:  # the cluster of its local agents, as delete finds it
        started = localagents.started_target(localagents.state_dir_for(resource_id))
        if started is not None:
            kubeconfig, kube_context = started[0], kube_context or started[1]
    verb = "enabled" if enable else "disabled"
    with KubeSession(kubeconfig, kube_context) as kube:
        agents = locate(resource_id, kube)
        onboarded = kube.run(kube_onboarding.read_onboarding)
        if onboarded is None or onboarded.resource_id.lower() != resource_id.lower():
            raise CliError(
                f"The cluster of the kubeconfig is not connected as {name}: give its kubeconfig with --kube-config "
                "(and --kube-context).",
                "AgentsNotFound",
            )
        change = plan(onboarded.features, requested, enable=enable)
        if change.unchanged:
            inv.note(f"Already {verb}: {', '.join(change.unchanged)}.")
        if change.changed:
            with inv.progress("Updating the cluster's configuration"):
                kube.run(lambda c: kube_onboarding.write_features(c, change.after))
            with inv.progress("Restarting the agents"):
                agents.restart(change.after)
            inv.note(f"{verb.capitalize()}: {', '.join(change.changed)}. The agents restarted with it.")
        if skip is not None and enable:
            kube.run(lambda c: kube_onboarding.write_settings(c, {KEY_AZURE_RBAC_SKIP: skip}))
    inv.emit(
        {
            "name": name,
            "resourceGroup": group,
            "features": {f: ("Enabled" if f in change.after else "Disabled") for f in names.FEATURES},
        }
    )
