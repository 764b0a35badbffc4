"""The simulator over HTTPS, as raw requests: isolation, credentials, and the exact Status errors of a real server."""

from __future__ import annotations

import base64
import json
import ssl
import tempfile
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from tests.sim.conftest import Sim, SimCluster

pytestmark = pytest.mark.e2e


def client(sim: Sim, cluster: SimCluster, token: str | None = None, **kw: Any) -> httpx.Client:
    headers = {"Authorization": f"Bearer {token or cluster.token}"} if token != "" else {}
    return httpx.Client(base_url=cluster.server, verify=str(sim.ca), headers=headers, timeout=10, **kw)


@pytest.fixture
def api(sim: Sim) -> Iterator[httpx.Client]:
    with client(sim, sim.clusters[-1]) as c:
        yield c


def cm(name: str, ns: str = "default", **data: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": name, "namespace": ns}, "data": data}


def test_clusters_are_isolated(sim: Sim) -> None:
    a, b = sim.clusters[0], sim.clusters[1]
    with client(sim, a) as ca, client(sim, b) as cb:
        assert ca.post("/api/v1/namespaces/default/configmaps", json=cm("only-in-a")).status_code == 201
        assert cb.get("/api/v1/namespaces/default/configmaps/only-in-a").status_code == 404
        assert "only-in-a" not in cb.get("/api/v1/configmaps").text
    # A token of one cluster is refused by the other.
    with client(sim, b, token=a.token) as wrong:
        r = wrong.get("/api/v1/namespaces")
        assert r.status_code == 401 and r.json()["reason"] == "Unauthorized"
    with client(sim, a, token="") as anonymous:
        assert anonymous.get("/api/v1/namespaces").status_code == 401
        assert anonymous.get("/version").status_code == 200


def _cert_files(cluster: SimCluster) -> tuple[str, str]:
    user = yaml.safe_load(cluster.kubeconfig.read_text())["users"][0]["user"]
    files = []
    for key in ("client-certificate-data", "client-key-data"):
        f = tempfile.NamedTemporaryFile("wb", suffix=".pem", delete=False)
        f.write(base64.b64decode(user[key]))
        f.close()
        files.append(f.name)
    return files[0], files[1]


def test_client_certificates_are_bound_to_their_cluster(sim: Sim) -> None:
    a, b = sim.clusters[0], sim.clusters[1]
    ctx = ssl.create_default_context(cafile=str(sim.ca))
    ctx.load_cert_chain(*_cert_files(a))
    with httpx.Client(verify=ctx, timeout=10) as c:
        mine = c.get(f"{a.server}/apis/authentication.k8s.io/v1/selfsubjectreviews")
        assert mine.status_code == 405  # POST only: but authenticated, so not a 401
        who = c.post(f"{a.server}/apis/authentication.k8s.io/v1/selfsubjectreviews",
                     json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"})  # fmt: skip
        assert who.status_code == 201
        assert who.json()["status"]["userInfo"]["username"] == "kubernetes-admin"
        assert "system:masters" in who.json()["status"]["userInfo"]["groups"]
        assert c.get(f"{b.server}/api/v1/namespaces").status_code == 401


def test_status_errors(api: httpx.Client) -> None:
    r = api.get("/api/v1/namespaces/default/configmaps/missing")
    assert r.status_code == 404
    assert r.json() == {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                        "message": 'configmaps "missing" not found', "reason": "NotFound",
                        "details": {"name": "missing", "kind": "configmaps"}, "code": 404}  # fmt: skip
    assert api.post("/api/v1/namespaces/default/configmaps", json=cm("dup")).status_code == 201
    r = api.post("/api/v1/namespaces/default/configmaps", json=cm("dup"))
    assert (r.status_code, r.json()["reason"], r.json()["message"]) == (
        409,
        "AlreadyExists",
        'configmaps "dup" already exists',
    )
    stale = api.get("/api/v1/namespaces/default/configmaps/dup").json()
    fresh = dict(stale, data={"v": "1"})
    assert api.put("/api/v1/namespaces/default/configmaps/dup", json=fresh).status_code == 200
    r = api.put("/api/v1/namespaces/default/configmaps/dup", json=dict(stale, data={"v": "2"}))
    assert (r.status_code, r.json()["reason"]) == (409, "Conflict")
    assert "the object has been modified" in r.json()["message"]
    r = api.post("/api/v1/namespaces/default/configmaps", json=cm("Bad_Name"))
    body = r.json()
    assert (r.status_code, body["reason"]) == (422, "Invalid")
    assert body["details"]["causes"][0]["field"] == "metadata.name"
    assert body["details"]["causes"][0]["reason"] == "FieldValueInvalid"
    r = api.post("/apis/apps/v1/namespaces/default/deployments",
                 json={"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "nosel"},
                       "spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}})  # fmt: skip
    assert r.status_code == 422 and r.json()["details"]["causes"][0]["field"] == "spec.selector"
    r = api.post("/api/v1/namespaces/nowhere/configmaps", json=cm("x", "nowhere"))
    assert (r.status_code, r.json()["message"]) == (404, 'namespaces "nowhere" not found')


def test_forbidden_and_impersonation(sim: Sim, api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "rbac"}})
    api.post("/api/v1/namespaces/rbac/serviceaccounts", json={"metadata": {"name": "robot"}})
    token = api.post("/api/v1/namespaces/rbac/serviceaccounts/robot/token",
                     json={"spec": {"expirationSeconds": 600}}).json()["status"]["token"]  # fmt: skip
    with client(sim, sim.clusters[-1], token=token) as robot:
        r = robot.get("/api/v1/namespaces/rbac/secrets")
        assert r.status_code == 403 and r.json()["reason"] == "Forbidden"
        assert r.json()["message"] == ('secrets is forbidden: User "system:serviceaccount:rbac:robot" cannot list '
                                       'resource "secrets" in API group "" in the namespace "rbac"')  # fmt: skip
        r = robot.get("/api/v1/namespaces", headers={"Impersonate-User": "kubernetes-admin"})
        assert r.status_code == 403 and "cannot impersonate" in r.json()["message"]
        assert robot.get("/api").status_code == 200  # discovery is open to every authenticated user
    api.post("/apis/rbac.authorization.k8s.io/v1/namespaces/rbac/rolebindings", json={
        "metadata": {"name": "robot-view"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                                        "name": "view"},
        "subjects": [{"kind": "ServiceAccount", "name": "robot", "namespace": "rbac"}]})  # fmt: skip
    with client(sim, sim.clusters[-1], token=token) as robot:
        assert robot.get("/api/v1/namespaces/rbac/configmaps").status_code == 200
        assert robot.get("/api/v1/namespaces/default/configmaps").status_code == 403
    # The admin impersonates: the request is evaluated as the impersonated user.
    r = api.get("/api/v1/namespaces/rbac/configmaps",
                headers={"Impersonate-User": "system:serviceaccount:rbac:robot"})  # fmt: skip
    assert r.status_code == 200
    r = api.get("/api/v1/namespaces/rbac/secrets", headers={"Impersonate-User": "system:serviceaccount:rbac:robot"})
    assert r.status_code == 403
    review = api.post(
        "/apis/authentication.k8s.io/v1/tokenreviews",
        json={"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview", "spec": {"token": token}},
    )
    assert review.json()["status"]["user"]["username"] == "system:serviceaccount:rbac:robot"
    sar = api.post("/apis/authorization.k8s.io/v1/subjectaccessreviews", json={
        "apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
        "spec": {"user": "system:serviceaccount:rbac:robot", "groups": ["system:serviceaccounts"],
                 "resourceAttributes": {"namespace": "rbac", "verb": "list", "resource": "configmaps"}}})  # fmt: skip
    assert sar.status_code == 201 and sar.json()["status"]["allowed"] is True


def test_an_apply_that_creates_is_authorized_as_a_create_too(sim: Sim, api: httpx.Client) -> None:
    """As kube-apiserver: a server-side apply of an object that does not exist needs `create` besides `patch`."""
    api.post("/api/v1/namespaces", json={"metadata": {"name": "ssa"}})
    api.post("/api/v1/namespaces/ssa/serviceaccounts", json={"metadata": {"name": "applier"}})
    token = api.post("/api/v1/namespaces/ssa/serviceaccounts/applier/token",
                     json={"spec": {"expirationSeconds": 600}}).json()["status"]["token"]  # fmt: skip
    role = {"metadata": {"name": "cm-patch"},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["patch"]}]}  # fmt: skip
    api.post("/apis/rbac.authorization.k8s.io/v1/namespaces/ssa/roles", json=role)
    api.post("/apis/rbac.authorization.k8s.io/v1/namespaces/ssa/rolebindings", json={
        "metadata": {"name": "cm-patch"}, "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                                      "name": "cm-patch"},
        "subjects": [{"kind": "ServiceAccount", "name": "applier", "namespace": "ssa"}]})  # fmt: skip
    assert api.post("/api/v1/namespaces/ssa/configmaps", json=cm("there", "ssa", a="1")).status_code == 201
    apply = {"Content-Type": "application/apply-patch+yaml"}
    with client(sim, sim.clusters[-1], token=token) as applier:
        url = "/api/v1/namespaces/ssa/configmaps/{}?fieldManager=t&force=true"
        r = applier.patch(url.format("there"), content=json.dumps(cm("there", "ssa", a="2")), headers=apply)
        assert r.status_code == 200, r.text  # an existing object: patch is enough
        r = applier.patch(url.format("new"), content=json.dumps(cm("new", "ssa", a="1")), headers=apply)
        assert r.status_code == 403 and 'cannot create resource "configmaps"' in r.json()["message"], r.text
        assert api.get("/api/v1/namespaces/ssa/configmaps/new").status_code == 404
        role["rules"][0]["verbs"] = ["patch", "create"]
        api.put("/apis/rbac.authorization.k8s.io/v1/namespaces/ssa/roles/cm-patch", json=role)
        r = applier.patch(url.format("new"), content=json.dumps(cm("new", "ssa", a="1")), headers=apply)
        assert r.status_code == 201, r.text


