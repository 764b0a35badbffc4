"""The GitOps resource types: ``fluxConfigurations`` and the older ``sourceControlConfigurations``, one engine.

Both are extensions of a connected cluster. What the user wrote is the resource's properties (checked by
``fluxrules.py``); protected settings (ssh key, https key, bucket secret key) are sealed, never rendered, and
delivered only to the cluster's own agents (``delivery.py``). What config-agent reports (compliance, the Flux
objects' statuses, the synced commit) is its report row (reporter ``agent``), merged when rendered.

``provisioningState`` follows the cluster: a create or update stays Creating/Updating until config-agent reports it
wrote the Flux objects of this very write (its etag, the ``generation`` it was given), Failed if it reports it could
not; a delete stays Deleting until config-agent reports the objects removed, unless ``forceDelete``. A cluster whose
config-agent never polled (never connected, or connected with agents that have none) is told at once, by the rule
extensions share (``agentpresence.py``): a write is refused (``AgentNotRunning``, naming the command that starts
config-agent), a delete done; a config-agent that polled once and is silent now is waited for, up to
``extension_wait_seconds`` as an extension's extension-manager is.
"""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from halyard.controlplane.arm.operations import Pending
from halyard.controlplane.arm.resourcetypes import (
    Desired,
    Placement,
    PlainBehaviour,
    RenderContext,
    ResourceType,
    WriteContext,
)
from halyard.controlplane.configuration import fluxrules
from halyard.controlplane.configuration.agentpresence import CONFIG_AGENT, ClusterDidNotReport, has_run, require
from halyard.controlplane.configuration.fluxmodels import (
    ConfigurationOut,
    FluxConfigurationPatch,
    FluxConfigurationPut,
    SourceControlPatch,
    SourceControlPut,
)
from halyard.core.errors import Conflict, HalyardError, InvalidRequest
from halyard.core.sealing import Sealer
from halyard.store.models import Resource, ResourceReport

if TYPE_CHECKING:
    from halyard.controlplane.plane import TypeServices

NAMESPACE = "Microsoft.KubernetesConfiguration"
FLUX_TYPE = "fluxConfigurations"
SOURCE_CONTROL_TYPE = "sourceControlConfigurations"
FLUX_KEY = f"{NAMESPACE}/{FLUX_TYPE}".lower()
SOURCE_CONTROL_KEY = f"{NAMESPACE}/{SOURCE_CONTROL_TYPE}".lower()
# The versions the SDKs (fluxconfigurations 1.0.0: 2025-04-01; kubernetesconfiguration 3.x: 2023-05-01) and
# `az k8s-configuration flux` (2022-07-01) send, and the others of the REST specs.
FLUX_API_VERSIONS = (
    "2025-04-01",
    "2024-11-01",
    "2023-05-01",
    "2022-11-01",
    "2022-07-01",
    "2022-03-01",
    "2026-07-01-preview",
    "2024-04-01-preview",
    "2022-01-01-preview",
    "2021-11-01-preview",
)
SOURCE_CONTROL_API_VERSIONS = ("2024-11-01", "2023-05-01", "2022-11-01", "2022-07-01", "2022-03-01", "2021-03-01")
REPORTER = "agent"  # config-agent's report row on each configuration
LOGS_REPORTER = "fluxlogs"  # flux-logs-agent's events, a row of their own (never rendered in the resource)
PROTECTED = "configurationProtectedSettings"
REPORTED = (
    "complianceState",
    "statuses",
    "sourceSyncedCommitId",
    "sourceUpdatedAt",
    "statusUpdatedAt",
    "errorMessage",
    "repositoryPublicKey",
)
RECHECK_SECONDS = 2.0  # how often a waiting operation looks again; config-agent's report wakes it sooner (make_due)


class _Sealed:
    def __init__(self, sealer: Sealer) -> None:
        self._sealer = sealer

    def unseal(self, resource: Resource | None) -> dict[str, Any] | None:
        if resource is None or resource.sealed is None:
            return None
        value = self._sealer.unseal_json(resource.sealed)
        return value if isinstance(value, dict) else None

    def protected(self, resource: Resource | None) -> dict[str, str]:
        return dict((self.unseal(resource) or {}).get(PROTECTED) or {})


async def _agent_report(session: Any, resource: Resource) -> Mapping[str, Any] | None:
    row = await session.get(ResourceReport, (resource.id_key, REPORTER))
    return row.properties if row is not None else None


