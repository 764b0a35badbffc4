"""``halyard k8s-configuration flux create|show|list|update|delete``, ``… flux kustomization …``,
``… flux deployed-object list|show`` and ``… flux logs``: GitOps configurations of connected clusters, with
``az k8s-configuration flux``'s flags and rules (docs/gitops.md).

As az does, ``create`` refuses a cluster that has a Flux v1 sourceControlConfiguration, and installs the ``flux``
extension (``microsoft.flux``, auto-upgrade on) first when the cluster has none, waiting for it; an existing one
that is not Succeeded is an error. Secrets go into ``configurationProtectedSettings`` base64-encoded, as az sends
them. One difference: each ``--kustomization`` is one quoted argument (``-k "name=apps path=./apps prune=true
depends_on=infra"``), repeated for several.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.cli import longrunning
from halyard.cli.context import Invocation
from halyard.cli.errors import UsageError
from halyard.cli.resourceids import extension_id, resource_id

API_VERSION = "2022-07-01"  # what az k8s-configuration flux sends
EXT_API = "2023-05-01"
SCC_API = "2023-05-01"
NAMESPACE = "Microsoft.KubernetesConfiguration"
FLUX_EXTENSION = "microsoft.flux"
app = typer.Typer(help="Manage GitOps configurations of connected clusters.", no_args_is_help=True)
flux_app = typer.Typer(help="Flux v2 configurations.", no_args_is_help=True)
kustomization_app = typer.Typer(help="The kustomizations of a Flux configuration.", no_args_is_help=True)
deployed_app = typer.Typer(help="The objects a Flux configuration deployed.", no_args_is_help=True)
app.add_typer(flux_app, name="flux")
flux_app.add_typer(kustomization_app, name="kustomization")
flux_app.add_typer(deployed_app, name="deployed-object")
TABLE = (
    ("Name", "name"),
    ("Namespace", "properties.namespace"),
    ("Scope", "properties.scope"),
    ("ProvisioningState", "properties.provisioningState"),
    ("ComplianceState", "properties.complianceState"),
    ("SourceSyncedCommitId", "properties.sourceSyncedCommitId"),
)
OBJECTS = (("Name", "name"), ("Namespace", "namespace"), ("Kind", "kind"), ("ComplianceState", "complianceState"))
Name = Annotated[str, typer.Option("--name", "-n", help="Name of the Flux configuration.")]
Group = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
Cluster = Annotated[str, typer.Option("--cluster-name", "-c", help="Name of the connected cluster.")]
ClusterType = Annotated[str, typer.Option("--cluster-type", "-t", help="connectedClusters.")]
NoWait = Annotated[bool, typer.Option("--no-wait", help="Do not wait for the operation to finish.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")]
Kustomizations = Annotated[
    list[str] | None,
    typer.Option(
        "--kustomization",
        "-k",
        help="One kustomization: 'name=N path=P prune=true depends_on=a,b sync_interval=600 timeout=600 "
        "retry_interval=60 force=false' (repeatable).",
    ),
]
Url = Annotated[str | None, typer.Option("--url", "-u", help="URL of the source (git, https bucket, oci://).")]
Branch = Annotated[str | None, typer.Option("--branch", help="Branch to sync.")]
Tag = Annotated[str | None, typer.Option("--tag", help="Tag to sync.")]
Semver = Annotated[str | None, typer.Option("--semver", help="Semantic version range to sync.")]
Commit = Annotated[str | None, typer.Option("--commit", help="Commit to sync.")]
Interval = Annotated[int | None, typer.Option("--interval", "--sync-interval", help="Source sync interval (s).")]
Timeout = Annotated[int | None, typer.Option("--timeout", help="Source fetch timeout (s).")]
SshKey = Annotated[str | None, typer.Option("--ssh-private-key", help="Base64-encoded ssh private key.")]
SshKeyFile = Annotated[Path | None, typer.Option("--ssh-private-key-file", help="File of the ssh private key.")]
HttpsUser = Annotated[str | None, typer.Option("--https-user", help="HTTPS user name.")]
HttpsKey = Annotated[str | None, typer.Option("--https-key", help="HTTPS key or token.")]
KnownHosts = Annotated[str | None, typer.Option("--known-hosts", help="Base64-encoded known_hosts.")]
LocalAuth = Annotated[str | None, typer.Option("--local-auth-ref", "--local-ref", help="A Secret in the cluster.")]
Suspend = Annotated[bool | None, typer.Option("--suspend/--no-suspend", help="Suspend reconciliation.")]


def _cluster(inv: Invocation, group: str, cluster: str, cluster_type: str) -> str:
    if (cluster_type or "connectedClusters").lower() != "connectedclusters":
        raise UsageError(f"argument --cluster-type: '{cluster_type}' is not served by Halyard; use connectedClusters.")
    return resource_id(inv.subscription_id, group, "Microsoft.Kubernetes", "connectedClusters", cluster)


def _path(inv: Invocation, group: str, cluster: str, cluster_type: str, name: str | None = None) -> str:
    return extension_id(_cluster(inv, group, cluster, cluster_type), NAMESPACE, "fluxConfigurations", name)


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def parse_kustomization(text: str) -> tuple[str, dict[str, Any]]:
    """``name=apps path=./apps prune=true depends_on=a,b`` as a kustomization body (az's keys)."""
    fields: dict[str, str] = {}
    for word in text.split():
        if "=" not in word:
            raise UsageError(f"argument --kustomization: '{word}' is not key=value.")
        key, value = word.split("=", 1)
        fields[key.replace("-", "_")] = value
    name = fields.pop("name", "")
    if not name:
        raise UsageError("argument --kustomization: name=... is required.")
    body: dict[str, Any] = {}
    numbers = {"sync_interval": "syncIntervalInSeconds", "timeout": "timeoutInSeconds",
               "retry_interval": "retryIntervalInSeconds"}  # fmt: skip
    for key, value in fields.items():
        if key == "path":
            body["path"] = value
        elif key in ("depends_on", "dependencies"):
            body["dependsOn"] = [d for d in value.strip("[]").replace('"', "").split(",") if d]
        elif key in ("prune", "force", "wait"):
            body[key] = value.lower() in ("true", "yes", "1")
        elif key in numbers:
            try:
                body[numbers[key]] = int(value)
            except ValueError:
                raise UsageError(f"argument --kustomization: {key} is a number of seconds.") from None
        else:
            raise UsageError(f"argument --kustomization: unknown key '{key}'.")
    return name, body


def _ref(branch: str | None, tag: str | None, semver: str | None, commit: str | None) -> dict[str, str] | None:
    ref = {k: v for k, v in (("branch", branch), ("tag", tag), ("semver", semver), ("commit", commit)) if v}
    return ref or None


def _source(
    kind: str, url: str | None, ref: dict[str, str] | None, interval: int | None, timeout: int | None,
    https_user: str | None, known_hosts: str | None, local_auth: str | None, bucket_name: str | None,
    access_key: str | None, insecure: bool,
) -> tuple[str, str, dict[str, Any]]:  # fmt: skip
    source: dict[str, Any] = {}
    if url is not None:
        source["url"] = url
    if interval is not None:
        source["syncIntervalInSeconds"] = interval
    if timeout is not None:
        source["timeoutInSeconds"] = timeout
    if local_auth is not None:
        source["localAuthRef"] = local_auth
    if kind == "git":
        if ref is not None:
            source["repositoryRef"] = ref
        if https_user is not None:
            source["httpsUser"] = https_user
        if known_hosts is not None:
            source["sshKnownHosts"] = known_hosts
        return "GitRepository", "gitRepository", source
    if kind == "bucket":
        if bucket_name is not None:
            source["bucketName"] = bucket_name
        if access_key is not None:
            source["accessKey"] = access_key
        if insecure:
            source["insecure"] = True
        return "Bucket", "bucket", source
    if kind == "oci":
        if ref is not None:
            source["repositoryRef"] = ref
        return "OCIRepository", "ociRepository", source
    raise UsageError(f"argument --kind: invalid choice: '{kind}' (choose from 'git', 'bucket', 'oci')")


def _secrets(
    ssh_key: str | None, ssh_key_file: Path | None, https_key: str | None, bucket_secret: str | None
) -> dict[str, str]:
    secrets: dict[str, str] = {}
    if ssh_key is not None and ssh_key_file is not None:
        raise UsageError("Give --ssh-private-key or --ssh-private-key-file, not both.")
    if ssh_key_file is not None:
        try:
            secrets["sshPrivateKey"] = _b64(ssh_key_file.read_text())
        except OSError as exc:
            raise UsageError(f"argument --ssh-private-key-file: cannot read {ssh_key_file}: {exc}") from None
    if ssh_key is not None:
        secrets["sshPrivateKey"] = ssh_key
    if https_key is not None:
        secrets["httpsKey"] = _b64(https_key)
    if bucket_secret is not None:
        secrets["bucketSecretKey"] = _b64(bucket_secret)
    return secrets


def _ensure_flux_extension(inv: Invocation, cluster_id: str) -> None:
    """As az: a cluster with a Flux v1 configuration is refused; the flux extension is installed when missing."""
    legacy = inv.arm.list(extension_id(cluster_id, NAMESPACE, "sourceControlConfigurations", None), SCC_API)
    if legacy:
        raise UsageError(
            "Flux v1 configurations (sourceControlConfigurations) exist on this cluster: delete them before "
            "creating Flux v2 configurations."
        )
    extensions = inv.arm.list(extension_id(cluster_id, NAMESPACE, "extensions", None), EXT_API)
    flux = [e for e in extensions if str(e["properties"].get("extensionType", "")).lower() == FLUX_EXTENSION]
    if flux:
        state = flux[0]["properties"].get("provisioningState")
        if state != "Succeeded":
            raise UsageError(
                f"The flux extension '{flux[0]['name']}' is {state}, not Succeeded: wait for it, or delete and "
                "recreate it."
            )
        return
    path = extension_id(cluster_id, NAMESPACE, "extensions", "flux")
    body = {"properties": {"extensionType": FLUX_EXTENSION, "autoUpgradeMinorVersion": True}}
    first = inv.arm.request("PUT", path, params={"api-version": EXT_API}, json=body)
    with inv.progress("Installing the flux extension"):
        result = inv.arm.wait("PUT", inv.arm.resource_url(path, EXT_API), first)
    if (result or {}).get("properties", {}).get("provisioningState") not in (None, "Succeeded"):
        raise UsageError("The flux extension could not be installed; see `halyard k8s-extension show -n flux`.")


@flux_app.command("create")
def create(
    ctx: typer.Context,
    name: Name,
    group: Group,
    cluster: Cluster,
    url: Url = None,
    cluster_type: ClusterType = "connectedClusters",
    scope: Annotated[str, typer.Option("--scope", help="cluster or namespace.")] = "cluster",
    namespace: Annotated[str, typer.Option("--namespace", "--ns", help="Namespace of the Flux objects.")] = "default",
    kind: Annotated[str, typer.Option("--kind", help="git, bucket or oci.")] = "git",
    branch: Branch = None,
    tag: Tag = None,
    semver: Semver = None,
    commit: Commit = None,
    interval: Interval = None,
    timeout: Timeout = None,
    ssh_private_key: SshKey = None,
    ssh_private_key_file: SshKeyFile = None,
    https_user: HttpsUser = None,
    https_key: HttpsKey = None,
    known_hosts: KnownHosts = None,
    local_auth_ref: LocalAuth = None,
    bucket_name: Annotated[str | None, typer.Option("--bucket-name", help="Bucket to sync.")] = None,
    bucket_access_key: Annotated[str | None, typer.Option("--bucket-access-key", help="Access key id.")] = None,
    bucket_secret_key: Annotated[str | None, typer.Option("--bucket-secret-key", help="Secret key.")] = None,
    bucket_insecure: Annotated[bool, typer.Option("--bucket-insecure", help="Plain http.")] = False,
    suspend: Suspend = None,
    kustomization: Kustomizations = None,
    no_wait: NoWait = False,
) -> None:
    """Create a Flux configuration (installing the flux extension first when the cluster has none)."""
    inv = Invocation.of(ctx)
    if url is None:
        raise UsageError("the following arguments are required: --url/-u")
    if scope not in ("cluster", "namespace"):
        raise UsageError(f"argument --scope: invalid choice: '{scope}' (choose from 'cluster', 'namespace')")
    ref = _ref(branch, tag, semver, commit)
    if kind == "git" and ref is None:
        raise UsageError("A git source needs one of --branch, --tag, --semver or --commit.")
    source_kind, key, source = _source(
        kind, url, ref, interval, timeout, https_user, known_hosts, local_auth_ref, bucket_name, bucket_access_key,
        bucket_insecure,
    )  # fmt: skip
    props: dict[str, Any] = {"scope": scope, "namespace": namespace, "sourceKind": source_kind, key: source}
    if suspend is not None:
        props["suspend"] = suspend
    props["kustomizations"] = dict(parse_kustomization(k) for k in kustomization or [])
    secrets = _secrets(ssh_private_key, ssh_private_key_file, https_key, bucket_secret_key)
    if secrets:
        props["configurationProtectedSettings"] = secrets
    cluster_id = _cluster(inv, group, cluster, cluster_type)
    _ensure_flux_extension(inv, cluster_id)
    longrunning.put(inv, _path(inv, group, cluster, cluster_type, name), API_VERSION, props, no_wait)


@flux_app.command("show")
def show(ctx: typer.Context, name: Name, group: Group, cluster: Cluster, cluster_type: ClusterType = "") -> None:
    """Show a Flux configuration."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(_path(inv, group, cluster, cluster_type, name), API_VERSION), TABLE)


@flux_app.command("list")
def list_configurations(ctx: typer.Context, group: Group, cluster: Cluster, cluster_type: ClusterType = "") -> None:
    """List the Flux configurations of a connected cluster."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(_path(inv, group, cluster, cluster_type), API_VERSION), TABLE)


def _patch(inv: Invocation, path: str, props: dict[str, Any], no_wait: bool) -> None:
    longrunning.patch(inv, path, API_VERSION, props, no_wait, TABLE)


@flux_app.command("update")
def update(
    ctx: typer.Context,
    name: Name,
    group: Group,
    cluster: Cluster,
    cluster_type: ClusterType = "connectedClusters",
    url: Url = None,
    branch: Branch = None,
    tag: Tag = None,
    semver: Semver = None,
    commit: Commit = None,
    interval: Interval = None,
    timeout: Timeout = None,
    ssh_private_key: SshKey = None,
    ssh_private_key_file: SshKeyFile = None,
    https_user: HttpsUser = None,
    https_key: HttpsKey = None,
    known_hosts: KnownHosts = None,
    local_auth_ref: LocalAuth = None,
    suspend: Suspend = None,
    kustomization: Kustomizations = None,
    no_wait: NoWait = False,
    yes: Yes = False,
) -> None:
    """Update a Flux configuration's git source, suspension or kustomizations (those named are replaced)."""
    inv = Invocation.of(ctx)
    path = _path(inv, group, cluster, cluster_type, name)
    current = inv.arm.get(path, API_VERSION)["properties"]
    kind = {"GitRepository": "git", "Bucket": "bucket", "OCIRepository": "oci"}.get(current.get("sourceKind"), "git")
    ref = _ref(branch, tag, semver, commit)
    _, key, source = _source(
        kind, url, ref, interval, timeout, https_user, known_hosts, local_auth_ref, None, None, False
    )
    props: dict[str, Any] = {}
    if source:
        if ref is not None:  # a new reference replaces the old one whole
            source["repositoryRef"] = {**{k: None for k in ("branch", "tag", "semver", "commit")}, **ref}
        props[key] = source
    if suspend is not None:
        props["suspend"] = suspend
    if kustomization:
        props["kustomizations"] = dict(parse_kustomization(k) for k in kustomization)
    secrets = _secrets(ssh_private_key, ssh_private_key_file, https_key, None)
    if secrets:
        inv.confirm("Updating protected settings replaces the named ones; continue?", yes)
        props["configurationProtectedSettings"] = secrets
    if not props:
        raise UsageError("Nothing to update.")
    _patch(inv, path, props, no_wait)


@flux_app.command("delete")
def delete(
    ctx: typer.Context,
    name: Name,
    group: Group,
    cluster: Cluster,
    cluster_type: ClusterType = "connectedClusters",
    force: Annotated[bool, typer.Option("--force", help="Delete the resource even if the agents cannot.")] = False,
    yes: Yes = False,
    no_wait: NoWait = False,
) -> None:
    """Delete a Flux configuration (config-agent removes its objects first, unless --force)."""
    inv = Invocation.of(ctx)
    inv.confirm("Are you sure you want to delete this Flux configuration?", yes)
    longrunning.delete(inv, _path(inv, group, cluster, cluster_type, name), API_VERSION, force=force, no_wait=no_wait)


@flux_app.command("logs")
def logs(ctx: typer.Context, name: Name, group: Group, cluster: Cluster, cluster_type: ClusterType = "") -> None:
    """The newest events of the configuration's Flux objects (shipped by flux-logs-agent), oldest first."""
    inv = Invocation.of(ctx)
    path = _path(inv, group, cluster, cluster_type, name)
    events = inv.arm.call("GET", f"{path}/events", API_VERSION)["value"]
    columns = (("Time", "time"), ("Type", "type"), ("Object", "objectName"), ("Reason", "reason"),
               ("Message", "message"))  # fmt: skip
    inv.emit(events, columns)


# ---- kustomizations ----------------------------------------------------------------------------------------------

KName = Annotated[str, typer.Option("--kustomization-name", "-k", help="Name of the kustomization.")]


def _kustomizations(inv: Invocation, path: str) -> dict[str, Any]:
    found: dict[str, Any] = inv.arm.get(path, API_VERSION)["properties"].get("kustomizations") or {}
    return found


def _kustomization_body(
    path_: str | None, depends_on: str | None, prune: bool | None, force: bool | None,
    interval: int | None, timeout: int | None, retry: int | None,
) -> dict[str, Any]:  # fmt: skip
    body: dict[str, Any] = {}
    for key, value in (("path", path_), ("prune", prune), ("force", force), ("syncIntervalInSeconds", interval),
                       ("timeoutInSeconds", timeout), ("retryIntervalInSeconds", retry)):  # fmt: skip
        if value is not None:
            body[key] = value
    if depends_on is not None:
        body["dependsOn"] = [d for d in depends_on.split(",") if d]
    return body


KPath = Annotated[str | None, typer.Option("--path", help="Path in the source.")]
KDepends = Annotated[str | None, typer.Option("--depends-on", help="Kustomizations this one waits for (a,b).")]
KPrune = Annotated[bool | None, typer.Option("--prune/--no-prune", help="Remove what left the source.")]
KForce = Annotated[bool | None, typer.Option("--force/--no-force", help="Recreate immutable objects.")]
KInterval = Annotated[int | None, typer.Option("--interval", "--sync-interval", help="Reconcile interval (s).")]
KTimeout = Annotated[int | None, typer.Option("--timeout", help="Apply timeout (s).")]
KRetry = Annotated[int | None, typer.Option("--retry-interval", help="Retry interval after a failure (s).")]


@kustomization_app.command("create")
def kustomization_create(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, kustomization_name: KName,
    cluster_type: ClusterType = "connectedClusters", path: KPath = None, depends_on: KDepends = None,
    prune: KPrune = None, force: KForce = None, interval: KInterval = None, timeout: KTimeout = None,
    retry_interval: KRetry = None, no_wait: NoWait = False,
) -> None:  # fmt: skip
    """Add a kustomization to a Flux configuration."""
    inv = Invocation.of(ctx)
    config = _path(inv, group, cluster, cluster_type, name)
    if kustomization_name in _kustomizations(inv, config):
        raise UsageError(f"Kustomization '{kustomization_name}' already exists; use update.")
    body = _kustomization_body(path, depends_on, prune, force, interval, timeout, retry_interval)
    _patch(inv, config, {"kustomizations": {kustomization_name: body}}, no_wait)


@kustomization_app.command("update")
def kustomization_update(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, kustomization_name: KName,
    cluster_type: ClusterType = "connectedClusters", path: KPath = None, depends_on: KDepends = None,
    prune: KPrune = None, force: KForce = None, interval: KInterval = None, timeout: KTimeout = None,
    retry_interval: KRetry = None, no_wait: NoWait = False,
) -> None:  # fmt: skip
    """Change a kustomization of a Flux configuration."""
    inv = Invocation.of(ctx)
    config = _path(inv, group, cluster, cluster_type, name)
    if kustomization_name not in _kustomizations(inv, config):
        raise UsageError(f"Kustomization '{kustomization_name}' does not exist.")
    body = _kustomization_body(path, depends_on, prune, force, interval, timeout, retry_interval)
    _patch(inv, config, {"kustomizations": {kustomization_name: body}}, no_wait)


@kustomization_app.command("delete")
def kustomization_delete(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, kustomization_name: KName,
    cluster_type: ClusterType = "connectedClusters", yes: Yes = False, no_wait: NoWait = False,
) -> None:  # fmt: skip
    """Remove a kustomization from a Flux configuration (with prune, Flux removes what it applied)."""
    inv = Invocation.of(ctx)
    config = _path(inv, group, cluster, cluster_type, name)
    if kustomization_name not in _kustomizations(inv, config):
        raise UsageError(f"Kustomization '{kustomization_name}' does not exist.")
    inv.confirm("Are you sure you want to delete this kustomization?", yes)
    _patch(inv, config, {"kustomizations": {kustomization_name: None}}, no_wait)


@kustomization_app.command("show")
def kustomization_show(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, kustomization_name: KName,
    cluster_type: ClusterType = "",
) -> None:  # fmt: skip
    """Show a kustomization of a Flux configuration."""
    inv = Invocation.of(ctx)
    found = _kustomizations(inv, _path(inv, group, cluster, cluster_type, name))
    if kustomization_name not in found:
        raise UsageError(f"Kustomization '{kustomization_name}' does not exist.")
    inv.emit({kustomization_name: found[kustomization_name]})


@kustomization_app.command("list")
def kustomization_list(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, cluster_type: ClusterType = ""
) -> None:
    """List the kustomizations of a Flux configuration."""
    inv = Invocation.of(ctx)
    inv.emit(_kustomizations(inv, _path(inv, group, cluster, cluster_type, name)))


# ---- deployed objects --------------------------------------------------------------------------------------------


@deployed_app.command("list")
def deployed_list(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster, cluster_type: ClusterType = ""
) -> None:
    """The Flux objects and the objects they applied, with their compliance."""
    inv = Invocation.of(ctx)
    inv.emit(
        inv.arm.get(_path(inv, group, cluster, cluster_type, name), API_VERSION)["properties"]["statuses"], OBJECTS
    )


@deployed_app.command("show")
def deployed_show(
    ctx: typer.Context, name: Name, group: Group, cluster: Cluster,
    object_name: Annotated[str, typer.Option("--object-name", help="Name of the object.")],
    object_namespace: Annotated[str, typer.Option("--object-namespace", help="Its namespace.")],
    object_kind: Annotated[str, typer.Option("--object-kind", help="Its kind.")],
    cluster_type: ClusterType = "",
) -> None:  # fmt: skip
    """One deployed object's status."""
    inv = Invocation.of(ctx)
    statuses = inv.arm.get(_path(inv, group, cluster, cluster_type, name), API_VERSION)["properties"]["statuses"]
    for item in statuses:
        if (item["name"], item.get("namespace"), item["kind"]) == (object_name, object_namespace, object_kind):
            inv.emit(item)
            return
    raise UsageError(f"No deployed object {object_kind} {object_namespace}/{object_name} in '{name}'.")
