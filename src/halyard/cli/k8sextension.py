"""``halyard k8s-extension create|show|list|update|delete`` and ``… extension-types list|list-versions|publish``:
extensions of connected clusters, with ``az k8s-extension``'s flags and rules."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.cli import longrunning
from halyard.cli.context import Invocation
from halyard.cli.errors import UsageError
from halyard.cli.keyvalues import parse_key_values
from halyard.cli.resourceids import extension_id, resource_id

API_VERSION = "2023-05-01"  # what az k8s-extension sends
TYPES_API = "2026-01-01"
TYPES = "/providers/Halyard.Extensions/extensionTypes"
NAMESPACE = "Microsoft.KubernetesConfiguration"
app = typer.Typer(help="Manage extensions of connected clusters.", no_args_is_help=True)
types_app = typer.Typer(help="The extension types this control plane offers, and publishing new ones.")
app.add_typer(types_app, name="extension-types")
TABLE = (
    ("Name", "name"),
    ("ExtensionType", "properties.extensionType"),
    ("Version", "properties.currentVersion"),
    ("ProvisioningState", "properties.provisioningState"),
    ("InstallState", "properties.installState"),
)
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the extension instance.")]
Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Cluster = Annotated[str, typer.Option("--cluster-name", "-c", help="Name of the connected cluster.")]
ClusterType = Annotated[
    str, typer.Option("--cluster-type", "-t", help="connectedClusters (the only type Halyard serves).")
]
Settings = Annotated[
    list[str] | None,
    typer.Option("--configuration-settings", "--config", help="Configuration settings: key=value (repeatable)."),
]
Protected = Annotated[
    list[str] | None,
    typer.Option(
        "--configuration-protected-settings", "--config-protected", help="Protected settings: key=value (repeatable)."
    ),
]
SettingsFile = Annotated[
    Path | None, typer.Option("--configuration-settings-file", "--config-file", help="JSON file of settings.")
]
ProtectedFile = Annotated[
    Path | None,
    typer.Option("--configuration-protected-settings-file", "--config-protected-file", help="JSON file of secrets."),
]
AutoUpgrade = Annotated[
    str | None,
    typer.Option(
        "--auto-upgrade-minor-version", "--auto-upgrade", help="true or false: upgrade within the release train."
    ),
]
Version = Annotated[str | None, typer.Option("--version", help="Pin this version (auto-upgrade must be false).")]
Train = Annotated[str | None, typer.Option("--release-train", help="Release train to follow (stable, preview…).")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")]


def _cluster(inv: Invocation, group: str, cluster: str, cluster_type: str) -> str:
    if cluster_type.lower() != "connectedclusters":
        raise UsageError(f"argument --cluster-type: '{cluster_type}' is not served by Halyard; use connectedClusters.")
    return resource_id(inv.subscription_id, group, "Microsoft.Kubernetes", "connectedClusters", cluster)


def _path(inv: Invocation, group: str, cluster: str, cluster_type: str, name: str | None = None) -> str:
    return extension_id(_cluster(inv, group, cluster, cluster_type), NAMESPACE, "extensions", name)


def _bool(value: str | None, option: str) -> bool | None:
    if value is None:
        return None
    if value.lower() in ("true", "yes", "1"):
        return True
    if value.lower() in ("false", "no", "0"):
        return False
    raise UsageError(f"argument {option}: '{value}' is not true or false.")


def _settings(values: list[str] | None, path: Path | None, option: str) -> dict[str, str] | None:
    if values is None and path is None:
        return None
    result: dict[str, str] = {}
    if path is not None:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UsageError(f"argument {option}-file: cannot read {path}: {exc}") from None
        if not isinstance(data, dict):
            raise UsageError(f"argument {option}-file: {path} does not hold a JSON object.")
        result.update({str(k): str(v) for k, v in data.items()})
    result.update(parse_key_values(values, option))
    return result


def _versioning(auto: bool | None, version: str | None, train: str | None) -> dict[str, Any]:
    """az's rules: a pinned version turns auto-upgrade off unless asked for, which is then refused."""
    if version is not None and auto is None:
        auto = False
    if version is not None and auto:
        raise UsageError(
            "Cannot pin --version while --auto-upgrade-minor-version is true; set it to false to pin a version."
        )
    if train is not None and auto is False:
        raise UsageError("--release-train applies only with --auto-upgrade-minor-version true.")
    props: dict[str, Any] = {}
    if auto is not None:
        props["autoUpgradeMinorVersion"] = auto
    if version is not None:
        props["version"] = version
    if train is not None:
        props["releaseTrain"] = train
    return props


