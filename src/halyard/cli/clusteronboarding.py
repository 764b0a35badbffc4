"""Connecting a cluster: pre-check it, create its connectedCluster resource, install the agents, wait for
``Connected``. The library behind ``halyard connectedk8s connect`` (``onboarding.py``, the command) and the region
move (``regionmove.py``), which connects the same cluster again in its new location.

Order matters for "nothing half-created": every check that can fail runs before the first write; a failure after
the resource is created deletes it again.
"""

from __future__ import annotations

import base64
import os
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from lightkube import AsyncClient

from halyard.api.agents import HIS_ENDPOINTS_PATH, EndpointMap, ServiceEndpoints
from halyard.api.cluster import DEFAULT_FEATURES
from halyard.cli.agentplacement import Agents, AgentsNetwork, choose, remove_agents
from halyard.cli.arm import ArmClient
from halyard.cli.connectedclusters import API_VERSION, NAMESPACE, cluster_id, pinned_version, prop
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError
from halyard.cli.gateways import API_VERSION as GATEWAY_API_VERSION
from halyard.cli.gateways import ProxySettings, link, with_proxy
from halyard.cli.kubesession import KubeSession
from halyard.cli.resourceids import group_scope, provider_id
from halyard.kube import onboarding as kube_onboarding
from halyard.kube.client import server_version
from halyard.kube.facts import ClusterFacts
from halyard.kube.observe import observe_cluster

PROVIDER = NAMESPACE
PROVIDERS_API_VERSION = "2022-12-01"
GROUPS_API_VERSION = "2022-12-01"


