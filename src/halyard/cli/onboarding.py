"""``halyard connectedk8s connect``: pre-check a cluster, create its connectedCluster resource, install the agents,
and wait for ``Connected``. Also the cluster-side cleanup ``connectedk8s delete`` calls (:func:`disconnect_cluster`).

Order matters for "nothing half-created": every check that can fail runs before the first write; a failure after
the resource is created deletes it again.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError

from halyard.api import cluster as names
from halyard.api.agents import HIS_ENDPOINTS_PATH, EndpointMap, ServiceEndpoints
from halyard.cli import agent as local_agents
from halyard.cli.arm import ArmClient
from halyard.cli.connectedk8s import API_VERSION, flatten
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.keyvalues import parse_tags
from halyard.controlplane.kubernetes.connectedclusters import NAME_PATTERN, NAME_RULE
from halyard.kube import onboarding as kube_onboarding
from halyard.kube.agentpods import agent_pod_problems
from halyard.kube.client import KubeConfigError, server_version
from halyard.kube.client import connect as kube_connect
from halyard.kube.facts import ClusterFacts
from halyard.kube.helm import Helm, HelmError, agent_chart
from halyard.kube.observe import observe_cluster

PROVIDER = "Microsoft.Kubernetes"
PROVIDERS_API_VERSION = "2022-12-01"
GROUPS_API_VERSION = "2022-12-01"
AGENT_MODES = ("in-cluster", "local")
POD_CHECK_SECONDS = 3.0  # how often the wait for in-cluster agents looks at their pods
LABEL_SELECTOR = ",".join(f"{k}={v}" for k, v in names.AGENT_WORKLOAD_LABEL.items())
T = TypeVar("T")


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
            "halyard sim cluster, where nothing runs).",
        ),
    ] = None,
    onboarding_timeout: Annotated[
        int, typer.Option("--onboarding-timeout", help="Seconds to wait for the agents to connect.")
    ] = 1200,
    agent_registry: Annotated[
        str | None, typer.Option("--agent-registry", help="Registry of the agent image (in-cluster mode).")
    ] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return once the resource exists.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
) -> None:
    """Connect a Kubernetes cluster: create its connected-cluster resource and install Halyard's agents in it."""
    inv = Invocation.of(ctx)
    if agent_mode is not None and agent_mode not in AGENT_MODES:
        raise UsageError(f"--agent-mode must be one of {', '.join(AGENT_MODES)}.")
    if not NAME_PATTERN.match(name):
        raise CliError(f"The connected cluster name '{name}' is invalid. {NAME_RULE}", "InvalidResourceName")
    onboarding = Onboarding(inv, resource_group, name, kube_config, kube_context, agent_mode, agent_registry)
    result = onboarding.run(
        location=location,
        tags=parse_tags(tags) or {},
        distribution=distribution,
        distribution_version=distribution_version,
        infrastructure=infrastructure,
        auto_upgrade=not disable_auto_upgrade,
        timeout=onboarding_timeout,
        wait=not no_wait,
    )
    inv.emit(flatten(result))


