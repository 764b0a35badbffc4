"""Each in-cluster agent under its own service account, as its pod runs it: the chart's least-privilege roles are
enough for every agent to do its part, and refuse each what it must not do.

The chart is installed into a simulated cluster; every agent then runs as its own process the way its pod runs it
(``agent run --in-cluster --agents=<name>``), through the in-cluster path of ``halyard.kube.client``: the token of
its ServiceAccount (asked from the cluster's TokenRequest API, as the kubelet does) mounted at
/var/run/secrets/kubernetes.io/serviceaccount (a tmpfs on /run in a mount namespace of the process's own), and
KUBERNETES_SERVICE_HOST/PORT pointing at the cluster.
"""

from __future__ import annotations

import base64
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.models.apps_v1 import DeploymentSpec
from lightkube.models.authentication_v1 import TokenRequestSpec
from lightkube.models.core_v1 import Container, PodSpec, PodTemplateSpec
from lightkube.models.meta_v1 import LabelSelector, ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import (
    ConfigMap,
    Event,
    Namespace,
    Node,
    Secret,
    ServiceAccount,
    ServiceAccountToken,
)
from lightkube.resources.rbac_authorization_v1 import ClusterRole

from tests.agents.conftest import Cli
from tests.agents.test_chart import AGENTS
from tests.agents.test_flux import API as FLUX_API
from tests.agents.test_flux import GitRepository, Kustomization, _ready, install_flux_crds
from tests.sim.conftest import Sim, helm_path

pytestmark = pytest.mark.e2e

NS = "halyard-system"
# The kubelet's mount, made in the agent's own mount namespace: nothing outside the process sees it.
MOUNT = (
    "mount -t tmpfs tmpfs /run && mkdir -p /run/secrets/kubernetes.io/serviceaccount && "
    'cp "$SA_DIR"/token "$SA_DIR"/ca.crt "$SA_DIR"/namespace /run/secrets/kubernetes.io/serviceaccount/ && exec "$@"'
)


def _can_mount() -> None:
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", "mount -t tmpfs tmpfs /run"],
                           capture_output=True, text=True)  # fmt: skip
    if probe.returncode != 0:
        pytest.fail(
            "running an agent as its pod does needs a mount namespace of its own (unshare --mount; root or "
            f"CAP_SYS_ADMIN), to mount its service-account token where the in-cluster client reads it: {probe.stderr}",
            pytrace=False,
        )


def _mounted_token(admin: Client, agent: str, ca: Path, into: Path) -> Path:
    """The ServiceAccount's token as the kubelet mounts it: token, ca.crt, namespace."""
    request = ServiceAccountToken(
        metadata=ObjectMeta(name=agent, namespace=NS),
        spec=TokenRequestSpec(audiences=["https://kubernetes.default.svc"], expirationSeconds=3600),
    )
    issued = admin.create(request, name=agent, namespace=NS)
    assert issued.status is not None
    into.mkdir(parents=True)
    (into / "token").write_text(issued.status.token)
    (into / "ca.crt").write_bytes(ca.read_bytes())
    (into / "namespace").write_text(NS)
    return into


