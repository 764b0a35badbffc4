"""One virtual cluster's object semantics and controllers, in process (no HTTP)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from typing import Any

import pytest

from halyard.core.clock import ManualClock
from halyard.sim.cluster import VirtualCluster, WriteContext
from halyard.sim.controllers import ControllerManager, Timing
from halyard.sim.errors import ApiError
from halyard.sim.rbac import UserInfo
from halyard.sim.resources import ResourceType
from halyard.sim.seed import seed_cluster


def _cluster() -> VirtualCluster:
    c = VirtualCluster("t", ManualClock())
    seed_cluster(c, nodes=2, version="v1.31.2", distribution="generic")
    return c


def _rt(c: VirtualCluster, group: str, plural: str) -> ResourceType:
    for t in c.registry.all_types():
        if t.group == group and t.plural == plural:
            return t
    raise AssertionError(plural)


@pytest.mark.unit
def test_seeded_cluster() -> None:
    c = _cluster()
    assert [n["metadata"]["name"] for n in c.store.list("/nodes")] == ["control-plane", "node-1"]
    assert {n["metadata"]["name"] for n in c.store.list("/namespaces")} >= {"default", "kube-system"}
    assert c.store.get("rbac.authorization.k8s.io/clusterrolebindings", "", "cluster-admin") is not None


@pytest.mark.unit
def test_the_control_plane_node_is_tainted_when_there_are_workers() -> None:
    taint = {"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}
    nodes = _cluster().store.list("/nodes")
    assert [n["spec"].get("taints") for n in nodes] == [[taint], None]
    # A single-node cluster (kind's default) runs its workloads on the control plane: no taint.
    single = VirtualCluster("one", ManualClock())
    seed_cluster(single, nodes=1, version="v1.31.2", distribution="generic")
    assert [n["spec"].get("taints") for n in single.store.list("/nodes")] == [None]


@pytest.mark.unit
def test_terminating_namespace_refuses_new_objects() -> None:
    c = _cluster()
    ns, cm = _rt(c, "", "namespaces"), _rt(c, "", "configmaps")
    c.create(ns, "", {"metadata": {"name": "x"}})
    body, finished = c.delete(ns, "", "x")
    assert not finished and body["status"]["phase"] == "Terminating"
    with pytest.raises(ApiError) as e:
        c.create(cm, "x", {"metadata": {"name": "late"}})
    assert (e.value.code, e.value.reason) == (403, "Forbidden")


@pytest.mark.unit
def test_dry_run_and_no_op_updates() -> None:
    c = _cluster()
    cm = _rt(c, "", "configmaps")
    c.create(cm, "default", {"metadata": {"name": "a"}, "data": {"k": "v"}}, WriteContext(dry_run=True))
    assert c.store.get(cm.key, "default", "a") is None
    created = c.create(cm, "default", {"metadata": {"name": "a"}, "data": {"k": "v"}})
    rv = created["metadata"]["resourceVersion"]
    same = c.update(cm, "default", "a", json.loads(json.dumps(created)))
    assert same["metadata"]["resourceVersion"] == rv  # nothing changed: no new version, no event


@pytest.mark.unit
def test_apply_creates_then_patches() -> None:
    c = _cluster()
    cm = _rt(c, "", "configmaps")
    ctx = WriteContext(field_manager="agent")
    body = json.dumps({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "s"}, "data": {"a": "1"}})
    obj, created = c.patch(cm, "default", "s", "application/apply-patch+yaml", body.encode(), ctx)
    assert created and obj["metadata"]["managedFields"][0]["manager"] == "agent"
    obj, created = c.patch(cm, "default", "s", "application/merge-patch+json", b'{"data":{"b":"2"}}', ctx)
    assert not created and obj["data"] == {"a": "1", "b": "2"}


@pytest.mark.unit
def test_crd_serves_custom_resources() -> None:
    c = _cluster()
    crd = {"metadata": {"name": "gadgets.example.com"}, "spec": {
        "group": "example.com", "scope": "Namespaced", "names": {"plural": "gadgets", "kind": "Gadget"},
        "versions": [{"name": "v1", "served": True, "storage": True}]}}  # fmt: skip
    c.create(_rt(c, "apiextensions.k8s.io", "customresourcedefinitions"), "", crd)
    gadget = c.registry.lookup("example.com", "v1", "gadgets")
    assert gadget is not None and gadget.kind == "Gadget"
    c.create(gadget, "default", {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}})
    c.delete(_rt(c, "apiextensions.k8s.io", "customresourcedefinitions"), "", "gadgets.example.com")
    assert c.registry.lookup("example.com", "v1", "gadgets") is None
    assert c.store.list(gadget.key) == []


async def _settle(check: Any, timeout: float = 15) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("controllers did not settle")
        await asyncio.sleep(0.01)


@pytest.mark.unit
async def test_controllers_deployment_job_daemonset() -> None:
    c = _cluster()
    mgr = ControllerManager(Timing(pod_start=0.01, job_pod_run=0.01))
    mgr.attach(c)
    mgr.start()
    try:
        template = {"metadata": {"labels": {"app": "w"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}
        c.create(_rt(c, "apps", "deployments"), "default", {"metadata": {"name": "w"}, "spec": {
            "replicas": 3, "selector": {"matchLabels": {"app": "w"}}, "template": template}})  # fmt: skip

        def deployed() -> bool:
            st = (c.store.get("apps/deployments", "default", "w") or {}).get("status") or {}
            return st.get("availableReplicas") == 3 and st.get("updatedReplicas") == 3

        await _settle(deployed)
        pods = c.store.list("/pods", "default")
        assert len(pods) == 3 and all(p["status"]["phase"] == "Running" for p in pods)
        # The control plane's NoSchedule taint keeps workloads on the worker, as on a real cluster.
        assert {p["spec"]["nodeName"] for p in pods} == {"node-1"}
        c.create(_rt(c, "batch", "jobs"), "default", {"metadata": {"name": "j"}, "spec": {
            "completions": 2, "template": {"spec": {"containers": [{"name": "c", "image": "i"}]}}}})  # fmt: skip

        def completed() -> bool:
            st = (c.store.get("batch/jobs", "default", "j") or {}).get("status") or {}
            return any(x["type"] == "Complete" for x in st.get("conditions") or [])

        await _settle(completed)
        # A DaemonSet that tolerates the control plane's taint (as kube-proxy does) runs there too.
        tolerant = {**template, "spec": {**template["spec"], "tolerations": [{"operator": "Exists"}]}}
        c.create(_rt(c, "apps", "daemonsets"), "kube-system", {"metadata": {"name": "d"}, "spec": {
            "selector": {"matchLabels": {"app": "w"}}, "template": tolerant}})  # fmt: skip
        await _settle(lambda: ((c.store.get("apps/daemonsets", "kube-system", "d") or {}).get("status") or {})
                      .get("numberReady") == 2)  # fmt: skip
        # Foreground deletion: the deployment stays, Terminating, until its replica set is gone.
        marked, finished = c.delete(_rt(c, "apps", "deployments"), "default", "w", {"propagationPolicy": "Foreground"})
        assert not finished and marked["metadata"]["finalizers"] == ["foregroundDeletion"]
        await _settle(lambda: c.store.get("apps/deployments", "default", "w") is None)
        await _settle(lambda: not c.store.list("apps/replicasets", "default")
                      and not [p for p in c.store.list("/pods", "default") if "w-" in p["metadata"]["name"]])  # fmt: skip
    finally:
        await mgr.stop()


@pytest.mark.unit
def test_custom_resources_are_pruned_and_validated() -> None:
    c = _cluster()
    schema = {"type": "object", "properties": {"spec": {"type": "object", "required": ["size"], "properties": {
        "size": {"type": "integer", "minimum": 1}, "color": {"type": "string", "enum": ["red", "blue"]},
        "extra": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}}}}}  # fmt: skip
    crd = {"metadata": {"name": "gadgets.example.com"}, "spec": {
        "group": "example.com", "scope": "Namespaced", "names": {"plural": "gadgets", "kind": "Gadget"},
        "versions": [{"name": "v1", "served": True, "storage": True, "schema": {"openAPIV3Schema": schema}}]}}  # fmt: skip
    c.create(_rt(c, "apiextensions.k8s.io", "customresourcedefinitions"), "", crd)
    gadget = c.registry.lookup("example.com", "v1", "gadgets")
    assert gadget is not None

    def body(spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "example.com/v1", "kind": "Gadget", "metadata": {"name": "g"}, "spec": spec}

    ctx = WriteContext(field_validation="Warn")
    stored = c.create(gadget, "default", body({"size": 2, "bogus": 1, "extra": {"free": "form"}}), ctx)
    assert stored["spec"] == {"size": 2, "extra": {"free": "form"}}
    assert ctx.warnings == ['unknown field "spec.bogus"']
    with pytest.raises(ApiError) as e:
        c.create(gadget, "default", body({"size": "big", "color": "green"}))
    assert e.value.code == 422
    causes = {(x["field"], x["reason"]) for x in e.value.details["causes"]}  # type: ignore[index]
    assert causes == {("spec.size", "FieldValueTypeInvalid"), ("spec.color", "FieldValueNotSupported")}
    with pytest.raises(ApiError) as e:
        c.update(gadget, "default", "g", body({}))
    assert e.value.details["causes"][0]["field"] == "spec.size"  # type: ignore[index]
    with pytest.raises(ApiError) as e:
        c.create(gadget, "default", body({"size": 1, "bogus": 1}) | {"metadata": {"name": "h"}},
                 WriteContext(field_validation="Strict"))  # fmt: skip
    assert e.value.code == 400 and 'unknown field "spec.bogus"' in e.value.message


@pytest.mark.unit
def test_distribution_profiles() -> None:
    c = VirtualCluster("prod", ManualClock())
    seed_cluster(c, nodes=2, version="v1.30.4", distribution="eks")
    nodes = c.store.list("/nodes")
    assert [n["metadata"]["name"] for n in nodes] == ["ip-10-0-0-2.ec2.internal", "ip-10-0-0-3.ec2.internal"]
    assert all(n["spec"]["providerID"].startswith("aws:///us-east-1a/i-") for n in nodes)
    assert nodes[0]["status"]["nodeInfo"]["kubeletVersion"] == "v1.30.4-eks-7f7a9a2"
    assert "node-role.kubernetes.io/control-plane" not in nodes[0]["metadata"]["labels"]  # managed: no control plane
    other = VirtualCluster("other", ManualClock())
    seed_cluster(other, nodes=1, version="v1.30.4", distribution="eks")
    assert other.store.list("/nodes")[0]["spec"]["providerID"] != nodes[0]["spec"]["providerID"]


@pytest.mark.unit
def test_issued_tokens_expire() -> None:
    clock = ManualClock()
    c = VirtualCluster("t", clock)
    robot = UserInfo("system:serviceaccount:default:robot")
    token, expires = c.issue_token(robot, dt.timedelta(seconds=600))
    assert expires == clock.now() + dt.timedelta(seconds=600)
    assert c.user_for_token(token) == robot and c.user_for_token(c.admin_token) is not None
    clock.advance(601)
    assert c.user_for_token(token) is None
    assert c.user_for_token(c.admin_token) is not None  # the admin's token does not expire
    c.issue_token(robot, dt.timedelta(seconds=60))
    assert token not in c.tokens  # expired tokens are dropped when new ones are issued


@pytest.mark.unit
def test_cron_schedules() -> None:
    from halyard.sim.cron import next_after

    t = dt.datetime(2026, 1, 1, 10, 7, 30, tzinfo=dt.UTC)  # a Thursday
    assert next_after("*/15 * * * *", t) == t.replace(minute=15, second=0)
    assert next_after("30 9 * * 1-5", t) == dt.datetime(2026, 1, 2, 9, 30, tzinfo=dt.UTC)
    assert next_after("@yearly", t) == dt.datetime(2027, 1, 1, tzinfo=dt.UTC)
    assert next_after("0 0 29 2 *", t) == dt.datetime(2028, 2, 29, tzinfo=dt.UTC)
    with pytest.raises(ApiError) as e:
        c = _cluster()
        c.create(_rt(c, "batch", "cronjobs"), "default", {"metadata": {"name": "bad"}, "spec": {
            "schedule": "61 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "i"}]}}}}}})  # fmt: skip
    assert e.value.details["causes"][0]["field"] == "spec.schedule"  # type: ignore[index]


@pytest.mark.unit
async def test_cronjob_creates_jobs_when_due() -> None:
    clock = ManualClock(dt.datetime(2026, 1, 1, 10, 0, 30, tzinfo=dt.UTC))
    c = VirtualCluster("t", clock)
    seed_cluster(c, nodes=1, version="v1.31.2", distribution="generic")
    mgr = ControllerManager(Timing(pod_start=0.01, job_pod_run=0.01))
    mgr.attach(c)
    mgr.start()
    try:
        c.create(_rt(c, "batch", "cronjobs"), "default", {"metadata": {"name": "tick"}, "spec": {
            "schedule": "*/5 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [
                {"name": "c", "image": "i"}]}}}}}})  # fmt: skip
        await asyncio.sleep(0.05)
        assert c.store.list("batch/jobs", "default") == []  # not due before 10:05
        clock.advance(20 * 60)  # 10:20:30: runs at 10:05, 10:10, 10:15 and 10:20 were missed; only the latest runs
        mgr.enqueue(("t", "cronjob", "default", "tick"))
        await _settle(lambda: len(c.store.list("batch/jobs", "default")) == 1)
        job = c.store.list("batch/jobs", "default")[0]
        assert (
            job["metadata"]["name"] == f"tick-{int(dt.datetime(2026, 1, 1, 10, 20, tzinfo=dt.UTC).timestamp()) // 60}"
        )
        await _settle(lambda: ((c.store.get("batch/cronjobs", "default", "tick") or {}).get("status") or {})
                      .get("lastSuccessfulTime") is not None)  # fmt: skip
        assert c.store.get("batch/cronjobs", "default", "tick")["status"]["lastScheduleTime"] == "2026-01-01T10:20:00Z"  # type: ignore[index]
    finally:
        await mgr.stop()
