"""GitOps end to end (issue 15), the agents' half: a Flux configuration created through the management API reaches the
cluster's config-agent (local agents, the simulator), which writes the real Flux objects and the Secret of its
protected settings; the test then plays Flux's controllers (it sets the objects' status conditions and records an
Event, as source-controller and kustomize-controller would) and the resource's complianceState, statuses and
sourceSyncedCommitId follow within seconds; flux-logs-agent ships the Event; a delete removes the objects first.

The git-backed run (the simulator's own Flux controllers fetching a real repository) is ``test_flux_git.py``.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apiextensions_v1 import CustomResourceDefinition
from lightkube.resources.core_v1 import Event, Secret
from lightkube.types import PatchType

from tests.agents.conftest import Cli

pytestmark = pytest.mark.e2e
API = {"api-version": "2025-04-01"}
SECRET = "gitops-" + uuid.uuid4().hex
GitRepository = create_namespaced_resource("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories")
Kustomization = create_namespaced_resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations")


def flux_crd(group: str, kind: str, plural: str) -> dict[str, Any]:
    """A Flux CRD as the flux extension installs it, its schema reduced to what the simulator checks."""
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{group}"},
        "spec": {
            "group": group,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower(), "listKind": f"{kind}List"},
            "scope": "Namespaced",
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                }
            ],
        },
    }


def install_flux_crds(kube: Client) -> None:
    for group, kind, plural in (
        ("source.toolkit.fluxcd.io", "GitRepository", "gitrepositories"),
        ("kustomize.toolkit.fluxcd.io", "Kustomization", "kustomizations"),
    ):
        kube.apply(CustomResourceDefinition.from_dict(flux_crd(group, kind, plural)), field_manager="test")


def _until(what: str, check: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s (last: {last!r})")


def _get(kube: Client, res: Any, name: str, namespace: str) -> Any:
    try:
        return kube.get(res, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise


def _ready(kube: Client, res: Any, name: str, status: str, message: str, **extra: Any) -> None:
    """What a Flux controller writes when it has reconciled an object."""
    condition = {
        "type": "Ready",
        "status": status,
        "reason": "ReconciliationSucceeded" if status == "True" else "BuildFailed",
        "message": message,
        "lastTransitionTime": "2026-12-06T05:00:00Z",
    }
    obj = kube.get(res, name, namespace="flux-system")
    body = {"status": {"observedGeneration": obj.metadata.generation, "conditions": [condition], **extra}}
    kube.patch(res.Status, name, body, namespace="flux-system", patch_type=PatchType.MERGE)


def test_a_flux_configuration_is_written_into_the_cluster_and_its_compliance_follows(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    server = cli.server
    kubeconfig = fresh_cluster()
    kube = Client(config=KubeConfig.from_file(str(kubeconfig)))
    install_flux_crds(kube)
    group = cli.group("gitops")
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", "flux1", "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "local", "--yes", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cli.wait_status(group, "flux1", "Connected")
    cluster = cli.show(group, "flux1")["id"]
    path = f"{cluster}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/apps"
    body = {
        "properties": {
            "scope": "cluster",
            "namespace": "flux-system",
            "sourceKind": "GitRepository",
            "gitRepository": {
                "url": "https://git.example/fleet.git",
                "repositoryRef": {"branch": "main"},
                "httpsUser": "fleet",
                "syncIntervalInSeconds": 120,
            },
            "kustomizations": {
                "infra": {"path": "./infra", "prune": True},
                "web": {"path": "./web", "dependsOn": ["infra"], "retryIntervalInSeconds": 30},
            },
            "configurationProtectedSettings": {"httpsKey": base64.b64encode(SECRET.encode()).decode()},
        }
    }
    with server.client() as c:
        started = time.monotonic()
        r = c.put(path, params=API, json=body)
        assert r.status_code == 201, r.text
        assert SECRET not in r.text
        # provisioningState waits for config-agent to have written the objects of this write.
        shown = _until("provisioned", lambda: _state(c, path) in ("Succeeded", "Failed") and c.get(path, params=API))
        assert shown.json()["properties"]["provisioningState"] == "Succeeded", shown.text
        took = time.monotonic() - started
        # (Succeeded may come before the objects only if config-agent had not polled yet when the PUT landed.)
        repo = _until("the source written", lambda: _get(kube, GitRepository, "apps", "flux-system"))
        assert repo["spec"]["url"] == "https://git.example/fleet.git"
        assert repo["spec"]["ref"] == {"branch": "main"} and repo["spec"]["interval"] == "120s"
        assert repo["spec"]["secretRef"] == {"name": "apps-auth"}
        web = _until("the kustomizations written", lambda: _get(kube, Kustomization, "apps-web", "flux-system"))
        assert web["spec"]["dependsOn"] == [{"name": "apps-infra"}] and web["spec"]["retryInterval"] == "30s"
        assert web["spec"]["sourceRef"] == {"kind": "GitRepository", "name": "apps", "namespace": "flux-system"}
        assert _get(kube, Kustomization, "apps-infra", "flux-system")["spec"]["prune"] is True
        secret = kube.get(Secret, "apps-auth", namespace="flux-system")
        assert base64.b64decode((secret.data or {})["password"]).decode() == SECRET
        props = c.get(path, params=API).json()["properties"]
        assert props["complianceState"] == "Pending"
        assert {(s["kind"], s["name"]) for s in props["statuses"]} == {
            ("GitRepository", "apps"), ("Kustomization", "apps-infra"), ("Kustomization", "apps-web")
        }  # fmt: skip

        # Flux's controllers (played here) reconcile: the resource follows.
        artifact = {"revision": "main@sha1:" + "a" * 40, "lastUpdateTime": "2026-12-06T05:00:01Z"}
        _ready(kube, GitRepository, "apps", "True", "stored artifact", artifact=artifact)
        inventory = {"entries": [{"id": "web_frontend_apps_Deployment", "v": "v1"}]}
        _ready(kube, Kustomization, "apps-infra", "True", "Applied revision: main@sha1:" + "a" * 40)
        _ready(kube, Kustomization, "apps-web", "True", "Applied revision", inventory=inventory)

        def compliant() -> dict[str, Any] | None:
            p: dict[str, Any] = c.get(path, params=API).json()["properties"]
            return p if p["complianceState"] == "Compliant" else None

        props = _until("Compliant", compliant, timeout=15)
        assert props["sourceSyncedCommitId"] == "main@sha1:" + "a" * 40
        assert props["sourceUpdatedAt"] == "2026-12-06T05:00:01Z" and props["statusUpdatedAt"]
        deployed = [s for s in props["statuses"] if s["appliedBy"]]
        assert deployed == [
            {"name": "frontend", "namespace": "web", "kind": "Deployment", "complianceState": "Compliant",
             "appliedBy": {"name": "apps-web", "namespace": "flux-system", "kind": "Kustomization"},
             "statusConditions": [], "helmReleaseProperties": None}
        ]  # fmt: skip

        # A broken kustomization: Non-Compliant with the controller's reason.
        _ready(kube, Kustomization, "apps-web", "False", "kustomize build failed: missing web/kustomization.yaml")
        props = _until(
            "Non-Compliant",
            lambda: (p := c.get(path, params=API).json()["properties"])["complianceState"] == "Non-Compliant" and p,
            timeout=15,
        )
        assert "missing web/kustomization.yaml" in props["errorMessage"]

        # The controller's Event reaches the configuration's events (flux-logs-agent).
        kube.create(
            Event.from_dict(
                {
                    "metadata": {"name": "apps-web.1", "namespace": "flux-system"},
                    "involvedObject": {"kind": "Kustomization", "name": "apps-web", "namespace": "flux-system"},
                    "reason": "BuildFailed",
                    "message": "kustomize build failed: missing web/kustomization.yaml",
                    "type": "Warning",
                    "count": 1,
                    "lastTimestamp": "2026-12-06T05:00:02Z",
                }
            )
        )
        events = _until("the event shipped", lambda: c.get(f"{path}/events", params=API).json()["value"], timeout=20)
        assert events[0]["reason"] == "BuildFailed" and events[0]["objectName"] == "apps-web"

        # Protected settings never leave through ARM.
        for r in (c.get(path, params=API), c.get(path.rsplit("/", 1)[0], params=API)):
            assert r.status_code == 200 and SECRET not in r.text
            assert base64.b64encode(SECRET.encode()).decode() not in r.text

        # Delete: the objects go first (Kustomizations, then the source and the Secret), then the resource.
        r = c.delete(path, params=API)
        assert r.status_code == 202, r.text
        _until("deleted", lambda: c.get(path, params=API).status_code == 404)
        assert _get(kube, Kustomization, "apps-web", "flux-system") is None
        assert _get(kube, GitRepository, "apps", "flux-system") is None
        assert _get(kube, Secret, "apps-auth", "flux-system") is None
    print(f"PUT to objects written and reported: {took:.2f} s")
    encoded = base64.b64encode(SECRET.encode()).decode()
    assert SECRET not in server.whole_log() and encoded not in server.whole_log()
    logs = [d / "agent.log" for d in cli.state_dirs() if (d / "agent.log").exists()]
    assert logs and all(SECRET not in log.read_text() and encoded not in log.read_text() for log in logs)


def _state(c: Any, path: str) -> str:
    return str(c.get(path, params=API).json()["properties"]["provisioningState"])


def test_the_cli_manages_flux_configurations_as_az_does(cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    """``halyard k8s-configuration flux …`` on a connected cluster (local agents; the simulator runs no Flux
    controllers, so nothing is fetched): create installs the flux extension first (its chart, with the real helm)
    and waits for it; kustomizations and deployed objects; update; a Flux v1 configuration blocks create; delete."""
    kubeconfig = fresh_cluster()
    group = cli.group("gitops-cli")
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", "cli1", "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "local", "--yes", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    where = ("-g", group, "-c", "cli1", "-t", "connectedClusters")
    bad = cli.run("k8s-configuration", "flux", "create", *where, "-n", "web", "-u", "https://git.example/w.git")
    assert bad.returncode != 0 and "--branch" in bad.stderr
    created = cli.ok("k8s-configuration", "flux", "create", *where, "-n", "web", "--namespace", "flux-system",
                     "-u", "https://git.example/w.git", "--branch", "main", "--https-user", "me", "--https-key", SECRET,
                     "-k", "name=infra path=./infra prune=true", "-k", "name=apps path=./apps depends_on=infra")  # fmt: skip
    props = created["properties"]
    assert props["provisioningState"] == "Succeeded" and SECRET not in json.dumps(created)
    assert props["kustomizations"]["apps"]["dependsOn"] == ["infra"] and props["kustomizations"]["infra"]["prune"]
    extensions = cli.ok("k8s-extension", "list", *where)
    assert [e["properties"]["extensionType"] for e in extensions] == ["microsoft.flux"]
    cli.ok("k8s-configuration", "flux", "kustomization", "create", *where, "-n", "web", "-k", "extra",
           "--path", "./extra", "--depends-on", "apps")  # fmt: skip
    listed = cli.ok("k8s-configuration", "flux", "kustomization", "list", *where, "-n", "web")
    assert set(listed) == {"infra", "apps", "extra"}
    cycle = cli.run("k8s-configuration", "flux", "kustomization", "update", *where, "-n", "web", "-k", "infra",
                    "--depends-on", "extra", "-o", "json")  # fmt: skip
    assert cycle.returncode != 0 and "cycle" in cycle.stderr
    cli.ok("k8s-configuration", "flux", "kustomization", "delete", *where, "-n", "web", "-k", "extra", "--yes")
    updated = cli.ok("k8s-configuration", "flux", "update", *where, "-n", "web", "--tag", "v1.0.0", "--suspend")
    assert updated["properties"]["gitRepository"]["repositoryRef"] == {"tag": "v1.0.0"}
    assert updated["properties"]["suspend"] is True and updated["properties"]["complianceState"] == "Suspended"
    # The objects config-agent wrote, as it reported them (no controller runs here: none has a condition of its own).
    objects = cli.ok("k8s-configuration", "flux", "deployed-object", "list", *where, "-n", "web")
    assert objects and {o["kind"] for o in objects} <= {"GitRepository", "Kustomization"}, objects
    assert cli.ok("k8s-configuration", "flux", "logs", *where, "-n", "web") == []
    shown = cli.ok("k8s-configuration", "flux", "list", *where)
    assert [s["name"] for s in shown] == ["web"] and SECRET not in json.dumps(shown)
    cli.ok("k8s-configuration", "flux", "delete", *where, "-n", "web", "--yes")
    assert cli.ok("k8s-configuration", "flux", "list", *where) == []