async def _ever_connected(session: Any, resource: Resource) -> bool:
    """Whether the cluster has ever run a config-agent (it has polled at least once)."""
    return bool(resource.parent_key) and await has_run(session, resource.parent_key or "", CONFIG_AGENT)


async def _agent_runs(ctx: WriteContext, display: str) -> None:
    cluster = ctx.resource_id.parent
    if cluster is not None:
        await require(ctx.session, cluster, CONFIG_AGENT, display)


async def _name_taken(ctx: WriteContext, other_key: str, other_display: str) -> None:
    """A fluxConfiguration and a sourceControlConfiguration of one name would write the same Flux objects."""
    parent = ctx.resource_id.parent
    if parent is None:
        return
    other = parent.extension(NAMESPACE, other_key.split("/")[1], ctx.resource_id.name)
    if await ctx.session.get(Resource, other.key) is not None:
        raise Conflict(
            f"A {other_display} named '{ctx.resource_id.name}' already exists on this cluster; its Flux objects "
            "bear the same names. Choose another name.",
            code="ConfigurationNameInUse",
        )


class _WaitsForCluster(_Sealed):
    """Provisioning and deletion that wait on config-agent's report (the seam's ``Pending``)."""

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        if not await _ever_connected(ctx.session, resource):
            return
        report = await _agent_report(ctx.session, resource) or {}
        if report.get("appliedGeneration") == resource.etag:
            if report.get("state") == "Failed":
                raise HalyardError(
                    f"The cluster could not apply the configuration: {report.get('errorMessage') or 'no reason'}",
                    code="ConfigurationApplyFailed",
                )
            return
        changed = resource.changed_at
        if changed is not None and changed.tzinfo is None:
            changed = changed.replace(tzinfo=dt.UTC)
        limit = dt.timedelta(seconds=ctx.settings.extension_wait_seconds)
        if changed is not None and ctx.now - changed > limit:
            seconds = int(limit.total_seconds())
            raise ClusterDidNotReport(
                "The cluster's config-agent did not report applying this configuration within "
                f"{f'{seconds // 60} min' if seconds % 60 == 0 else f'{seconds} s'}; check the cluster's "
                "connectivity and agents."
            )
        raise Pending("waiting for config-agent to apply the configuration", retry_after=RECHECK_SECONDS)

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        if ctx.force or not await _ever_connected(ctx.session, resource):
            return
        report = await _agent_report(ctx.session, resource) or {}
        if report.get("state") != "Removed":
            raise Pending("waiting for config-agent to remove the Flux objects", retry_after=RECHECK_SECONDS)


class FluxConfigurationBehaviour(_WaitsForCluster, PlainBehaviour):
    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, FluxConfigurationPut)
        if existing is None:
            await _name_taken(ctx, SOURCE_CONTROL_KEY, "sourceControlConfiguration")
        props = body.properties.model_dump(exclude_none=True)
        given = props.pop(PROTECTED, None)
        # A client echoing a GET back sends no protected settings (they are never returned): keep the stored ones.
        protected = given if given is not None else self.protected(existing)
        old = existing.properties if existing is not None else None
        props = fluxrules.checked(props, ctx.resource_id.name, protected, old)
        await _agent_runs(ctx, "Flux configuration")
        return Desired(location=None, tags=body.tags or {}, properties=props, sealed={PROTECTED: protected})

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, FluxConfigurationPatch)
        props = copy.deepcopy(existing.properties)
        protected = self.protected(existing)
        if body.properties is not None:
            changes = body.properties.model_dump(exclude_unset=True)
            secrets = changes.pop(PROTECTED, None)
            kind = changes.get("sourceKind")
            if kind is not None and kind != props.get("sourceKind"):  # a new kind of source replaces the old one
                for key in fluxrules.SOURCES.values():
                    props.pop(key, None)
            props = fluxrules.merge_patch(props, changes)
            if secrets is not None:
                merged = {**protected, **secrets}
                protected = {k: v for k, v in merged.items() if v is not None}
            props = fluxrules.checked(props, ctx.resource_id.name, protected, existing.properties)
            await _agent_runs(ctx, "Flux configuration")
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=None, tags=tags, properties=props, sealed={PROTECTED: protected})

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = copy.deepcopy(resource.properties)
        props.pop(PROTECTED, None)
        props["configurationProtectedSettings"] = {}  # Arc answers an empty map: the names are not shown either
        for key in REPORTED:
            props[key] = copy.deepcopy(reported.get(key))
        if props["complianceState"] is None:
            props["complianceState"] = "Suspended" if props.get("suspend") else "Pending"
        props["statuses"] = props["statuses"] or []
        for source in ("gitRepository", "bucket", "ociRepository", "azureBlob"):
            props.setdefault(source, None)
        return props