def _as(sa_dir: Path, sim: Sim) -> Client:
    """A client of the cluster exactly as the agent's in-cluster configuration makes it, from its mounted token."""
    url = urlsplit(sim.url)
    saved = {k: os.environ.get(k) for k in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT")}
    os.environ.update(KUBERNETES_SERVICE_HOST=str(url.hostname), KUBERNETES_SERVICE_PORT=str(url.port))
    try:
        return Client(KubeConfig.from_service_account(str(sa_dir)))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _refused(call: Callable[[], object]) -> int:
    try:
        call()
    except ApiError as exc:
        return int(exc.status.code or 0)
    return 200


def _start_as_pod(cli: Cli, agent: str, sa_dir: Path, sim: Sim, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``agent`` as its pod runs it: in-cluster, its service account's token mounted where the client reads it."""
    url = urlsplit(sim.url)
    service = {"KUBERNETES_SERVICE_HOST": str(url.hostname), "KUBERNETES_SERVICE_PORT": str(url.port)}
    pod = ["unshare", "--mount", "--propagation", "private", "sh", "-c", MOUNT, "sh"]
    run = [sys.executable, "-m", "halyard", "agent", "run", "--in-cluster", f"--agents={agent}",
           f"--state-dir={tmp_path / 'state' / agent}"]  # fmt: skip
    with open(tmp_path / f"{agent}.log", "wb") as log:  # the child keeps its own copy
        env = {**os.environ, **cli.env, **service, "SA_DIR": str(sa_dir)}
        return subprocess.Popen([*pod, *run], stdout=log, stderr=subprocess.STDOUT, env=env)


def _gitops_under_service_accounts(
    cli: Cli,
    group: str,
    kubeconfig: Path,
    admin: Client,
    sim: Sim,
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
) -> None:
    """config-agent and flux-logs-agent, each under the service account the chart gives it with the extensions
    feature: a Flux configuration with protected settings is written (namespace, Secret, source, Kustomization),
    its compliance read, an Event shipped, and the deletion removes it all; and nothing beyond their grants."""
    enabled = cli.run("connectedk8s", "enable-features", "-g", group, "-n", "least", "--kube-config",
                      str(kubeconfig), "--features", "extensions", env={"HALYARD_HELM": str(helm_path())})  # fmt: skip
    assert enabled.returncode == 0, enabled.stderr
    install_flux_crds(admin)
    gitops = ("config-agent", "flux-logs-agent")
    accounts = {agent: _mounted_token(admin, agent, sim.ca, tmp_path / "sa" / agent) for agent in gitops}
    processes += [_start_as_pod(cli, agent, accounts[agent], sim, tmp_path) for agent in gitops]
    cluster = cli.show(group, "least")["id"]
    path = f"{cluster}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/least"
    body = {"properties": {
        "scope": "cluster", "namespace": "flux-system", "sourceKind": "GitRepository",
        "gitRepository": {"url": "https://git.invalid/fleet.git", "repositoryRef": {"branch": "main"},
                          "httpsUser": "fleet"},
        "kustomizations": {"apps": {"path": "./apps"}},
        "configurationProtectedSettings": {"httpsKey": base64.b64encode(b"not-a-real-key").decode()},
    }}  # fmt: skip
    logs = lambda: {a: (tmp_path / f"{a}.log").read_text()[-1500:] for a in gitops}  # noqa: E731
    with cli.server.client() as c:
        # A write is accepted once the cluster is known to run config-agent (its first poll, or a heartbeat
        # declaring it: agentpresence.py); until then it is refused, AgentNotRunning, and sent again.
        answers: list[Any] = []

        def accepted() -> bool:
            answers.append(c.put(path, params=FLUX_API, json=body))
            return answers[-1].status_code != 409 or answers[-1].json()["error"]["code"] != "AgentNotRunning"

        until("config-agent known to the control plane", accepted, timeout=60, explain=logs)
        assert answers[-1].status_code == 201, answers[-1].text
        until("the objects written", lambda: _props(c, path).get("statuses"), timeout=60, explain=logs)
        assert _props(c, path)["provisioningState"] == "Succeeded"
        secret = admin.get(Secret, "least-auth", namespace="flux-system").data or {}
        assert base64.b64decode(secret["password"]) == b"not-a-real-key"
        # Flux's controllers (played by the test) reconcile and record an Event: compliance and logs come back.
        _ready(admin, GitRepository, "least", "True", "stored artifact")
        _ready(admin, Kustomization, "least-apps", "True", "Applied revision")
        until("Compliant", lambda: _props(c, path)["complianceState"] == "Compliant", timeout=20, explain=logs)
        admin.create(Event.from_dict({
            "metadata": {"name": "least-apps.1", "namespace": "flux-system"},
            "involvedObject": {"kind": "Kustomization", "name": "least-apps", "namespace": "flux-system"},
            "reason": "ReconciliationSucceeded", "message": "applied", "type": "Normal", "count": 1,
        }))  # fmt: skip
        until("the event shipped", lambda: c.get(f"{path}/events", params=FLUX_API).json()["value"], timeout=20,
              explain=logs)  # fmt: skip
        # The deletion waits for config-agent to remove the Kustomization, the source and the Secret.
        assert c.delete(path, params=FLUX_API).status_code == 202
        until("deleted", lambda: c.get(path, params=FLUX_API).status_code == 404, timeout=30, explain=logs)
    for res, name in ((Kustomization, "least-apps"), (GitRepository, "least"), (Secret, "least-auth")):
        assert _refused(lambda: admin.get(res, name, namespace="flux-system")) == 404, name
    for proc in processes[-2:]:
        assert proc.poll() is None, f"a GitOps agent exited ({proc.returncode}): {logs()}"

    # And nothing beyond: config-agent cannot list (so cannot find) Secrets, relabel a namespace or touch
    # Deployments; flux-logs-agent reads no Secret and writes no Flux object.
    bump = {"metadata": {"annotations": {"touched": "yes"}}}
    config, logs_agent = (_as(accounts[a], sim) for a in gitops)
    try:
        refusals = {
            "config-agent lists Secrets": _refused(lambda: list(config.list(Secret, namespace="*"))),
            "config-agent patches a Namespace": _refused(lambda: config.patch(Namespace, "flux-system", bump)),
            "config-agent patches a Deployment": _refused(
                lambda: config.patch(Deployment, "resource-sync", bump, namespace=NS)
            ),
            "config-agent lists Events": _refused(lambda: list(config.list(Event, namespace="flux-system"))),
            "flux-logs-agent reads a Secret": _refused(lambda: logs_agent.get(Secret, "halyard-agent-token",
                                                                              namespace="kube-system")),
            "flux-logs-agent writes a source": _refused(lambda: logs_agent.create(GitRepository.from_dict({
                "metadata": {"name": "sneaky", "namespace": "flux-system"}, "spec": {}}))),
            "flux-logs-agent reads a source": _refused(lambda: logs_agent.get(GitRepository, "x",
                                                                              namespace="flux-system")),
        }  # fmt: skip
        assert refusals == dict.fromkeys(refusals, 403), refusals
    finally:
        config.close()
        logs_agent.close()


def until(what: str, check: Callable[[], Any], *, timeout: float, explain: Callable[[], Any]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"{what}: not within {timeout} s; {explain()}"
        time.sleep(0.2)


def _props(c: Any, path: str) -> dict[str, Any]:
    props: dict[str, Any] = c.get(path, params=FLUX_API).json()["properties"]
    return props


def test_each_agent_works_under_its_own_service_account_and_no_further(
    cli: Cli, fresh_cluster: Callable[[], Path], agent_sim: Sim, tmp_path: Path
) -> None:
    _can_mount()
    kubeconfig = fresh_cluster()
    group = cli.group("agents-sa")
    installed = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "least", "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "in-cluster", "--no-wait", "--yes", "-o", "json", env={"HALYARD_HELM": str(helm_path())},
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    admin = Client(KubeConfig.from_file(str(kubeconfig)))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        assert AGENTS <= {s.metadata.name for s in admin.list(ServiceAccount, namespace=NS)}  # type: ignore[union-attr]
        accounts = {agent: _mounted_token(admin, agent, agent_sim.ca, tmp_path / "sa" / agent) for agent in AGENTS}
        processes += [
            _start_as_pod(cli, agent, sa_dir, agent_sim, tmp_path) for agent, sa_dir in sorted(accounts.items())
        ]

        # Every agent did its part with only its own grants: identity (certificate, token), metadata (nodes),
        # health (controller-manager), and resource-sync reporting all of it.
        try:
            shown = cli.wait_status(group, "least", "Connected", timeout=60)
        except AssertionError:
            logs = {a: (tmp_path / f"{a}.log").read_text()[-1500:] for a in sorted(AGENTS)}
            raise AssertionError(f"the agents did not connect under their service accounts: {logs}") from None
        deadline = time.monotonic() + 30
        # The agent state (controller-manager's) and the node count (metadata-operator's) reach the resource in the
        # first beat after each is published: resource-sync, a process of its own, may beat before either.
        while "agentState" not in shown["arcAgentProfile"] or "totalNodeCount" not in shown:
            assert time.monotonic() < deadline, f"no agent state within 30 s: {shown}"
            time.sleep(0.5)
            shown = cli.show(group, "least")
        assert shown["arcAgentProfile"]["agentState"] == "Succeeded", shown["arcAgentProfile"]
        assert shown["totalNodeCount"] == 3 and shown["kubernetesVersion"]
        assert (admin.get(Secret, "halyard-agent-token", namespace=NS).data or {})["token"]
        for name in ("halyard-cluster-metadata", "halyard-agent-health"):
            admin.get(ConfigMap, name, namespace=NS)
        for proc in processes:
            assert proc.poll() is None, f"an agent exited ({proc.returncode}): see {tmp_path}"

        # And nothing beyond: other namespaces' Secrets, Secrets of its own namespace it was not granted, listing
        # Secrets, cluster-wide writes, and Deployments not its own.
        foreign = Deployment(
            metadata=ObjectMeta(name="someone-elses", namespace=NS),
            spec=DeploymentSpec(
                selector=LabelSelector(matchLabels={"app": "someone-elses"}),
                template=PodTemplateSpec(
                    metadata=ObjectMeta(labels={"app": "someone-elses"}),
                    spec=PodSpec(containers=[Container(name="c", image="nginx")]),
                ),
            ),
        )
        admin.create(foreign)
        bump = {"metadata": {"annotations": {"touched": "yes"}}}
        for agent, sa_dir in sorted(accounts.items()):
            client = _as(sa_dir, agent_sim)
            try:
                refusals = {
                    "kube-system Secret": _refused(lambda: client.get(Secret, "bootstrap", namespace="kube-system")),
                    "list Secrets": _refused(lambda: list(client.list(Secret, namespace=NS))),
                    "create ClusterRole": _refused(
                        lambda: client.create(ClusterRole(metadata=ObjectMeta(name=f"taken-by-{agent}"), rules=[]))
                    ),
                    "patch Node": _refused(lambda: client.patch(Node, "node-1", bump)),
                    "patch other Deployment": _refused(
                        lambda: client.patch(Deployment, "someone-elses", bump, namespace=NS)
                    ),
                }
                if agent != "identity-operator":  # only the identity operator reads the onboarding key
                    refusals["onboarding Secret"] = _refused(
                        lambda: client.get(Secret, "halyard-onboarding", namespace=NS)
                    )
                if agent != "controller-manager":  # only the controller manager patches the agents' Deployments
                    refusals["patch agent Deployment"] = _refused(
                        lambda: client.patch(Deployment, agent, bump, namespace=NS)
                    )
                assert refusals == dict.fromkeys(refusals, 403), (agent, refusals)
            finally:
                client.close()
        # What each is granted, it may: the controller manager patches the agents' Deployments (auto-upgrade).
        manager = _as(accounts["controller-manager"], agent_sim)
        try:
            manager.patch(Deployment, "resource-sync", bump, namespace=NS)
        finally:
            manager.close()

        # The extensions feature adds GitOps' agents (decision 016): they do their whole part under their grants.
        _gitops_under_service_accounts(cli, group, kubeconfig, admin, agent_sim, tmp_path, processes)
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        admin.close()
