"""The real kubectl (the oldest and newest versions on the machine) against a simulated cluster, default flags."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sim.conftest import DATA, KUBECTL_VERSIONS, Sim, Tool, kubectl_path
from tests.support.processes import LineReader

pytestmark = pytest.mark.e2e


@pytest.fixture(params=KUBECTL_VERSIONS)
def kubectl(request: pytest.FixtureRequest, sim: Sim, tmp_path: Path) -> Tool:
    # Each version gets its own virtual cluster, so the scenarios cannot see each other.
    cluster = sim.clusters[KUBECTL_VERSIONS.index(request.param)]
    return Tool(kubectl_path(request.param), cluster.kubeconfig, tmp_path)


def test_version_and_nodes_wide(kubectl: Tool) -> None:
    out = kubectl.run("version", "-o", "json").stdout
    assert json.loads(out)["serverVersion"]["gitVersion"] == "v1.31.2"
    lines = kubectl.run("get", "nodes", "-o", "wide").stdout.splitlines()
    assert lines[0].split() == ["NAME", "STATUS", "ROLES", "AGE", "VERSION", "INTERNAL-IP", "EXTERNAL-IP",
                                "OS-IMAGE", "KERNEL-VERSION", "CONTAINER-RUNTIME"]  # fmt: skip
    assert len(lines) == 4
    assert all(" Ready " in line and "v1.31.2" in line for line in lines[1:])
    node = json.loads(kubectl.run("get", "node", "node-1", "-o", "json").stdout)
    assert node["status"]["allocatable"]["cpu"] == "4"
    assert node["spec"]["providerID"].startswith("generic://")


def test_apply_rollout_watch_logs(kubectl: Tool) -> None:
    manifest = str(DATA / "demo.yaml")
    first = kubectl.run("apply", "-f", manifest, check=False)
    # As on a real server: the custom resource in the same file as its CRD fails the first run only.
    assert first.returncode == 1 and 'no matches for kind "Gadget"' in first.stderr
    assert "deployment.apps/web created" in first.stdout
    second = kubectl.run("apply", "-f", manifest).stdout
    assert "gadget.example.com/g1 created" in second and "deployment.apps/web unchanged" in second
    kubectl.run("-n", "demo", "rollout", "status", "deploy/web", "--timeout=30s")
    pods = kubectl.run("-n", "demo", "get", "pods", "-l", "app=web").stdout
    assert pods.count("Running") == 2
    assert "3" in kubectl.run("-n", "demo", "get", "gadgets").stdout.splitlines()[1]
    # An update seen by a watch that is already open.
    watch = kubectl.popen("-n", "demo", "get", "configmap", "settings", "--watch", "-o", "name")
    try:
        assert watch.stdout is not None
        lines = LineReader(watch.stdout)
        # The initial list: the watch is open.
        assert lines.next(30, "the watch's initial list").strip() == "configmap/settings"
        kubectl.run("-n", "demo", "patch", "configmap", "settings", "-p", '{"data":{"color":"red"}}')
        assert lines.next(30, "the update, through the watch").strip() == "configmap/settings"
    finally:
        watch.kill()
        watch.wait()
    # A rollout of a changed template replaces the pods.
    kubectl.run("-n", "demo", "set", "image", "deploy/web", "nginx=nginx:1.27")
    kubectl.run("-n", "demo", "rollout", "status", "deploy/web", "--timeout=30s")
    images = kubectl.run("-n", "demo", "get", "pods", "-o", "jsonpath={.items[*].spec.containers[0].image}").stdout
    assert images.split() == ["nginx:1.27", "nginx:1.27"]
    described = kubectl.run("-n", "demo", "describe", "deployment", "web").stdout
    assert "ScalingReplicaSet" in described and "Scaled up replica set web-" in described
    logs = kubectl.run("-n", "demo", "logs", "deploy/web", "--tail=2").stdout.splitlines()
    assert logs == ["[nginx] log line 8", "[nginx] log line 9"]


def test_server_side_apply_conflict(kubectl: Tool) -> None:
    kubectl.run("create", "namespace", "ssa")

    def cm(color: str) -> str:
        return json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "shared", "namespace": "ssa"},
                           "data": {"color": color}})  # fmt: skip

    kubectl.run("apply", "--server-side", "--field-manager=alice", "-f", "-", input=cm("red"))
    clash = kubectl.run("apply", "--server-side", "--field-manager=bob", "-f", "-", input=cm("green"), check=False)
    assert clash.returncode == 1
    assert 'Apply failed with 1 conflict: conflict with "alice": .data.color' in clash.stderr
    kubectl.run("apply", "--server-side", "--force-conflicts", "--field-manager=bob", "-f", "-", input=cm("green"))
    live = json.loads(kubectl.run("-n", "ssa", "get", "cm", "shared", "-o", "json", "--show-managed-fields").stdout)
    assert live["data"]["color"] == "green"
    owners = {m["manager"]: m["fieldsV1"] for m in live["metadata"]["managedFields"]}
    assert owners["bob"] == {"f:data": {"f:color": {}}} and "alice" not in owners


def test_delete_namespace_cascades(kubectl: Tool) -> None:
    kubectl.run("create", "namespace", "doomed")
    kubectl.run("-n", "doomed", "create", "deployment", "app", "--image=nginx", "--replicas=2")
    kubectl.run("-n", "doomed", "create", "configmap", "cfg", "--from-literal=a=b")
    kubectl.run("-n", "doomed", "rollout", "status", "deploy/app", "--timeout=30s")
    kubectl.run("delete", "namespace", "doomed", "--timeout=30s")
    assert "doomed" not in kubectl.run("get", "namespaces", "-o", "name").stdout
    assert kubectl.run("get", "pods", "-n", "doomed", "-o", "name").stdout == ""


def test_auth_can_i_from_rbac(kubectl: Tool) -> None:
    assert kubectl.run("auth", "can-i", "create", "pods").stdout.strip() == "yes"
    denied = kubectl.run("auth", "can-i", "create", "pods", "--as", "someone", check=False)
    assert (denied.returncode, denied.stdout.strip()) == (1, "no")
    kubectl.run("create", "namespace", "team")
    kubectl.run("-n", "team", "create", "role", "pod-maker", "--verb=create,get,list", "--resource=pods")
    kubectl.run("-n", "team", "create", "rolebinding", "someone-makes-pods", "--role=pod-maker", "--user=someone")
    assert kubectl.run("-n", "team", "auth", "can-i", "create", "pods", "--as", "someone").stdout.strip() == "yes"
    assert kubectl.run("-n", "team", "auth", "can-i", "delete", "pods", "--as", "someone", check=False).returncode == 1
    # The impersonated user really is that user: a list it may not do is refused with a Forbidden.
    refused = kubectl.run("-n", "default", "get", "pods", "--as", "someone", check=False)
    assert refused.returncode == 1 and "forbidden" in refused.stderr.lower()


def test_explain(kubectl: Tool) -> None:
    out = kubectl.run("explain", "deployment.spec").stdout
    assert "KIND:" in out and "Deployment" in out
    assert "replicas" in out and "template" in out and "Number of desired pods" in out
    fields = kubectl.run("explain", "deployment.spec.template.spec.containers.image").stdout
    assert "Container image name" in fields


def test_strict_field_validation(kubectl: Tool) -> None:
    bad = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "typo", "namespace": "default"},
                      "data": {"a": "b"}, "bogus": 1})  # fmt: skip
    refused = kubectl.run("apply", "-f", "-", input=bad, check=False)
    assert refused.returncode == 1 and 'unknown field "bogus"' in refused.stderr
    kubectl.run("apply", "--validate=false", "-f", "-", input=bad)


def test_scale_wait_jobs_and_migration_to_server_side_apply(kubectl: Tool) -> None:
    kubectl.run("create", "namespace", "ops")
    kubectl.run("-n", "ops", "create", "deployment", "api", "--image=nginx", "--replicas=1")
    kubectl.run("-n", "ops", "scale", "deployment/api", "--replicas=3")
    kubectl.run("-n", "ops", "wait", "--for=condition=Available", "deployment/api", "--timeout=30s")
    kubectl.run("-n", "ops", "rollout", "status", "deployment/api", "--timeout=30s")
    assert len(kubectl.run("-n", "ops", "get", "pods", "-o", "name").stdout.split()) == 3
    top = kubectl.run("top", "nodes").stdout.splitlines()
    assert top[0].split()[:2] == ["NAME", "CPU(cores)"] and len(top) == 4
    assert len(kubectl.run("-n", "ops", "top", "pods").stdout.splitlines()) == 4
    kubectl.run("-n", "ops", "set", "image", "deployment/api", "nginx=nginx:2")
    kubectl.run("-n", "ops", "rollout", "status", "deployment/api", "--timeout=30s")
    kubectl.run("-n", "ops", "rollout", "undo", "deployment/api")
    kubectl.run("-n", "ops", "rollout", "status", "deployment/api", "--timeout=30s")
    sets = kubectl.run("-n", "ops", "get", "rs", "-o", "jsonpath={.items[*].spec.replicas}").stdout.split()
    assert sorted(sets) == ["0", "3"]  # the rollback reused the first replica set
    kubectl.run("drain", "node-1", "--ignore-daemonsets", "--timeout=30s")  # cordon, then evict
    kubectl.run("-n", "ops", "rollout", "status", "deployment/api", "--timeout=30s")
    on_node = kubectl.run("get", "pods", "-A", "--field-selector=spec.nodeName=node-1", "-o", "name").stdout
    assert on_node == ""
    kubectl.run("uncordon", "node-1")
    kubectl.run("-n", "ops", "create", "job", "once", "--image=busybox")
    kubectl.run("-n", "ops", "wait", "--for=condition=Complete", "job/once", "--timeout=30s")
    # A client-side-applied object taken over by server-side apply (kubectl rewrites managedFields on the way).
    cm = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "moved", "namespace": "ops"},
                     "data": {"a": "1"}})  # fmt: skip
    kubectl.run("apply", "-f", "-", input=cm)
    kubectl.run("apply", "--server-side", "-f", "-", input=cm)  # kubectl moves ownership to itself here
    kubectl.run("apply", "--server-side", "-f", "-", input=cm.replace('"1"', '"2"'))
    live = json.loads(kubectl.run("-n", "ops", "get", "cm", "moved", "-o", "json", "--show-managed-fields").stdout)
    assert live["data"] == {"a": "2"}
    assert "kubectl" in {m["manager"] for m in live["metadata"]["managedFields"]}
    assert kubectl.run("-n", "ops", "exec", "deploy/api", "--", "hostname").stdout.startswith("api-")