class Onboarding:
    def __init__(
        self,
        inv: Invocation,
        group: str,
        name: str,
        kubeconfig: Path | None,
        context: str | None,
        agent_mode: str | None = None,  # None: in-cluster, or local for a simulated cluster
        registry: str | None = None,
    ) -> None:
        self.inv = inv
        self.agent_mode = agent_mode
        self.registry = registry
        self.arm: ArmClient = inv.arm
        self.group = group
        self.name = name
        self.kubeconfig = kubeconfig.expanduser().resolve() if kubeconfig else None
        self.context = context
        self.resource_id = (
            f"/subscriptions/{inv.subscription_id}/resourceGroups/{group}/providers/{PROVIDER}/connectedClusters/{name}"
        )

    def run(
        self,
        *,
        location: str | None,
        tags: dict[str, str],
        distribution: str | None,
        distribution_version: str | None,
        infrastructure: str | None,
        auto_upgrade: bool,
        timeout: int,
        wait: bool,
    ) -> dict[str, Any]:
        with self.inv.progress("Checking the cluster"):
            facts = self._kube(_check_cluster)
        if self.agent_mode is None:
            self.agent_mode = "local" if facts.simulated else "in-cluster"
            if facts.simulated:
                self.inv.note(
                    "The cluster is a Halyard simulator, where nothing runs: its agents run on this machine "
                    "(--agent-mode local)."
                )
        helm = self._helm() if self.agent_mode == "in-cluster" else None
        with self.inv.progress("Checking the control plane"):
            endpoints = self._endpoints()
            group_location = self._check_group()
            location = location or group_location
            self._check_provider(location)
            existing = self._get(self.resource_id)
            onboarded = self._kube(kube_onboarding.read_onboarding)
        key_pem = self._decide_key(existing, onboarded)
        created = existing is None
        public_key = _public_key_b64(key_pem)
        body: dict[str, Any] = {
            "location": location,
            "tags": tags or (existing or {}).get("tags") or {},
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "agentPublicKeyCertificate": public_key,
                "distribution": distribution or _prop(existing, "distribution") or facts.distribution,
                "infrastructure": infrastructure or _prop(existing, "infrastructure") or facts.infrastructure,
                "arcAgentProfile": _agent_profile(existing, auto_upgrade),
            },
        }
        if distribution_version:
            body["properties"]["distributionVersion"] = distribution_version
        try:
            with self.inv.progress("Creating the connected cluster"):
                first = self.arm.request("PUT", self.resource_id, params={"api-version": API_VERSION}, json=body)
                resource = self.arm.wait("PUT", self._url(self.resource_id), first) or {}
            with self.inv.progress("Installing the agents"):
                self._kube(
                    lambda c: kube_onboarding.install(
                        c,
                        resource_id=str(resource.get("id") or self.resource_id),
                        location=str(resource.get("location") or location),
                        endpoints=endpoints,
                        ca_bundle=self._ca_bundle(),
                        onboarding_key_pem=key_pem,
                    )
                )
                if helm is not None:
                    values = {"image.registry": self.registry} if self.registry else {}
                    pinned = _pinned_version(resource)
                    if pinned:  # a re-run keeps the agents on the version pinned with upgrade, not the chart's
                        values["image.tag"] = pinned
                    helm.install(agent_chart(), values)
                else:
                    local_agents.start_detached(self.state_dir, self.kubeconfig, self.context)
        except BaseException as exc:
            if created:  # leave nothing half-created: no resource without agents, no agents without a resource
                self._undo()
            if isinstance(exc, HelmError):
                raise CliError(f"Installing the agent chart failed: {exc}", "HelmInstallFailed") from None
            raise
        if not wait:
            return resource
        return self._wait_connected(timeout)

    @property
    def state_dir(self) -> Path:
        return local_agents.state_dir_for(self.resource_id)

    # ---- checks ------------------------------------------------------------------------------------------------

    def _kube(self, step: Callable[[AsyncClient], Awaitable[T]]) -> T:
        return on_cluster(self.kubeconfig, self.context, step)

    def _endpoints(self) -> EndpointMap:
        url = self.arm.server + "/his" + HIS_ENDPOINTS_PATH
        try:
            response = self.inv.transport().send("GET", url)
        except CliError as exc:
            raise CliError(
                f"The control plane's agent endpoints are unreachable: {exc.message}", "EndpointsUnreachable"
            ) from None
        if response.status_code != 200:
            raise CliError(
                f"The control plane does not publish agent endpoints ({url} answered {response.status_code}).",
                "EndpointsUnreachable",
            )
        services = ServiceEndpoints.model_validate(response.json())
        for service, address in (("his", services.his), ("dp", services.dp)):
            try:
                self.inv.transport().send("GET", address.rstrip("/") + "/")
            except CliError as exc:
                raise CliError(
                    f"The {service} endpoint {address} is unreachable: {exc.message}", "EndpointsUnreachable"
                ) from None
        return EndpointMap(**services.model_dump(), tenant=self.inv.subscription().tenantId)

    def _check_group(self) -> str:
        path = f"/subscriptions/{self.inv.subscription_id}/resourcegroups/{self.group}"
        response = self.arm.send("GET", path, params={"api-version": GROUPS_API_VERSION})
        if response.status_code == 404:
            raise CliError(
                f"Resource group '{self.group}' could not be found. Create it first: "
                f"halyard group create -n {self.group} -l <location>.",
                "ResourceGroupNotFound",
            )
        group = self.arm.request("GET", path, params={"api-version": GROUPS_API_VERSION}).json()
        return str(group.get("location", ""))

    def _check_provider(self, location: str) -> None:
        provider = self.arm.get(
            f"/subscriptions/{self.inv.subscription_id}/providers/{PROVIDER}", PROVIDERS_API_VERSION
        )
        state = str(provider.get("registrationState", ""))
        if state not in ("Registered", "Registering"):
            raise CliError(
                f"The resource provider {PROVIDER} is not registered ({state or 'NotRegistered'}). Register it: "
                f"halyard provider register -n {PROVIDER}.",
                "ProviderNotRegistered",
            )
        allowed: list[str] = []
        for rtype in provider.get("resourceTypes", []):
            if str(rtype.get("resourceType", "")).lower() == "connectedclusters":
                allowed = [str(loc) for loc in rtype.get("locations", [])]
        wanted = _normal(location)
        if allowed and wanted not in {_normal(a) for a in allowed}:
            raise CliError(
                f"The location '{location}' is not available for connected clusters. Available: {', '.join(allowed)}.",
                "InvalidLocation",
            )

    def _decide_key(self, existing: dict[str, Any] | None, onboarded: kube_onboarding.Onboarded | None) -> bytes:
        """The onboarding key: reused on an idempotent re-run, new otherwise; refuses a cluster/resource mix-up."""
        if onboarded is not None and onboarded.resource_id.lower() != self.resource_id.lower():
            if self._get(onboarded.resource_id) is not None:
                raise CliError(
                    f"This Kubernetes cluster is already connected as {onboarded.resource_id}. Delete that connected "
                    "cluster first (halyard connectedk8s delete) to connect it under another name.",
                    "ClusterAlreadyOnboarded",
                )
            onboarded = None  # left behind by a deleted resource: overwritten below
        if existing is not None:
            stored = _prop(existing, "agentPublicKeyCertificate")
            if (
                onboarded is None
                or not onboarded.onboarding_key_pem
                or _public_key_b64(onboarded.onboarding_key_pem) != stored
            ):
                raise CliError(
                    f"The connected cluster '{self.name}' already exists and corresponds to a different Kubernetes "
                    "cluster. Delete it or choose another name.",
                    "ResourceBoundToAnotherCluster",
                )
            return onboarded.onboarding_key_pem
        key = ec.generate_private_key(ec.SECP256R1())
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    # ---- after the PUT -----------------------------------------------------------------------------------------

    def _wait_connected(self, timeout: int) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        resource: dict[str, Any] = {}
        next_pod_check = time.monotonic() + POD_CHECK_SECONDS
        with self.inv.progress("Waiting for the agents to connect"):
            while time.monotonic() < deadline:
                resource = self._get(self.resource_id) or {}
                status = _prop(resource, "connectivityStatus")
                if status == "Connected":
                    return resource
                if status == "Expired":
                    break
                if self.agent_mode == "local" and local_agents.running_pid(self.state_dir) is None:
                    raise CliError(
                        f"The local agents stopped before connecting. Their log: {self.state_dir / local_agents.LOG_FILE}",
                        "AgentsNotRunning",
                    )
                if self.agent_mode == "in-cluster" and time.monotonic() >= next_pod_check:
                    self._check_agent_pods()
                    next_pod_check = time.monotonic() + POD_CHECK_SECONDS
                time.sleep(0.5)
        raise CliError(
            f"The agents did not connect within {timeout} s (status {_prop(resource, 'connectivityStatus')}). "
            + self._where_to_look(),
            "OnboardingTimeout",
        )

    def _check_agent_pods(self) -> None:
        """Stop waiting when the agents' pods are stuck in a state only the user can get them out of."""
        problems = self._kube(agent_pod_problems)
        if not problems:
            return
        hint = (
            "If the cluster cannot reach the image's registry, mirror the image and run connect again with "
            "--agent-registry."
            if any(p.cannot_pull for p in problems)
            else self._where_to_look()
        )
        raise CliError(
            f"The agents cannot start: {'; '.join(map(str, problems))}. The connected cluster and the agents' release are kept, "
            f"so fixing the cause and running connect again completes the onboarding. {hint}",
            "AgentsNotRunning",
        )

    def _where_to_look(self) -> str:
        if self.agent_mode == "in-cluster":
            return (
                f"Their pods: kubectl -n {names.NAMESPACE} get pods -l {LABEL_SELECTOR}; their logs: kubectl -n "
                f"{names.NAMESPACE} logs -l {LABEL_SELECTOR} --all-containers."
            )
        return f"Their log: {self.state_dir / local_agents.LOG_FILE}"

    def _helm(self) -> Helm:
        return find_helm(self.kubeconfig, self.context)

    def _undo(self) -> None:
        try:
            disconnect_cluster(self.resource_id, self.kubeconfig, self.context)
        except Exception as exc:  # best effort: report what is left, do not hide the original error
            self.inv.warn(f"could not remove the agents after the failed onboarding: {exc}")
        self._delete_resource()

    def _delete_resource(self) -> None:
        try:
            first = self.arm.request("DELETE", self.resource_id, params={"api-version": API_VERSION})
            if first.status_code == 202:
                self.arm.wait("DELETE", self._url(self.resource_id), first)
        except CliError as exc:
            self.inv.warn(f"could not delete {self.resource_id} after the failed onboarding: {exc.message}")

    def _url(self, resource_id: str) -> str:
        return f"{self.arm.url(resource_id)}?api-version={API_VERSION}"

    def _get(self, resource_id: str) -> dict[str, Any] | None:
        response = self.arm.send("GET", resource_id, params={"api-version": API_VERSION})
        if response.status_code == 404:
            return None
        if response.status_code >= 400:
            self.arm.request("GET", resource_id, params={"api-version": API_VERSION})  # raises its ARM error
        body: dict[str, Any] = response.json()
        return body

    def _ca_bundle(self) -> str:
        path = self.inv.profile.caCert
        return Path(path).read_text() if path else ""