def _desired_changes(
    auto_upgrade: str | None,
    version: str | None,
    release_train: str | None,
    settings: list[str] | None,
    settings_file: Path | None,
    protected: list[str] | None,
    protected_file: Path | None,
) -> tuple[dict[str, Any], bool]:
    """The properties create and update share, from their common flags: the version policy, the settings and the
    protected settings (files first, ``key=value`` on top). Also whether protected settings were given."""
    props = _versioning(_bool(auto_upgrade, "--auto-upgrade-minor-version"), version, release_train)
    config = _settings(settings, settings_file, "--configuration-settings")
    secrets = _settings(protected, protected_file, "--configuration-protected-settings")
    if config is not None:
        props["configurationSettings"] = config
    if secrets is not None:
        props["configurationProtectedSettings"] = secrets
    return props, secrets is not None


@app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    group: Group,
    cluster: Cluster,
    extension_type: Annotated[str, typer.Option("--extension-type", help="Type of the extension (see list).")],
    cluster_type: ClusterType = "connectedClusters",
    scope: Annotated[str | None, typer.Option("--scope", help="cluster or namespace.")] = None,
    release_namespace: Annotated[str | None, typer.Option("--release-namespace", help="Cluster scope.")] = None,
    target_namespace: Annotated[str | None, typer.Option("--target-namespace", help="Namespace scope.")] = None,
    auto_upgrade: AutoUpgrade = None,
    version: Version = None,
    release_train: Train = None,
    settings: Settings = None,
    protected: Protected = None,
    settings_file: SettingsFile = None,
    protected_file: ProtectedFile = None,
    no_wait: NoWait = False,
) -> None:
    """Create an extension on a connected cluster."""
    inv = Invocation.of(ctx)
    changes, _ = _desired_changes(
        auto_upgrade, version, release_train, settings, settings_file, protected, protected_file
    )
    props: dict[str, Any] = {"extensionType": extension_type, **changes}
    if scope is not None and scope not in ("cluster", "namespace"):
        raise UsageError(f"argument --scope: invalid choice: '{scope}' (choose from 'cluster', 'namespace')")
    if scope == "namespace" or (scope is None and target_namespace):
        if release_namespace:
            raise UsageError("--release-namespace applies to cluster scope; use --target-namespace.")
        props["scope"] = {"namespace": {"targetNamespace": target_namespace or name}}
    else:
        if target_namespace:
            raise UsageError("--target-namespace applies to namespace scope; use --release-namespace.")
        props["scope"] = {"cluster": {"releaseNamespace": release_namespace} if release_namespace else {}}
    longrunning.put(inv, _path(inv, group, cluster, cluster_type, name), API_VERSION, props, no_wait)


@app.command("show")
def show(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, cluster_type: ClusterType = "connectedClusters"
) -> None:
    """Show an extension."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(_path(inv, group, cluster, cluster_type, name), API_VERSION), TABLE)


@app.command("list")
def list_extensions(
    ctx: typer.Context, group: Group, cluster: Cluster, cluster_type: ClusterType = "connectedClusters"
) -> None:
    """List the extensions of a connected cluster."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(_path(inv, group, cluster, cluster_type), API_VERSION), TABLE)