def _watch_lines(api: httpx.Client, url: str, count: int, timeout: float = 10) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    with api.stream("GET", url, timeout=timeout) as r:
        assert r.status_code == 200
        for line in r.iter_lines():
            if line:
                out.append(json.loads(line))
            if len(out) >= count:
                break
    return out


def test_watch_resource_versions_and_expiry(api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "wv"}})
    listed = api.get("/api/v1/namespaces/wv/configmaps").json()
    rv = listed["metadata"]["resourceVersion"]
    api.post("/api/v1/namespaces/wv/configmaps", json=cm("a", "wv", x="1"))
    api.patch("/api/v1/namespaces/wv/configmaps/a", content=json.dumps({"data": {"x": "2"}}),
              headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    events = _watch_lines(api, f"/api/v1/namespaces/wv/configmaps?watch=true&resourceVersion={rv}", 2)
    assert [(e["type"], e["object"]["data"]["x"]) for e in events] == [("ADDED", "1"), ("MODIFIED", "2")]
    assert int(events[1]["object"]["metadata"]["resourceVersion"]) > int(rv)
    by_name = _watch_lines(api, f"/api/v1/namespaces/wv/configmaps/a?watch=true&resourceVersion={rv}", 2)
    assert [e["type"] for e in by_name] == ["ADDED", "MODIFIED"]
    # A resourceVersion older than the watch history: the watch answers with a 410 Expired ERROR event.
    for i in range(260):
        api.put("/api/v1/namespaces/wv/configmaps/a", json=cm("a", "wv", x=str(i)))
    expired = _watch_lines(api, f"/api/v1/namespaces/wv/configmaps?watch=true&resourceVersion={rv}", 1)
    assert expired[0]["type"] == "ERROR"
    assert (expired[0]["object"]["code"], expired[0]["object"]["reason"]) == (410, "Expired")


def test_paging_selectors_dry_run(api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "pg"}})
    for i in range(5):
        body = cm(f"c{i}", "pg")
        body["metadata"]["labels"] = {"tier": "a" if i % 2 else "b"}
        api.post("/api/v1/namespaces/pg/configmaps", json=body)
    page = api.get("/api/v1/namespaces/pg/configmaps?limit=2").json()
    assert [o["metadata"]["name"] for o in page["items"]] == ["c0", "c1"]
    assert page["metadata"]["remainingItemCount"] == 3
    rest = api.get(f"/api/v1/namespaces/pg/configmaps?limit=10&continue={page['metadata']['continue']}").json()
    assert [o["metadata"]["name"] for o in rest["items"]] == ["c2", "c3", "c4"]
    picked = api.get("/api/v1/namespaces/pg/configmaps?labelSelector=tier%20in%20(a)").json()
    assert [o["metadata"]["name"] for o in picked["items"]] == ["c1", "c3"]
    one = api.get("/api/v1/namespaces/pg/configmaps?fieldSelector=metadata.name%3Dc4").json()
    assert [o["metadata"]["name"] for o in one["items"]] == ["c4"]
    r = api.post("/api/v1/namespaces/pg/configmaps?dryRun=All", json=cm("ghost", "pg"))
    assert r.status_code == 201 and r.json()["metadata"]["uid"]
    assert api.get("/api/v1/namespaces/pg/configmaps/ghost").status_code == 404