def on_cluster(kubeconfig: Path | None, context: str | None, step: Callable[[AsyncClient], Awaitable[T]]) -> T:
    """Run one async step against the cluster, turning client failures into one clear error line."""
    try:
        return _with_cluster(kubeconfig, context, step)
    except KubeConfigError as exc:
        raise CliError(f"The kubeconfig cannot be used: {exc}.", "KubeconfigError") from None
    except ApiError as exc:
        raise CliError(
            f"The Kubernetes API server refused a request: {exc.status.code} {exc.status.message}.",
            "KubernetesApiError",
        ) from None
    except CliError:
        raise
    except Exception as exc:  # connection refused, TLS, DNS, timeouts (httpx under lightkube)
        raise CliError(
            f"The Kubernetes API server cannot be reached: {type(exc).__name__}: {exc}. Check the kubeconfig, "
            "the context and that the cluster is running.",
            "KubernetesConnectivityError",
        ) from None


def find_helm(kubeconfig: Path | None, context: str | None) -> Helm:
    """The real helm for the in-cluster agents, with the agent chart present: checked before anything is written."""
    try:
        helm = Helm.find(kubeconfig, context)
        agent_chart()
    except HelmError as exc:
        raise CliError(str(exc), "HelmNotFound") from None
    return helm


def disconnect_cluster(resource_id: str, kubeconfig: Path | None, context: str | None) -> list[str]:
    """Remove what onboarding put on this machine and in the cluster for ``resource_id``; what was removed.

    Stops the local agents of the resource; then, if the cluster is onboarded as that resource (or carries no
    onboarding), uninstalls the agent chart (Deployments, RBAC) and deletes the ``halyard-system`` namespace
    (Secrets, ConfigMap). A cluster onboarded as another resource is left alone.
    """
    removed = []
    if local_agents.stop_detached(local_agents.state_dir_for(resource_id)):
        removed.append("local agents")

    async def ours(client: AsyncClient) -> bool:
        onboarded = await kube_onboarding.read_onboarding(client)
        return onboarded is None or onboarded.resource_id.lower() == resource_id.lower()

    if not _with_cluster(kubeconfig, context, ours):
        return removed
    try:
        helm: Helm | None = Helm.find(kubeconfig, context)
    except HelmError:
        helm = None  # no helm on this machine: it installed no chart
    if helm is not None and helm.uninstall():
        removed.append("agent chart")
    if _with_cluster(kubeconfig, context, kube_onboarding.uninstall):
        removed.append("namespace halyard-system")
    return removed


