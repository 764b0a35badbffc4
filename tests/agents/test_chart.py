"""The in-cluster agents: the Helm chart passes ``helm lint``, renders least privilege, and ``connect --agent-mode
in-cluster`` installs it with the real helm into a simulated cluster."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.authorization_v1 import ResourceAttributes, SubjectAccessReviewSpec
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.authorization_v1 import SubjectAccessReview
from lightkube.resources.core_v1 import ConfigMap, Secret, Service, ServiceAccount
from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding, Role, RoleBinding

from halyard.agent import handoff
from halyard.agent.endpoints import EndpointsFollower, LiveEndpoints, follow_published
from halyard.api.agents import EndpointMap
from halyard.cli.agentplacement import chart_values_for, disconnect_cluster
from halyard.cli.localagents import state_dir_for
from halyard.kube.client import connect as connect_kube
from tests.agents.conftest import Cli
from tests.agents.test_onboarding import connect, namespace_exists, resource_id
from tests.sim.conftest import helm_path

pytestmark = pytest.mark.e2e
CHART = Path(__file__).resolve().parents[2] / "charts" / "halyard-agent"
AGENTS = {"identity-operator", "metadata-operator", "resource-sync", "controller-manager"}
# What the chart deploys by default: the agents and the optional ones of the default features (cluster-connect).
DEPLOYED = AGENTS | {"clusterconnect-agent"}


def _helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(helm_path()), *args], capture_output=True, text=True, timeout=60)


def _rendered(*args: str) -> list[dict[str, Any]]:
    proc = _helm("template", "halyard-agent", str(CHART), "--namespace", "halyard-system", *args)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def _env(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env", [])}


def test_helm_lint_passes() -> None:
    proc = _helm("lint", str(CHART), "--strict")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_template_is_least_privilege() -> None:
    docs = _rendered()
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    for kind in ("Role", "ClusterRole"):
        for role in by_kind.get(kind, []):
            for rule in role["rules"]:
                for key in ("verbs", "resources", "apiGroups", "resourceNames", "nonResourceURLs"):
                    assert "*" not in rule.get(key, []), f"wildcard {key} in {kind} {role['metadata']['name']}"
                if set(rule.get("verbs", [])) - {"get", "list"} and "resourceNames" not in rule:
                    # The documented exceptions: `create` cannot be limited by name in Kubernetes; the auth proxy
                    # impersonates whichever user the control plane asserts.
                    assert (rule["verbs"] == ["create"] and rule["resources"] in (["secrets"], ["configmaps"])) or (
                        role["metadata"]["name"] == "halyard-clusterconnect-agent"
                        and rule == {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}
                    ), rule
    # The cluster-wide grants: metadata-operator reads nodes and /version; clusterconnect-agent's auth proxy
    # impersonates users and groups (and nothing else: no service accounts, no extra attributes).
    cluster_roles = {r["metadata"]["name"]: r for r in by_kind.get("ClusterRole", [])}
    assert set(cluster_roles) == {"halyard-metadata-operator", "halyard-clusterconnect-agent"}
    assert all(set(rule["verbs"]) <= {"get", "list"} for rule in cluster_roles["halyard-metadata-operator"]["rules"])
    assert cluster_roles["halyard-clusterconnect-agent"]["rules"] == [
        {"apiGroups": [""], "resources": ["users", "groups"], "verbs": ["impersonate"]}
    ]
    for binding in by_kind.get("ClusterRoleBinding", []) + by_kind.get("RoleBinding", []):
        assert binding["roleRef"]["name"] not in ("cluster-admin", "admin", "edit")
        assert [s["kind"] for s in binding["subjects"]] == ["ServiceAccount"]
    # Only resource-sync may read the published token; nobody but identity-operator reads the onboarding key.
    readers = {
        r["metadata"]["name"]
        for r in by_kind["Role"]
        for rule in r["rules"]
        if "halyard-onboarding" in rule.get("resourceNames", [])
    }
    assert readers == {"identity-operator"}
    # The agents' view for troubleshoot: written by resource-sync alone, by name.
    writers = {
        r["metadata"]["name"]
        for r in by_kind["Role"]
        for rule in r["rules"]
        if "halyard-diagnostics" in rule.get("resourceNames", []) and "patch" in rule["verbs"]
    }
    assert writers == {"resource-sync"}
    # Auto-upgrade: controller-manager alone may patch Deployments, and only the chart's own agents, in its namespace.
    patchers = {
        r["metadata"]["name"]: rule.get("resourceNames")
        for r in by_kind["Role"]
        for rule in r["rules"]
        if "deployments" in rule["resources"] and set(rule["verbs"]) - {"get", "list"}
    }
    assert patchers == {"controller-manager": sorted(DEPLOYED)}
    deployments = {d["metadata"]["name"]: d for d in by_kind["Deployment"]}
    assert set(deployments) == DEPLOYED
    for name, deployment in deployments.items():
        pod = deployment["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == name
        (container,) = pod["containers"]
        assert f"--agents={name}" in container["args"] and "--in-cluster" in container["args"]
        assert "ports" not in container  # nothing listens for the network
        assert container["resources"]["limits"] and container["resources"]["requests"]
        assert container["livenessProbe"] and container["readinessProbe"]
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert container["securityContext"]["allowPrivilegeEscalation"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
    (policy,) = by_kind["NetworkPolicy"]
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"] and policy["spec"]["ingress"] == []


def test_arc_proxy_runs_only_with_a_gateway_or_a_proxy_and_every_other_agent_goes_through_it() -> None:
    plain = _rendered()
    assert "arc-proxy" not in {d["metadata"]["name"] for d in plain}
    assert not any(_env(d) for d in plain if d["kind"] == "Deployment")

    for sets, with_gateway in (
        (("--set-string", "network.gateway=abc.gw.example.test:8443",
          "--set-string", "network.proxy=http://user:s3cret@proxy.corp:3128",
          "--set-string", r"network.proxySkipRange=10.0.0.0/16\,kubernetes.default.svc\,.svc"), True),
        (("--set-string", "network.proxy=http://proxy.corp:3128"), False),
    ):  # fmt: skip
        docs = _rendered(*sets)
        by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
        proxy = by[("Deployment", "arc-proxy")]
        pod = proxy["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["serviceAccountName"] == "arc-proxy"
        assert {"--agents=arc-proxy", "--in-cluster", "--arc-proxy-listen=0.0.0.0:3129"} <= set(container["args"])
        assert ("--gateway=abc.gw.example.test:8443" in container["args"]) is with_gateway
        assert container["ports"] == [{"name": "proxy", "containerPort": 3129, "protocol": "TCP"}]
        assert "HTTPS_PROXY" not in _env(proxy)  # arc-proxy does not proxy through itself
        # The proxy's credentials travel in a Secret, never in arguments or plain values.
        assert _env(proxy)["HALYARD_AGENT_PROXY"] == {"secretKeyRef": {"name": "halyard-network", "key": "proxy"}}
        assert not [d for d in docs if d["kind"] == "Deployment" and "s3cret" in yaml.safe_dump(d)]
        service = by[("Service", "arc-proxy")]
        assert service["spec"]["type"] == "ClusterIP"  # cluster-internal
        assert service["spec"]["selector"] == {
            "app.kubernetes.io/part-of": "halyard-agent", "app.kubernetes.io/name": "arc-proxy",
        }  # fmt: skip
        assert service["spec"]["ports"][0]["port"] == 3129
        url = "http://arc-proxy.halyard-system.svc:3129"
        for name in DEPLOYED:
            env = _env(by[("Deployment", name)])
            assert (env["HTTPS_PROXY"], env["HTTP_PROXY"], env["HALYARD_AGENT_ARC_PROXY_URL"]) == (url, url, url)
            skipped = env["NO_PROXY"].split(",")
            assert {"$(KUBERNETES_SERVICE_HOST)", "kubernetes.default.svc", ".svc"} <= set(skipped)
            assert ("10.0.0.0/16" in skipped) is with_gateway  # --proxy-skip-range, as given
        # Least privilege: the published token always; the onboarding key only to prove it to a gateway.
        secrets = next(r for r in by[("Role", "arc-proxy")]["rules"] if r["resources"] == ["secrets"])
        wanted = {"halyard-agent-token", "halyard-onboarding"} if with_gateway else {"halyard-agent-token"}
        assert set(secrets["resourceNames"]) == wanted and secrets["verbs"] == ["get"]
        maps = next(r for r in by[("Role", "arc-proxy")]["rules"] if r["resources"] == ["configmaps"])
        assert "halyard-agent-endpoints" in maps["resourceNames"]  # it follows the map resource-sync publishes
        policy = by[("NetworkPolicy", "halyard-arc-proxy")]["spec"]
        assert policy["ingress"] == [
            {"from": [{"podSelector": {"matchLabels": {"app.kubernetes.io/part-of": "halyard-agent"}}}],
             "ports": [{"protocol": "TCP", "port": 3129}]}
        ]  # fmt: skip
        patchable = next(
            r
            for r in by[("Role", "controller-manager")]["rules"]
            if r["resources"] == ["deployments"] and "patch" in r["verbs"]
        )
        assert "arc-proxy" in patchable["resourceNames"]  # auto-upgrade reaches it too


def test_extension_manager_is_cluster_admin_only_with_the_extensions_feature() -> None:
    """Decision 014: extension-manager installs arbitrary charts, so its service account alone is bound to
    cluster-admin, and only when the chart turns it on (``enable-features --features extensions``)."""
    assert not [d for d in _rendered() if d["metadata"]["name"] in ("extension-manager", "halyard-extension-manager")]
    docs = _rendered(
        "--set", "agents.extension-manager.enabled=true", "--set-string", "features=cluster-connect\\,extensions"
    )
    admins = [d for d in docs if d["kind"] == "ClusterRoleBinding" and d["roleRef"]["name"] == "cluster-admin"]
    assert [(b["metadata"]["name"], b["subjects"]) for b in admins] == [
        (
            "halyard-extension-manager",
            [{"kind": "ServiceAccount", "name": "extension-manager", "namespace": "halyard-system"}],
        )
    ]
    [deployment] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "extension-manager"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["serviceAccountName"] == "extension-manager" and "--agents=extension-manager" in container["args"]
    assert {e["name"] for e in container["env"]} == {"HELM_CACHE_HOME", "HELM_CONFIG_HOME", "HELM_DATA_HOME"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert deployment["spec"]["template"]["metadata"]["annotations"]["halyard.io/features"] == (
        "cluster-connect,extensions"
    )
    # controller-manager may set its image on upgrade, as every agent's.
    [manager] = [d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "controller-manager"]
    assert "extension-manager" in manager["rules"][-1]["resourceNames"]


def test_the_extensions_feature_turns_extension_manager_and_the_gitops_agents_on() -> None:
    values, switches = chart_values_for(frozenset({"cluster-connect", "extensions"}))
    assert values["features"] == "cluster-connect,extensions"
    for agent in ("extension-manager", "config-agent", "flux-logs-agent"):
        assert switches[f"agents.{agent}.enabled"] is True
        assert chart_values_for(frozenset({"cluster-connect"}))[1][f"agents.{agent}.enabled"] is False


def _rendered_with(features: frozenset[str]) -> list[dict[str, Any]]:
    """The chart as ``enable-features`` installs it for ``features`` (agent placement's own values)."""
    values, switches = chart_values_for(features)
    args = [a for k, v in values.items() for a in ("--set-string", f"{k}={v.replace(',', chr(92) + ',')}")]
    args += [a for k, on in switches.items() for a in ("--set", f"{k}={str(on).lower()}")]
    return _rendered(*args)


FLUX_KINDS = [
    {"apiGroups": ["source.toolkit.fluxcd.io"], "resources": ["gitrepositories", "buckets", "ocirepositories"]},
    {"apiGroups": ["kustomize.toolkit.fluxcd.io"], "resources": ["kustomizations"]},
]


def test_gitops_agents_run_with_the_extensions_feature_holding_flux_objects_secrets_by_name_and_events() -> None:
    """Decision 016: config-agent and flux-logs-agent are Deployments of the extensions feature (Flux reaches a
    cluster as the flux extension), each with its own service account; their cluster-wide grants are exactly what
    they do (test_service_accounts.py runs them under these grants on the simulator)."""
    gitops = {"config-agent", "flux-logs-agent"}
    plain = _rendered_with(frozenset({"cluster-connect"}))
    assert not [d for d in plain if d["metadata"]["name"].removeprefix("halyard-") in gitops]
    docs = _rendered_with(frozenset({"cluster-connect", "extensions"}))
    by = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    for name in sorted(gitops):
        pod = by[("Deployment", name)]["spec"]["template"]["spec"]
        (container,) = pod["containers"]
        assert pod["serviceAccountName"] == name and f"--agents={name}" in container["args"]
        assert "ports" not in container and container["securityContext"]["readOnlyRootFilesystem"] is True
        assert by[("ServiceAccount", name)]
        # In its namespace: the cluster's configuration, the published endpoint map and agent token, read by name.
        assert by[("Role", name)]["rules"] == [
            {"apiGroups": [""], "resources": ["configmaps"],
             "resourceNames": ["halyard-clusterconfig", "halyard-agent-endpoints"], "verbs": ["get"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": ["halyard-agent-token"], "verbs": ["get"]},
        ]  # fmt: skip
        binding = by[("ClusterRoleBinding", f"halyard-{name}")]
        assert binding["roleRef"]["name"] == f"halyard-{name}"
        assert binding["subjects"] == [{"kind": "ServiceAccount", "name": name, "namespace": "halyard-system"}]
    # config-agent: Flux's objects, Secrets by name (no list or watch: it cannot read them all), namespaces created
    # but never patched.
    writes = ["get", "list", "create", "patch", "delete"]
    assert by[("ClusterRole", "halyard-config-agent")]["rules"] == [
        *({**kinds, "verbs": writes} for kinds in FLUX_KINDS),
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "create", "patch", "delete"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["create"]},
    ]
    # flux-logs-agent: lists, nothing else.
    assert by[("ClusterRole", "halyard-flux-logs-agent")]["rules"] == [
        *({**kinds, "verbs": ["list"]} for kinds in FLUX_KINDS),
        {"apiGroups": [""], "resources": ["events"], "verbs": ["list"]},
    ]
    # Nothing else changes: no wildcard, no other cluster-admin binding than extension-manager's (decision 014),
    # and controller-manager may set their image on upgrade, as every agent's.
    for doc in docs:
        for rule in doc.get("rules") or []:
            assert not any("*" in rule.get(key, []) for key in ("verbs", "resources", "apiGroups")), doc
    admins = [d["metadata"]["name"] for d in docs if d["kind"] == "ClusterRoleBinding"
              and d["roleRef"]["name"] == "cluster-admin"]  # fmt: skip
    assert admins == ["halyard-extension-manager"]
    manager = by[("Role", "controller-manager")]["rules"][-1]["resourceNames"]
    assert gitops <= set(manager)


def test_template_honours_a_registry_mirror() -> None:
    proc = _helm("template", "halyard-agent", str(CHART), "--set", "image.registry=mirror.example:5000")
    assert proc.returncode == 0, proc.stderr
    images = {c["image"] for d in yaml.safe_load_all(proc.stdout) if d and d["kind"] == "Deployment"
              for c in d["spec"]["template"]["spec"]["containers"]}  # fmt: skip
    assert images == {"mirror.example:5000/halyard/halyard-agent:0.1.0"}


def test_connect_in_cluster_installs_the_chart_with_helm(
    cli: Cli, fresh_cluster: Callable[[], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-incluster")
    env = {"HALYARD_HELM": str(helm_path())}
    proc = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "chart", "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "in-cluster", "--no-wait", "--yes", "-o", "json",
        "--proxy-https", "http://user:pw@proxy.corp.invalid:3128", "--proxy-skip-range", "10.0.0.0/16,.svc", env=env,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        ns = "halyard-system"
        # With a proxy, arc-proxy is installed too: a Deployment and its cluster-internal Service.
        installed = DEPLOYED | {"arc-proxy"}
        assert {d.metadata.name for d in client.list(Deployment, namespace=ns)} == installed
        assert client.get(Service, "arc-proxy", namespace=ns).spec.type == "ClusterIP"
        sync = client.get(Deployment, "resource-sync", namespace=ns).spec.template.spec.containers[0]
        assert {e.name: e.value for e in sync.env or []}["HTTPS_PROXY"] == "http://arc-proxy.halyard-system.svc:3129"
        network = client.get(Secret, "halyard-network", namespace=ns).data or {}
        assert base64.b64decode(network["proxy"]).decode() == "http://user:pw@proxy.corp.invalid:3128"
        assert installed <= {s.metadata.name for s in client.list(ServiceAccount, namespace=ns)}
        assert installed == {r.metadata.name for r in client.list(Role, namespace=ns)}
        assert installed == {r.metadata.name for r in client.list(RoleBinding, namespace=ns)}
        client.get(ClusterRole, "halyard-metadata-operator")
        client.get(ClusterRoleBinding, "halyard-metadata-operator")
        # The simulator serves no networking.k8s.io API, so the chart (rightly) renders no NetworkPolicy there.
        assert "onboarding.key" in (client.get(Secret, "halyard-onboarding", namespace=ns).data or {})
        config = client.get(ConfigMap, "halyard-clusterconfig", namespace=ns).data or {}
        assert config["RESOURCE_ID"] == resource_id(cli, group, "chart")
        # As the cluster's RBAC decides: resource-sync's ServiceAccount may write the agents' view, by name only.
        assert _may(client, "resource-sync", "patch", "halyard-diagnostics")
        assert not _may(client, "resource-sync", "patch", "halyard-clusterconfig")
        assert not _may(client, "identity-operator", "patch", "halyard-diagnostics")

        # Off the proxy and onto another, with update (no re-onboarding): the chart's network values follow.
        target = ("-g", group, "-n", "chart", "--kube-config", str(kubeconfig))
        off = cli.run("connectedk8s", "update", *target, "--disable-proxy", env=env)
        assert off.returncode == 0, off.stderr
        assert {d.metadata.name for d in client.list(Deployment, namespace=ns)} == DEPLOYED
        sync = client.get(Deployment, "resource-sync", namespace=ns).spec.template.spec.containers[0]
        assert "HTTPS_PROXY" not in {e.name for e in sync.env or []}
        on = cli.run("connectedk8s", "update", *target, "--proxy-https", "http://proxy2.corp.invalid:3128", env=env)
        assert on.returncode == 0, on.stderr
        assert {d.metadata.name for d in client.list(Deployment, namespace=ns)} == installed
        network = client.get(Secret, "halyard-network", namespace=ns).data or {}
        assert base64.b64decode(network["proxy"]).decode() == "http://proxy2.corp.invalid:3128"
    finally:
        client.close()

    monkeypatch.setenv("HALYARD_HELM", str(helm_path()))
    removed = disconnect_cluster(resource_id(cli, group, "chart"), kubeconfig, None)
    assert removed == ["agent chart", "namespace halyard-system"]
    assert not namespace_exists(kubeconfig)
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        with pytest.raises(ApiError) as gone:
            client.get(ClusterRole, "halyard-metadata-operator")
        assert gone.value.status.code == 404, gone.value.status
    finally:
        client.close()


def test_split_agents_hand_over_through_the_cluster(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    """What each in-cluster Deployment runs (one agent per process), run as local processes against the simulator."""
    kubeconfig = fresh_cluster()
    group = cli.group("agents-split")
    assert connect(cli, group, "split", kubeconfig).returncode == 0
    rid = resource_id(cli, group, "split")
    stopped = cli.run("agent", "stop", "--state-dir", str(cli.agents_dir / state_dir_for(rid).name))
    assert stopped.returncode == 0, stopped.stderr
    before = cli.show(group, "split")["lastConnectivityTime"]
    processes = []
    try:
        for agent in sorted(AGENTS):
            state = cli.agents_dir / f"split-{agent}"
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "halyard",
                        "agent",
                        "run",
                        "--agents",
                        agent,
                        "--kubeconfig",
                        str(kubeconfig),
                        "--state-dir",
                        str(state),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env={**os.environ, **cli.env},
                )
            )
        deadline = time.monotonic() + 60  # four processes starting on a loaded machine
        while True:
            shown = cli.show(group, "split")
            # agentState comes from controller-manager's health ConfigMap, which a beat carries once it exists: the
            # first beat of resource-sync (a process of its own) may come before controller-manager published it.
            state = (shown.get("arcAgentProfile") or {}).get("agentState")
            if shown["lastConnectivityTime"] > before and shown["connectivityStatus"] == "Connected" and state:
                break
            assert time.monotonic() < deadline, f"the split agents did not heartbeat with their state: {shown}"
            time.sleep(0.5)
        assert shown["totalNodeCount"] == 3
        assert shown["arcAgentProfile"]["agentState"] == "Succeeded"  # published by controller-manager
        client = Client(KubeConfig.from_file(str(kubeconfig)))
        try:
            assert (client.get(Secret, "halyard-agent-token", namespace="halyard-system").data or {})["token"]
            for name in ("halyard-cluster-metadata", "halyard-agent-health"):
                client.get(ConfigMap, name, namespace="halyard-system")
            # resource-sync's process records the agents' view for troubleshoot, with the state controller-manager
            # publishes.
            record = json.loads(_published(client, "halyard-diagnostics")["diagnostics"])
            assert record["resourceId"] == rid and record["names"][0]["services"][0] == "dp", record
            # resource-sync publishes the endpoint map the agents follow (private link moves it; the other pods read it).
            published = _published_endpoints(client)  # right after the beat it follows
            onboarded = client.get(ConfigMap, "halyard-clusterconfig", namespace="halyard-system").data or {}
            assert json.loads(published["endpoints"])["dp"] == json.loads(onboarded["ENDPOINTS"])["dp"]
            assert (
                published["onboarding"]
                == LiveEndpoints(EndpointMap.model_validate_json(onboarded["ENDPOINTS"])).onboarding
            )
            # Another pod's agents follow what resource-sync publishes next (a cluster moved into a scope).
            asyncio.run(_follow_a_published_map(kubeconfig, EndpointMap.model_validate_json(onboarded["ENDPOINTS"])))
        finally:
            client.close()
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            proc.wait(15)


def _may(client: Client, account: str, verb: str, configmap: str) -> bool:
    """Whether the agent's ServiceAccount may ``verb`` the ConfigMap, asked of the cluster (SubjectAccessReview)."""
    review = SubjectAccessReview(
        spec=SubjectAccessReviewSpec(
            user=f"system:serviceaccount:halyard-system:{account}",
            groups=["system:serviceaccounts", "system:serviceaccounts:halyard-system", "system:authenticated"],
            resourceAttributes=ResourceAttributes(
                verb=verb, resource="configmaps", namespace="halyard-system", name=configmap
            ),
        )
    )
    status = client.create(review).status
    return bool(status and status.allowed)


def _published_endpoints(client: Client) -> dict[str, str]:
    return _published(client, "halyard-agent-endpoints")


def _published(client: Client, name: str) -> dict[str, str]:
    deadline = time.monotonic() + 10
    while True:
        try:
            return client.get(ConfigMap, name, namespace="halyard-system").data or {}
        except ApiError as exc:
            assert exc.status.code == 404 and time.monotonic() < deadline, exc
            time.sleep(0.1)


async def _follow_a_published_map(kubeconfig: Path, onboarding: EndpointMap) -> None:
    """A pod follows the map published from its onboarding map, and starts from it when (re)started; a map
    published for another onboarding is neither followed nor started from."""
    kube = connect_kube(kubeconfig)
    try:
        live = LiveEndpoints(onboarding)
        private = onboarding.model_copy(update={"dp": "https://abcd.dp.privatelink.halyard.local/dp"})
        await handoff.publish_endpoints(kube, private, onboarding=live.onboarding)
        await EndpointsFollower(kube, live).reconcile()
        assert live.current().dp == private.dp and live.current().tenant == onboarding.tenant
        restarted = LiveEndpoints(onboarding)  # a pod (resource-sync's too) restarted: its first dial goes private
        await follow_published(kube, restarted)
        assert restarted.current().dp == private.dp and restarted.version == live.version
        elsewhere = onboarding.model_copy(update={"dp": "https://127.0.0.1:1/dp"})  # the cluster onboarded again
        pod = LiveEndpoints(elsewhere)
        await follow_published(kube, pod)
        await EndpointsFollower(kube, pod).reconcile()
        assert pod.current().dp == elsewhere.dp
    finally:
        await kube.close()


def test_agents_whose_image_cannot_be_pulled_are_reported_at_once_and_a_rerun_fixes_them(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-unpullable")
    env = {"HALYARD_HELM": str(helm_path())}
    connect_in_cluster = ("connectedk8s", "connect", "-g", group, "-n", "mirrorless", "-l", "eastus", "--kube-config",
                          str(kubeconfig), "--agent-mode", "in-cluster", "--yes")  # fmt: skip
    # registry.invalid stands for a registry the cluster cannot reach: the simulated kubelet cannot pull from it.
    # Given a wait longer than the test's own, connect must end on the stuck pods: a connect that waited would fail
    # with OnboardingTimeout (or the subprocess timeout), never with AgentsNotRunning.
    stuck = cli.run(*connect_in_cluster, "--agent-registry", "registry.invalid", "--onboarding-timeout", "100",
                    env=env)  # fmt: skip
    lines = stuck.stderr.strip().splitlines()
    assert stuck.returncode == 1 and len(lines) == 1, stuck.stderr
    assert lines[0].startswith("ERROR: (AgentsNotRunning) The agents cannot start: pod ")
    assert ': ImagePullBackOff (Back-off pulling image "registry.invalid/halyard/halyard-agent:' in lines[0]
    assert lines[0].endswith("mirror the image and run connect again with --agent-registry.")
    assert cli.show(group, "mirrorless")["connectivityStatus"] == "Connecting"  # kept, to be completed by a re-run

    # The re-run waits like the first: nothing runs in the simulator's pods, so it ends on the timeout, never on
    # the replaced pods still stuck on the old registry.
    fixed = cli.run(*connect_in_cluster, "--onboarding-timeout", "8", env=env)
    assert fixed.returncode == 1, fixed.stderr
    assert fixed.stderr.startswith("ERROR: (OnboardingTimeout) The agents did not connect within 8 s"), fixed.stderr
    assert "Their pods: kubectl -n halyard-system get pods -l app.kubernetes.io/part-of=halyard-agent" in fixed.stderr
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        images = {c.image for d in client.list(Deployment, namespace="halyard-system")
                  for c in d.spec.template.spec.containers}  # type: ignore[union-attr]  # fmt: skip
    finally:
        client.close()
    assert {image.split(":")[0] for image in images} == {"ghcr.io/halyard/halyard-agent"}
