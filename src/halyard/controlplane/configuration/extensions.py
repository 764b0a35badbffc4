"""The extensions resource type: validation against the extension-type catalog, protected settings sealed.

What the cluster reports (``currentVersion``, ``statuses``, ``installState``) comes from the extension-manager's
report row (reporter ``agent``) and is merged when rendered; protected settings are sealed at rest, never rendered
(not even their names: the 2025-03-01 responses omit them), and delivered only to the cluster's own agents
(``delivery.py``).

Provisioning follows the cluster: a create or update stays InProgress until extension-manager reports that it
installed this generation (the digest of the entry delivered now, ``halyard.api.extensions``) or failed to; a
deletion until it reports the release uninstalled, unless forced. A cluster silent for ``extension_wait_seconds``
fails the operation with its connectivity named. A cluster that never ran extension-manager is told at once
(``agentpresence.py``, the rule GitOps shares): its writes are refused, its deletions done.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
import uuid
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from halyard.api.extensions import FAILED, INSTALLED, UNINSTALLED, entry_digest
from halyard.controlplane.arm.operations import Pending
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    Placement,
    PlainBehaviour,
    RenderContext,
    ResourceType,
    WriteContext,
)
from halyard.controlplane.configuration.agentpresence import EXTENSION_MANAGER, ClusterDidNotReport, has_run, require
from halyard.controlplane.configuration.extensiontypes import DEFAULT_TRAIN, ExtensionTypeCatalog
from halyard.controlplane.configuration.models import ExtensionOut, ExtensionPatch, ExtensionPut
from halyard.controlplane.configuration.published import catalog_of, chart_path
from halyard.controlplane.dataplane.status import connectivity_status
from halyard.core.errors import HalyardError, InvalidRequest
from halyard.core.sealing import Sealer
from halyard.store.models import Resource, ResourceReport, Subscription

if TYPE_CHECKING:
    from halyard.controlplane.plane import TypeServices

NAMESPACE = "Microsoft.KubernetesConfiguration"
API_VERSIONS = ("2025-03-01", "2024-11-01", "2023-05-01", "2022-11-01", "2022-03-01")
NAME_PATTERN = re.compile(r"^[a-z0-9]([a-z0-9-]{0,251}[a-z0-9])?$")
NAME_RULE = "lower-case letters, digits and '-', starting and ending with a letter or digit, at most 253 characters"
REPORTER = "agent"  # the extension-manager's report row
REPORTED = ("currentVersion", "statuses", "installState", "errorInfo")
PROTECTED = "configurationProtectedSettings"
CLUSTER_REPORTER = "dp"  # the heartbeats' report on the cluster: its last connectivity
WAIT_RETRY_SECONDS = 2.0  # how often a waiting operation looks again; the agent's report wakes it sooner


class ExtensionFailed(HalyardError):
    """The cluster reported that it could not install or upgrade the extension (its words in the message)."""

    status = 400
    code = "ExtensionOperationFailed"


class ExtensionBehaviour(PlainBehaviour):
    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, ExtensionPut)
        props = body.properties.model_dump(exclude_none=True)
        protected = props.pop(PROTECTED, None)
        old = existing.properties if existing is not None else {}
        if existing is not None and old.get("extensionType", "").lower() != props["extensionType"].lower():
            raise InvalidRequest(
                "properties.extensionType cannot change; delete the extension and create it again.",
                code="PropertyChangeNotAllowed",
                target="properties.extensionType",
            )
        props = _checked(await catalog_of(ctx.session), props, ctx.resource_id.name, old)
        await _agent_runs(ctx)
        stored = self.unseal(existing)
        # A client echoing a GET back sends no protected settings (they are never returned): keep the stored ones.
        sealed = {PROTECTED: protected} if protected is not None else stored
        identity = {"type": "SystemAssigned"} if body.identity is not None and body.identity.type else None
        if identity is not None and existing is not None and existing.identity:
            identity.update({k: v for k, v in existing.identity.items() if k in ("principalId", "tenantId")})
        return Desired(location=None, tags=body.tags or {}, properties=props, identity=identity, sealed=sealed)

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, ExtensionPatch)
        props = copy.deepcopy(existing.properties)
        sealed = self.unseal(existing)
        if body.properties is not None:
            changes = body.properties.model_dump(exclude_unset=True)
            settings = changes.pop("configurationSettings", None)
            secrets = changes.pop(PROTECTED, None)
            props.update({k: v for k, v in changes.items() if v is not None})
            for k, v in changes.items():
                if v is None:
                    props.pop(k, None)
            if settings is not None:  # a null value removes the setting, as Arc's PATCH does
                merged = {**props.get("configurationSettings", {}), **settings}
                props["configurationSettings"] = {k: v for k, v in merged.items() if v is not None}
            if secrets is not None:
                merged = {**(sealed or {}).get(PROTECTED, {}), **secrets}
                sealed = {PROTECTED: {k: v for k, v in merged.items() if v is not None}}
            props = _checked(await catalog_of(ctx.session), props, ctx.resource_id.name, existing.properties)
            await _agent_runs(ctx)
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=None, tags=tags, properties=props, identity=existing.identity, sealed=sealed)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = copy.deepcopy(resource.properties)
        props.pop(PROTECTED, None)
        for key in REPORTED:
            if key in reported:
                props[key] = copy.deepcopy(reported[key])
        props.setdefault("currentVersion", None)
        props.setdefault("statuses", [])
        props.setdefault("isSystemExtension", False)
        return props

    def provisioning_state(self, resource: Resource, reported: Mapping[str, Any]) -> str:
        # A later failure the cluster reported (an upgrade on the release train, a chart that stopped deploying)
        # shows though the last write succeeded; a write in flight shows as itself.
        if resource.provisioning_state == "Succeeded" and reported.get("installState") == FAILED:
            return "Failed"
        return resource.provisioning_state

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        identity = resource.identity
        if identity is not None and identity.get("type") == "SystemAssigned" and not identity.get("principalId"):
            sub = await ctx.session.get(Subscription, resource.subscription_id)
            resource.identity = {
                **identity,
                "principalId": str(uuid.uuid4()),
                "tenantId": sub.tenant_id if sub else None,
            }
        catalog = await catalog_of(ctx.session)
        wanted = entry_digest(desired_entry(resource, catalog, self.unseal(resource)))
        row = await ctx.session.get(ResourceReport, (resource.id_key, REPORTER))
        report = row.properties if row is not None else {}
        if row is not None and report.get("digest") == wanted:
            if report.get("installState") == INSTALLED:
                return  # also a write that changed nothing the cluster receives (tags)
            # A failure reported before this write is the previous attempt's: the agent retries, and reports again.
            if report.get("installState") == FAILED and _utc(row.reported_at) >= _utc(resource.changed_at):
                raise ExtensionFailed(f"The cluster could not install extension '{resource.name}': {_why(report)}")
        await self._wait(resource, ctx, "install")

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        """Done once extension-manager reports the release uninstalled (it no longer finds the extension in the
        cluster's desired configuration, which leaves out what is being deleted); at once when forced, the agent
        still uninstalling it when it next converges."""
        if ctx.force or not await has_run(ctx.session, resource.parent_key or "", EXTENSION_MANAGER):
            return  # a cluster that never ran extension-manager has no release to remove
        row = await ctx.session.get(ResourceReport, (resource.id_key, REPORTER))
        if row is not None and row.properties.get("installState") == UNINSTALLED:
            return
        await self._wait(resource, ctx, "uninstall")

    async def _wait(self, resource: Resource, ctx: WriteContext, what: str) -> None:
        """Pending until the deadline counted from the write (its ``changed_at``), then the cluster named."""
        started = _utc(resource.changed_at)
        limit = dt.timedelta(seconds=ctx.settings.extension_wait_seconds)
        if ctx.now - started < limit:
            raise Pending(f"waiting for the cluster to {what} extension {resource.name}", WAIT_RETRY_SECONDS)
        cluster_key = resource.parent_key or ""
        cluster = await ctx.session.get(ResourceReport, (cluster_key, CLUSTER_REPORTER))
        seen = cluster.properties if cluster is not None else {}
        status = connectivity_status(seen, ctx.now, dt.timedelta(seconds=ctx.settings.offline_threshold_seconds))
        last = seen.get("lastConnectivityTime") or "never"
        hint = " Delete it with forceDelete=true to remove the resource anyway." if what == "uninstall" else ""
        raise ClusterDidNotReport(
            f"The connected cluster did not report that it could {what} extension '{resource.name}' within "
            f"{_minutes(limit)}: its connectivityStatus is {status} (last connected: {last}). Check that the "
            f"cluster's agents are running and reach the control plane.{hint}"
        )

    def unseal(self, resource: Resource | None) -> dict[str, Any] | None:
        if resource is None or resource.sealed is None:
            return None
        value = self._sealer.unseal_json(resource.sealed)
        return value if isinstance(value, dict) else None


async def _agent_runs(ctx: WriteContext) -> None:
    """A write that changes what the cluster runs needs its extension-manager (a tags-only PATCH does not)."""
    cluster = ctx.resource_id.parent
    if cluster is not None:
        await require(ctx.session, cluster, EXTENSION_MANAGER, "extension")


def _utc(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _why(report: Mapping[str, Any]) -> str:
    for status in report.get("statuses") or ():
        if status.get("message"):
            return str(status["message"])
    return "no reason given"


def _minutes(limit: dt.timedelta) -> str:
    seconds = int(limit.total_seconds())
    return f"{seconds // 60} min" if seconds >= 60 and seconds % 60 == 0 else f"{seconds} s"


def desired_entry(
    resource: Resource, catalog: ExtensionTypeCatalog, sealed: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The extension as its cluster's agents receive it (the one builder: delivery sends it, provisioning waits for
    the agent to report its digest); protected settings in clear."""
    props = resource.properties
    version = target_version(props, catalog)
    etype = catalog.find(props.get("extensionType", ""))
    chart = chart_path(etype.name, version) if etype is not None and etype.published and version else None
    return {
        "name": resource.name,
        "id": resource.id,
        "extensionType": props.get("extensionType"),
        "version": version,
        "chart": chart,
        "autoUpgradeMinorVersion": props.get("autoUpgradeMinorVersion", True),
        "releaseTrain": props.get("releaseTrain"),
        "scope": props.get("scope"),
        "configurationSettings": props.get("configurationSettings") or {},
        PROTECTED: (sealed or {}).get(PROTECTED) or {},
    }


def _checked(catalog: ExtensionTypeCatalog, props: dict[str, Any], name: str, old: Mapping[str, Any]) -> dict[str, Any]:
    """The rules Arc applies: a known type, pinning or auto-upgrade (not both), one scope."""
    etype = catalog.find(props["extensionType"])
    if etype is None:
        raise InvalidRequest(
            f"Extension type '{props['extensionType']}' is not offered by this control plane; offered types: "
            f"{', '.join(catalog.names()) or 'none'}.",
            code="ExtensionTypeNotFound",
            target="properties.extensionType",
        )
    auto = props.setdefault("autoUpgradeMinorVersion", True)
    version = props.get("version")
    if auto and version:
        raise InvalidRequest(
            "properties.version pins the extension's version, which needs properties.autoUpgradeMinorVersion "
            "false; set one or the other.",
            code="InvalidVersionPinning",
            target="properties.version",
        )
    if not auto and props.get("releaseTrain"):
        raise InvalidRequest(
            "properties.releaseTrain applies only with properties.autoUpgradeMinorVersion true.",
            code="InvalidReleaseTrain",
            target="properties.releaseTrain",
        )
    if not auto and not version:
        raise InvalidRequest(
            "properties.version is required when properties.autoUpgradeMinorVersion is false.",
            code="InvalidVersionPinning",
            target="properties.version",
        )
    if version and not etype.offers(version) and version != old.get("version"):
        raise InvalidRequest(
            f"Version '{version}' of extension type '{etype.name}' is not offered; offered versions: "
            f"{', '.join(etype.versions)}.",
            code="ExtensionVersionNotFound",
            target="properties.version",
        )
    if auto:
        train = props.setdefault("releaseTrain", DEFAULT_TRAIN)
        if etype.newest(train) is None:
            raise InvalidRequest(
                f"Extension type '{etype.name}' has no release train '{train}'; its trains: "
                f"{', '.join(sorted(etype.trains))}.",
                code="InvalidReleaseTrain",
                target="properties.releaseTrain",
            )
    scope = props.get("scope") or {}
    cluster, namespace = scope.get("cluster"), scope.get("namespace")
    if cluster is not None and namespace is not None:
        raise InvalidRequest(
            "properties.scope names either 'cluster' or 'namespace', not both.", target="properties.scope"
        )
    if namespace is not None and not etype.namespace_scope_allowed:
        raise InvalidRequest(
            f"Extension type '{etype.name}' can only be installed at cluster scope.",
            code="InvalidScope",
            target="properties.scope",
        )
    if namespace is not None:
        scope = {"namespace": {"targetNamespace": namespace.get("targetNamespace") or name}}
    else:
        release = (cluster or {}).get("releaseNamespace") or etype.default_release_namespace or name
        scope = {"cluster": {"releaseNamespace": release}}
    old_scope = old.get("scope")
    if old_scope and old_scope != scope:
        raise InvalidRequest(
            "properties.scope cannot change; delete the extension and create it again.",
            code="PropertyChangeNotAllowed",
            target="properties.scope",
        )
    props["scope"] = scope
    props["extensionType"] = etype.name
    return props


def target_version(props: Mapping[str, Any], catalog: ExtensionTypeCatalog) -> str | None:
    """The version the cluster should run: the pinned one, or the newest on the release train (auto-upgrade)."""
    if not props.get("autoUpgradeMinorVersion", True):
        return props.get("version")
    etype = catalog.find(props.get("extensionType", ""))
    return etype.newest(props.get("releaseTrain") or DEFAULT_TRAIN) if etype is not None else None


def extension_type(services: TypeServices, clusters: ResourceType) -> ResourceType:
    return ResourceType(
        namespace=NAMESPACE,
        type_name="extensions",
        api_versions=API_VERSIONS,
        put_model=ExtensionPut,
        patch_model=ExtensionPatch,
        response_model=ExtensionOut,
        behaviour=ExtensionBehaviour(services.sealer),
        name_pattern=NAME_PATTERN,
        name_rule=NAME_RULE,
        display="extension",
        placement=Placement.EXTENSION,
        parent=clusters,
        requires_location=False,
        force_delete=True,
    )