def _with_cluster(kubeconfig: Path | None, context: str | None, step: Callable[[AsyncClient], Awaitable[T]]) -> T:
    async def run() -> T:
        client = kube_connect(kubeconfig, context)
        try:
            return await step(client)
        finally:
            await client.close()

    return asyncio.run(run())


async def _check_cluster(client: AsyncClient) -> ClusterFacts:
    await server_version(client)  # the API server answers (and these credentials are accepted)
    missing = await kube_onboarding.missing_access(client)
    if missing:
        raise CliError(
            "The current kubeconfig user lacks permissions needed to install the agents: "
            + ", ".join(missing)
            + ". Use a cluster-admin context.",
            "InsufficientPermissions",
        )
    facts = await observe_cluster(client)
    if facts.linux_nodes == 0:
        raise CliError("The cluster has no Linux node; the agents need at least one.", "NoLinuxNode")
    return facts


def _public_key_b64(private_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _prop(resource: dict[str, Any] | None, key: str) -> Any:
    return ((resource or {}).get("properties") or {}).get(key)


def _agent_profile(existing: dict[str, Any] | None, auto_upgrade: bool) -> dict[str, Any]:
    """The flag's auto-upgrade, keeping a version pinned since (``connectedk8s upgrade``): a re-run of connect
    is idempotent, it does not undo what other commands set."""
    profile: dict[str, Any] = {"agentAutoUpgrade": "Enabled" if auto_upgrade else "Disabled"}
    pinned = (_prop(existing, "arcAgentProfile") or {}).get("desiredAgentVersion")
    if pinned:
        profile["desiredAgentVersion"] = pinned
    return profile


def _pinned_version(resource: dict[str, Any]) -> str | None:
    """The agent version the resource pins (auto-upgrade off and a desired version), as the server stored it."""
    profile = _prop(resource, "arcAgentProfile") or {}
    if profile.get("agentAutoUpgrade") == "Disabled" and profile.get("desiredAgentVersion"):
        return str(profile["desiredAgentVersion"])
    return None


def _normal(location: str) -> str:
    return location.replace(" ", "").lower()