@app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    group: Group,
    cluster: Cluster,
    cluster_type: ClusterType = "connectedClusters",
    auto_upgrade: AutoUpgrade = None,
    version: Version = None,
    release_train: Train = None,
    settings: Settings = None,
    protected: Protected = None,
    settings_file: SettingsFile = None,
    protected_file: ProtectedFile = None,
    no_wait: NoWait = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
) -> None:
    """Update an extension's version policy or settings (settings given are merged; a key with no value, as
    ``key=``, keeps it empty)."""
    inv = Invocation.of(ctx)
    props, replaces_secrets = _desired_changes(
        auto_upgrade, version, release_train, settings, settings_file, protected, protected_file
    )
    if replaces_secrets:
        inv.confirm("Updating protected settings replaces the named ones; continue?", yes)
    if not props:
        raise UsageError("Nothing to update: give a version policy or settings.")
    longrunning.patch(inv, _path(inv, group, cluster, cluster_type, name), API_VERSION, props, no_wait)


@app.command("delete")
def delete(
    ctx: typer.Context,
    name: Name,
    group: Group,
    cluster: Cluster,
    cluster_type: ClusterType = "connectedClusters",
    force: Annotated[bool, typer.Option("--force", help="Delete the resource even if the agents cannot.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
    no_wait: NoWait = False,
) -> None:
    """Delete an extension (the cluster's agents uninstall it)."""
    inv = Invocation.of(ctx)
    inv.confirm("Are you sure you want to delete this extension?", yes)
    longrunning.delete(inv, _path(inv, group, cluster, cluster_type, name), API_VERSION, force=force, no_wait=no_wait)


@types_app.command("list")
def list_types(ctx: typer.Context) -> None:
    """List the extension types this control plane offers, with their release trains."""
    inv = Invocation.of(ctx)
    columns = (("Name", "name"), ("Versions", "properties.versions"), ("Published", "properties.published"))
    inv.emit(inv.arm.list(TYPES, TYPES_API), columns)


@types_app.command("list-versions")
def list_versions(
    ctx: typer.Context, extension_type: Annotated[str, typer.Option("--extension-type", help="The type.")]
) -> None:
    """List the versions of an extension type per release train."""
    inv = Invocation.of(ctx)
    for t in inv.arm.list(TYPES, TYPES_API):
        if t["name"].lower() == extension_type.lower():
            trains = t["properties"]["releaseTrains"]
            inv.emit([{"releaseTrain": train, "versions": versions} for train, versions in sorted(trains.items())])
            return
    raise UsageError(f"Extension type '{extension_type}' is not offered.")


@types_app.command("publish")
def publish(
    ctx: typer.Context,
    extension_type: Annotated[str, typer.Option("--extension-type", "--name", "-n", help="Type name: org.name.")],
    version: Annotated[str, typer.Option("--version", help="The version (semantic: 1.2.3).")],
    chart: Annotated[Path, typer.Option("--chart", help="A Helm chart package (.tgz) or chart directory.")],
    release_trains: Annotated[
        list[str] | None, typer.Option("--release-train", help="Release train(s) to publish on (default stable).")
    ] = None,
) -> None:
    """Publish a Helm chart as a version of an extension type (operators: the control plane then serves it)."""
    inv = Invocation.of(ctx)
    package = _package(chart)
    body = {"chart": base64.b64encode(package).decode(), "releaseTrains": release_trains or ["stable"]}
    inv.emit(inv.arm.call("PUT", f"{TYPES}/{extension_type}/versions/{version}", TYPES_API, json=body))


def _package(chart: Path) -> bytes:
    """The chart as a .tgz: a package as it is, a directory packed as ``helm package`` lays it out."""
    if chart.is_file():
        return chart.read_bytes()
    if not (chart / "Chart.yaml").is_file():
        raise UsageError(f"argument --chart: {chart} is neither a chart package nor a directory with Chart.yaml.")
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path in sorted(chart.rglob("*")):
            if path.is_file():
                tar.add(path, arcname=f"{chart.resolve().name}/{path.relative_to(chart).as_posix()}")
    return buffer.getvalue()