class Onboarding:
    def __init__(
        self,
        inv: Invocation,
        kube: KubeSession,
        group: str,
        name: str,
        agent_mode: str | None = None,  # None: in-cluster, or local for a simulated cluster
        registry: str | None = None,
    ) -> None:
        self.inv = inv
        self.kube = kube
        self.agent_mode = agent_mode
        self.registry = registry
        self.arm: ArmClient = inv.arm
        self.group = group
        self.name = name
        self.resource_id = cluster_id(inv.subscription_id, group, name)
        self.gateway: str | None = None  # --gateway-resource-id, checked
        self.proxy = ProxySettings()  # --proxy-*, checked

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
        yes: bool = False,
        private_link_scope: str | None = None,
    ) -> dict[str, Any]:
        with self.inv.progress("Checking the cluster"):
            facts = self.kube.run(_check_cluster)
        if self.agent_mode is None and facts.simulated:
            self.inv.note(
                "The cluster is a Halyard simulator, where nothing runs: its agents run on this machine "
                "(--agent-mode local)."
            )
        agents = choose(self.agent_mode, facts, self.kube, self.resource_id)  # in-cluster: helm checked here
        with self.inv.progress("Checking the control plane"):
            endpoints = self._endpoints()
            group_location = self._check_group()
            location = location or group_location
            self._check_provider(location)
            existing = self._get(self.resource_id)
            onboarded = self.kube.run(kube_onboarding.read_onboarding)
            gateway_url = None
            if self.gateway is not None:  # it must exist: its 404 is the error
                gateway_url = (self.arm.get(self.gateway, GATEWAY_API_VERSION).get("properties") or {}).get(
                    "gatewayUrl"
                )
        obstacle = agents.obstacle(facts, endpoints)
        if obstacle:
            self._confirm_despite(obstacle, yes)
        key_pem = self._decide_key(existing, onboarded)
        created = existing is None
        public_key = _public_key_b64(key_pem)
        body: dict[str, Any] = {
            "location": location,
            "tags": tags or (existing or {}).get("tags") or {},
            "identity": {"type": "SystemAssigned"},
            "properties": {
                "agentPublicKeyCertificate": public_key,
                "distribution": distribution or prop(existing, "distribution") or facts.distribution,
                "infrastructure": infrastructure or prop(existing, "infrastructure") or facts.infrastructure,
                "arcAgentProfile": _agent_profile(existing, auto_upgrade),
            },
        }
        if distribution_version:
            body["properties"]["distributionVersion"] = distribution_version
        if not self.proxy.empty:
            with_proxy(body, self.proxy)
        if private_link_scope:
            body["properties"]["privateLinkState"] = "Enabled"
            body["properties"]["privateLinkScopeResourceId"] = private_link_scope
        try:
            with self.inv.progress("Creating the connected cluster"):
                first = self.arm.request("PUT", self.resource_id, params={"api-version": API_VERSION}, json=body)
                resource = self.arm.wait("PUT", self._url(self.resource_id), first) or {}
                if self.gateway is not None:
                    link(self.inv, self.resource_id, self.gateway)
                _agents_network(gateway_url, self.proxy)
            with self.inv.progress("Installing the agents"):
                self.kube.run(
                    lambda c: kube_onboarding.install(
                        c,
                        resource_id=str(resource.get("id") or self.resource_id),
                        location=str(resource.get("location") or location),
                        endpoints=endpoints,
                        ca_bundle=self._ca_bundle(),
                        onboarding_key_pem=key_pem,
                    )
                )
                agents.install(
                    registry=self.registry,
                    pinned=pinned_version(resource),
                    features=onboarded.features if onboarded else DEFAULT_FEATURES,
                    network=AgentsNetwork(
                        gateway=gateway_url.removeprefix("https://") if gateway_url else None,
                        proxy=self.proxy.https or self.proxy.http,
                        skip_range=self.proxy.skip_range,
                        proxy_cert=self.proxy.cert_pem,
                    ),
                )
        except BaseException:
            if created:  # leave nothing half-created: no resource without agents, no agents without a resource
                self._undo()
            raise
        if not wait:
            return resource
        return self._wait_connected(agents, timeout, obstacle)

    def check_target(self, location: str) -> None:
        """The group exists and the provider offers ``location``: what a caller checks before changing anything
        else (the region move, before it deletes the old resource)."""
        self._check_group()
        self._check_provider(location)

    # ---- checks ------------------------------------------------------------------------------------------------

    def _confirm_despite(self, obstacle: str, yes: bool) -> None:
        """Ask before installing agents that evidently cannot connect (a simulator, a loopback control plane):
        without a terminal, refuse at once rather than wait out the onboarding timeout; ``--yes`` goes ahead (the
        tests run such agents' processes themselves)."""
        if yes:
            return
        if not sys.stdin.isatty():
            raise CliError(
                f"{obstacle} Connect with --agent-mode local, or add --yes to install the agents in the cluster "
                "anyway.",
                "AgentsCannotConnect",
            )
        self.inv.warn(obstacle)
        self.inv.confirm("Install the agents in the cluster anyway?", yes)

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
        path = group_scope(self.inv.subscription_id, self.group)
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
        provider = self.arm.get(provider_id(self.inv.subscription_id, PROVIDER), PROVIDERS_API_VERSION)
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
            stored = prop(existing, "agentPublicKeyCertificate")
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

    def _wait_connected(self, agents: Agents, timeout: int, obstacle: str | None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        resource: dict[str, Any] = {}
        with self.inv.progress("Waiting for the agents to connect"):
            while time.monotonic() < deadline:
                resource = self._get(self.resource_id) or {}
                status = prop(resource, "connectivityStatus")
                if status == "Connected":
                    return resource
                if status == "Expired":
                    break
                agents.check_alive()
                time.sleep(0.5)
        cause = f" Likely cause: {obstacle}" if obstacle else ""
        raise CliError(
            f"The agents did not connect within {timeout} s (status {prop(resource, 'connectivityStatus')}).{cause} "
            + agents.where_to_look(),
            "OnboardingTimeout",
        )

    def _undo(self) -> None:
        try:
            remove_agents(self.resource_id, self.kube)
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


def _agents_network(gateway_url: str | None, proxy: ProxySettings) -> None:
    """Local agents (started from this process) find their first gateway and proxy settings in the environment;
    the control plane's /gw/v1/network keeps them current afterwards."""
    if gateway_url:
        os.environ["HALYARD_AGENT_GATEWAY"] = gateway_url.removeprefix("https://")
    if proxy.https or proxy.http:
        os.environ["HALYARD_AGENT_PROXY"] = str(proxy.https or proxy.http)
    if proxy.skip_range:
        os.environ["HALYARD_AGENT_PROXY_SKIP_RANGE"] = proxy.skip_range


def _public_key_b64(private_pem: bytes) -> str:
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def _agent_profile(existing: dict[str, Any] | None, auto_upgrade: bool) -> dict[str, Any]:
    """The flag's auto-upgrade, keeping a version pinned since (``connectedk8s upgrade``): a re-run of connect
    is idempotent, it does not undo what other commands set."""
    profile: dict[str, Any] = {"agentAutoUpgrade": "Enabled" if auto_upgrade else "Disabled"}
    pinned = (prop(existing, "arcAgentProfile") or {}).get("desiredAgentVersion")
    if pinned:
        profile["desiredAgentVersion"] = pinned
    return profile


def _normal(location: str) -> str:
    return location.replace(" ", "").lower()