class SourceControlBehaviour(_WaitsForCluster, PlainBehaviour):
    """Flux v1's API on the Flux v2 engine: one GitRepository and one Kustomization (``fluxrules``). Its PUT is
    synchronous in Arc (the answer's body is the resource); it is not waited on, its deletion is."""

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        assert isinstance(body, SourceControlPut)
        if existing is None:
            await _name_taken(ctx, FLUX_KEY, "fluxConfiguration")
        props = body.properties.model_dump(exclude_none=True)
        given = props.pop(PROTECTED, None)
        protected = given if given is not None else self.protected(existing)
        fluxrules.check_source_control(props)
        props.setdefault("operatorNamespace", fluxrules.DEFAULT_NAMESPACE)
        props.setdefault("operatorInstanceName", ctx.resource_id.name)
        props.setdefault("operatorType", "Flux")
        props.setdefault("operatorScope", "namespace")
        props.setdefault("operatorParams", "")
        props.setdefault("enableHelmOperator", False)
        if existing is not None:
            for key in ("operatorNamespace", "operatorScope", "operatorInstanceName"):
                if existing.properties.get(key) != props[key]:
                    raise InvalidRequest(
                        f"properties.{key} cannot change; delete the configuration and create it again.",
                        code="PropertyChangeNotAllowed",
                        target=f"properties.{key}",
                    )
        await _agent_runs(ctx, "source control configuration")
        return Desired(location=None, tags=body.tags or {}, properties=props, sealed={PROTECTED: protected})

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        assert isinstance(body, SourceControlPatch)
        tags = body.tags if body.tags is not None else existing.tags
        return Desired(location=None, tags=tags, properties=existing.properties, sealed=None)

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        return None

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        props = copy.deepcopy(resource.properties)
        props.pop(PROTECTED, None)
        props["configurationProtectedSettings"] = {}
        props["repositoryPublicKey"] = reported.get("repositoryPublicKey") or ""
        props["complianceStatus"] = compliance_status(reported)
        return props

    def provisioning_state(self, resource: Resource, reported: Mapping[str, Any]) -> str:
        state = resource.provisioning_state
        if state in ("Provisioning", "Updating"):
            return "Running"  # the older API's word for an operator being installed
        return state


def compliance_status(reported: Mapping[str, Any]) -> dict[str, Any]:
    """The older API's ``complianceStatus`` from the one roll-up config-agent reports for both types."""
    state = reported.get("complianceState")
    mapped = {"Compliant": "Installed", "Non-Compliant": "Failed", "Suspended": "Noncompliant"}.get(
        state or "", "Pending"
    )
    message = reported.get("errorMessage") or ""
    return {
        "complianceState": mapped,
        "lastConfigApplied": reported.get("sourceUpdatedAt"),
        "message": message or ({"Installed": "Applied", "Pending": "Waiting for the cluster"}.get(mapped, "")),
        "messageLevel": "Error" if mapped == "Failed" else "Information",
    }


def flux_configuration_type(services: TypeServices, clusters: ResourceType) -> ResourceType:
    return ResourceType(
        namespace=NAMESPACE,
        type_name=FLUX_TYPE,
        api_versions=FLUX_API_VERSIONS,
        put_model=FluxConfigurationPut,
        patch_model=FluxConfigurationPatch,
        response_model=ConfigurationOut,
        behaviour=FluxConfigurationBehaviour(services.sealer),
        name_pattern=fluxrules.CONFIG_NAME,
        name_rule=fluxrules.CONFIG_NAME_RULE,
        display="Flux configuration",
        placement=Placement.EXTENSION,
        parent=clusters,
        requires_location=False,
        force_delete=True,
    )


def source_control_type(services: TypeServices, clusters: ResourceType) -> ResourceType:
    return ResourceType(
        namespace=NAMESPACE,
        type_name=SOURCE_CONTROL_TYPE,
        api_versions=SOURCE_CONTROL_API_VERSIONS,
        put_model=SourceControlPut,
        patch_model=SourceControlPatch,
        response_model=ConfigurationOut,
        behaviour=SourceControlBehaviour(services.sealer),
        name_pattern=fluxrules.CONFIG_NAME,
        name_rule=fluxrules.CONFIG_NAME_RULE,
        display="source control configuration",
        placement=Placement.EXTENSION,
        parent=clusters,
        requires_location=False,
    )