def test_finalizers_and_garbage_collection(api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "gc"}})
    owner = api.post("/api/v1/namespaces/gc/configmaps", json=cm("owner", "gc")).json()
    dep = cm("dependent", "gc")
    dep["metadata"]["ownerReferences"] = [{"apiVersion": "v1", "kind": "ConfigMap", "name": "owner",
                                           "uid": owner["metadata"]["uid"]}]  # fmt: skip
    dep["metadata"]["finalizers"] = ["example.com/hold"]
    api.post("/api/v1/namespaces/gc/configmaps", json=dep)
    assert api.delete("/api/v1/namespaces/gc/configmaps/owner").status_code == 200
    deadline = time.monotonic() + 15
    held: dict[str, Any] = {}
    while time.monotonic() < deadline:
        held = api.get("/api/v1/namespaces/gc/configmaps/dependent").json()
        if held["metadata"].get("deletionTimestamp"):
            break
        time.sleep(0.05)
    assert held["metadata"]["deletionTimestamp"]  # marked by the garbage collector, kept by its finalizer
    api.patch("/api/v1/namespaces/gc/configmaps/dependent", content=json.dumps({"metadata": {"finalizers": None}}),
              headers={"Content-Type": "application/merge-patch+json"})  # fmt: skip
    assert api.get("/api/v1/namespaces/gc/configmaps/dependent").status_code == 404


def test_status_subresource_and_generation(api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "gen"}})
    d = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "d"},
         "spec": {"replicas": 0, "selector": {"matchLabels": {"a": "b"}},
                  "template": {"metadata": {"labels": {"a": "b"}}, "spec": {"containers": [{"name": "c", "image": "x"}]}}}}  # fmt: skip
    created = api.post("/apis/apps/v1/namespaces/gen/deployments", json=d).json()
    assert created["metadata"]["generation"] == 1
    patched = api.patch("/apis/apps/v1/namespaces/gen/deployments/d", content=json.dumps({"spec": {"replicas": 1}}),
                        headers={"Content-Type": "application/strategic-merge-patch+json"}).json()  # fmt: skip
    assert patched["metadata"]["generation"] == 2
    labelled = api.patch("/apis/apps/v1/namespaces/gen/deployments/d",
                         content=json.dumps({"metadata": {"labels": {"x": "y"}}}),
                         headers={"Content-Type": "application/merge-patch+json"}).json()  # fmt: skip
    assert labelled["metadata"]["generation"] == 2  # metadata changes do not bump generation
    scale = api.get("/apis/apps/v1/namespaces/gen/deployments/d/scale").json()
    assert scale["kind"] == "Scale" and scale["spec"]["replicas"] == 1
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        st = api.get("/apis/apps/v1/namespaces/gen/deployments/d").json().get("status", {})
        if st.get("observedGeneration") == 2 and st.get("availableReplicas") == 1:
            break
        time.sleep(0.05)
    assert st["observedGeneration"] == 2 and st["availableReplicas"] == 1


def test_watch_list_initial_events(api: httpx.Client) -> None:
    api.post("/api/v1/namespaces", json={"metadata": {"name": "wl"}})
    api.post("/api/v1/namespaces/wl/configmaps", json=cm("first", "wl"))
    url = "/api/v1/namespaces/wl/configmaps?watch=true&sendInitialEvents=true&allowWatchBookmarks=true"
    assert api.get(url).status_code == 422  # without resourceVersionMatch=NotOlderThan, as a real server says
    events = _watch_lines(api, url + "&resourceVersionMatch=NotOlderThan", 2)
    assert [e["type"] for e in events] == ["ADDED", "BOOKMARK"]
    assert events[1]["object"]["metadata"]["annotations"] == {"k8s.io/initial-events-end": "true"}


def test_field_validation_warn_and_logs(api: httpx.Client) -> None:
    body = cm("warned")
    body["bogus"] = True
    r = api.post("/api/v1/namespaces/default/configmaps?fieldValidation=Warn", json=body)
    assert r.status_code == 201 and r.headers["warning"] == '299 - "unknown field \\"bogus\\""'
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "talker", "annotations": {
        "sim.halyard.io/log": "hello\nworld"}}, "spec": {"containers": [{"name": "main", "image": "busybox"}]}}  # fmt: skip
    api.post("/api/v1/namespaces/default/pods", json=pod)
    deadline = time.monotonic() + 10
    while api.get("/api/v1/namespaces/default/pods/talker").json()["status"]["phase"] != "Running":
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.get("/api/v1/namespaces/default/pods/talker/log").text == "hello\nworld\n"
    with api.stream("GET", "/api/v1/namespaces/default/pods/talker/log?follow=true&tailLines=1") as r:
        lines = []
        for line in r.iter_lines():
            lines.append(line)
            if len(lines) == 2:
                break
    assert lines == ["world", "[main] heartbeat 3"]
    r = api.post("/api/v1/namespaces/default/pods/talker/exec?command=true&stdout=true")
    assert (r.status_code, r.json()["message"]) == (400, "Upgrade request required")  # a kubelet's words


def test_cli_prints_where_the_kubeconfigs_are(sim: Sim) -> None:
    log = (sim.data_dir.parent / f"{sim.data_dir.name}.log").read_text()
    for c in sim.clusters:
        assert f"export KUBECONFIG={c.kubeconfig}" in log
    assert c.kubeconfig.stat().st_mode & 0o077 == 0  # credentials: owner-only
