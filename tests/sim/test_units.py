"""The simulator's pure parts: selectors, patches, field ownership, protobuf, discovery, RBAC, store, tables."""

from __future__ import annotations

import base64
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from halyard.sim import discovery, fieldmanager, openapi, patching, protobuf, tables
from halyard.sim.controllers import pullable, registry_host
from halyard.sim.errors import ApiError
from halyard.sim.rbac import Attributes, RbacObjects, UserInfo, authorize
from halyard.sim.resources import BUILTIN
from halyard.sim.selectors import fields_match, labels_match, parse_field_selector, parse_label_selector
from halyard.sim.store import ObjectStore, Watcher

pytestmark = pytest.mark.unit


def obj(name: str, labels: dict[str, str] | None = None, **extra: Any) -> dict[str, Any]:
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels or {}}, **extra}


# ---- selectors
@pytest.mark.parametrize(
    ("selector", "labels", "expected"),
    [
        ("app=web", {"app": "web"}, True),
        ("app==web", {"app": "db"}, False),
        ("app!=web", {}, True),
        ("app in (web, db),tier", {"app": "db", "tier": "x"}, True),
        ("app notin (web)", {"app": "web"}, False),
        ("!canary", {"canary": "1"}, False),
        ("", {"any": "thing"}, True),
    ],
)
def test_label_selectors(selector: str, labels: dict[str, str], expected: bool) -> None:
    assert labels_match(parse_label_selector(selector), obj("x", labels)) is expected


def test_bad_label_selector_is_a_400() -> None:
    with pytest.raises(ApiError) as e:
        parse_label_selector("a b c")
    assert e.value.code == 400


def test_field_selectors() -> None:
    pod = obj("p", spec={"nodeName": "n1"}, status={"phase": "Running"})
    assert fields_match(parse_field_selector("metadata.name=p,spec.nodeName==n1"), pod)
    assert not fields_match(parse_field_selector("status.phase!=Running"), pod)


# ---- patches
def test_strategic_merge_as_kubectl_sends_it() -> None:
    live = {"spec": {"template": {"spec": {"containers": [
        {"name": "nginx", "image": "nginx:1.25", "ports": [{"containerPort": 80}]},
        {"name": "sidecar", "image": "busybox"}]}}}}  # fmt: skip
    patch = {"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "nginx"}],
        "containers": [{"env": [{"name": "A", "value": "1"}], "image": "nginx:1.26", "name": "nginx"}]}}}}  # fmt: skip
    out = patching.strategic_merge(live, patch)
    containers = out["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["sidecar", "nginx"]
    assert containers[1] == {"name": "nginx", "image": "nginx:1.26", "ports": [{"containerPort": 80}],
                             "env": [{"name": "A", "value": "1"}]}  # fmt: skip


def test_strategic_merge_delete_directives_as_helm_sends_them() -> None:
    live = {"spec": {"ports": [{"port": 80, "targetPort": 8080}], "selector": {"app": "x", "old": "y"}}}
    patch = {"spec": {"$setElementOrder/ports": [{"port": 81}],
                      "ports": [{"port": 81, "targetPort": 8080}, {"$patch": "delete", "port": 80}],
                      "selector": {"old": None}}}  # fmt: skip
    out = patching.strategic_merge(live, patch)
    assert out == {"spec": {"ports": [{"port": 81, "targetPort": 8080}], "selector": {"app": "x"}}}


def test_strategic_merge_replace_and_unkeyed_lists() -> None:
    live = {"a": {"x": 1, "y": 2}, "args": ["1", "2"], "metadata": {"finalizers": ["a"]}}
    out = patching.strategic_merge(live, {"a": {"$patch": "replace", "z": 3}, "args": ["3"],
                                          "metadata": {"finalizers": ["b"]}})  # fmt: skip
    assert out == {"a": {"z": 3}, "args": ["3"], "metadata": {"finalizers": ["a", "b"]}}


def test_merge_and_json_patch() -> None:
    assert patching.merge_patch({"a": {"b": 1, "c": 2}}, {"a": {"b": None, "d": 3}}) == {"a": {"c": 2, "d": 3}}
    assert patching.json_patch({"a": [1]}, [{"op": "add", "path": "/a/-", "value": 2}]) == {"a": [1, 2]}
    with pytest.raises(ApiError) as e:
        patching.json_patch({"a": 1}, [{"op": "test", "path": "/a", "value": 2}])
    assert e.value.code == 422


# ---- server-side apply
def _apply(live: dict[str, Any] | None, config: dict[str, Any], manager: str, force: bool = False) -> dict[str, Any]:
    return fieldmanager.apply(live, config, manager, force=force, api_version="v1", now="2026-01-01T00:00:00Z")


def test_apply_conflict_force_and_shared_ownership() -> None:
    alice = _apply(None, {"metadata": {"name": "c"}, "data": {"color": "red", "size": "1"}}, "alice")
    # Same value: bob becomes a co-owner, no conflict.
    both = _apply(alice, {"metadata": {"name": "c"}, "data": {"size": "1"}}, "bob")
    with pytest.raises(ApiError) as e:
        _apply(both, {"metadata": {"name": "c"}, "data": {"color": "green"}}, "bob")
    assert e.value.code == 409
    assert e.value.message == 'Apply failed with 1 conflict: conflict with "alice": .data.color'
    assert e.value.details == {"causes": [{"reason": "FieldManagerConflict", "message": 'conflict with "alice"',
                                           "field": ".data.color"}]}  # fmt: skip
    forced = _apply(both, {"metadata": {"name": "c"}, "data": {"color": "green", "size": "1"}}, "bob", force=True)
    owners = {m["manager"]: m["fieldsV1"] for m in forced["metadata"]["managedFields"]}
    assert owners["bob"] == {"f:data": {"f:color": {}, "f:size": {}}}
    assert owners["alice"] == {"f:data": {"f:size": {}}}


def test_apply_removes_fields_the_manager_stopped_applying() -> None:
    first = _apply(None, {"metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}}, "m")
    second = _apply(first, {"metadata": {"name": "c"}, "data": {"a": "1"}}, "m")
    assert second["data"] == {"a": "1"}


def test_apply_keyed_lists() -> None:
    live = _apply(None, {"spec": {"containers": [{"name": "a", "image": "x"}]}}, "one")
    both = _apply(live, {"spec": {"containers": [{"name": "b", "image": "y"}]}}, "two")
    assert [c["name"] for c in both["spec"]["containers"]] == ["a", "b"]
    two = next(m for m in both["metadata"]["managedFields"] if m["manager"] == "two")
    assert two["fieldsV1"] == {"f:spec": {"f:containers": {'k:{"name":"b"}': {".": {}, "f:image": {}, "f:name": {}}}}}
    assert fieldmanager.display_path(("f:spec", "f:containers", 'k:{"name":"b"}', "f:image")) == (
        '.spec.containers[name="b"].image'
    )


def test_update_takes_ownership_of_changed_fields() -> None:
    old = _apply(None, {"data": {"a": "1"}}, "applier")
    new = json.loads(json.dumps(old))
    new["data"]["a"] = "2"
    fieldmanager.record_update(old, new, "editor", api_version="v1", now="t")
    owners = {m["manager"]: m["fieldsV1"] for m in new["metadata"]["managedFields"]}
    assert owners == {"editor": {"f:data": {"f:a": {}}}}


# ---- protobuf: hand-encoded bytes, as client-go writes them
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw) + _field(3, b"") + _field(4, b"")


def test_protobuf_secret_as_helm_sends_it() -> None:
    meta = (_field(1, b"sh.helm.release.v1.demo.v1") + _field(2, b"") + _field(3, b"hdemo")
            + _field(8, b"")  # zero creationTimestamp: null in JSON
            + _field(11, _field(1, b"owner") + _field(2, b"helm")) + _field(11, _field(1, b"version") + _field(2, b"1")))  # fmt: skip
    secret = (_field(1, meta) + _field(2, _field(1, b"release") + _field(2, b"\x00\xffdata"))
              + _field(3, b"helm.sh/release.v1") + _field(5, 0))  # fmt: skip
    body = _envelope("v1", "Secret", secret)
    assert body[:4] == b"k8s\x00"
    assert protobuf.decode(body) == {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sh.helm.release.v1.demo.v1", "namespace": "hdemo",
                     "labels": {"owner": "helm", "version": "1"}},
        "data": {"release": base64.b64encode(b"\x00\xffdata").decode()},
        "type": "helm.sh/release.v1",
        "immutable": False,
    }  # fmt: skip


def test_protobuf_self_subject_access_review_and_deployment() -> None:
    attrs = _field(1, b"default") + _field(2, b"create") + _field(3, b"") + _field(5, b"pods")
    ssar = _field(1, b"") + _field(2, _field(1, attrs))
    decoded = protobuf.decode(_envelope("authorization.k8s.io/v1", "SelfSubjectAccessReview", ssar))
    assert decoded["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}
    port = _field(3, 80) + _field(4, _field(1, 1) + _field(3, b"http"))  # targetPort: IntOrString{type: String}
    container = _field(1, b"web") + _field(2, b"nginx")
    pod_spec = _field(2, container)
    template = _field(1, _field(11, _field(1, b"app") + _field(2, b"web"))) + _field(2, pod_spec)
    spec = _field(1, 0) + _field(3, template)  # replicas: 0 is kept, it is a pointer in Go
    deploy = protobuf.decode(_envelope("apps/v1", "Deployment", _field(1, _field(1, b"web")) + _field(2, spec)))
    assert deploy["spec"] == {"replicas": 0, "template": {"metadata": {"labels": {"app": "web"}},
                                                         "spec": {"containers": [{"name": "web", "image": "nginx"}]}}}  # fmt: skip
    svc_port = protobuf.decode_message("k8s.io.api.core.v1.ServicePort", port)
    assert svc_port == {"port": 80, "targetPort": "http"}


def test_protobuf_unknown_kind_is_a_415() -> None:
    with pytest.raises(ApiError) as e:
        protobuf.decode(_envelope("example.com/v1", "Gadget", b""))
    assert (e.value.code, e.value.reason) == (415, "UnsupportedMediaType")


# ---- discovery
def test_aggregated_discovery_negotiation_and_shape() -> None:
    v2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json"
    v2beta1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json"
    assert discovery.negotiate_aggregated(v2) == discovery.AGG_V2
    assert discovery.negotiate_aggregated(v2beta1) == discovery.AGG_V2BETA1
    assert discovery.negotiate_aggregated("application/json, */*") is None
    doc = discovery.aggregated(BUILTIN, core=False, content_type=discovery.AGG_V2BETA1)
    assert doc["apiVersion"] == "apidiscovery.k8s.io/v2beta1"
    apps = next(g for g in doc["items"] if g["metadata"]["name"] == "apps")
    deploy = next(r for r in apps["versions"][0]["resources"] if r["resource"] == "deployments")
    assert deploy["shortNames"] == ["deploy"] and deploy["categories"] == ["all"]
    assert deploy["scope"] == "Namespaced" and deploy["singularResource"] == "deployment"
    assert {s["subresource"] for s in deploy["subresources"]} == {"status", "scale"}
    core = discovery.aggregated(BUILTIN, core=True, content_type=discovery.AGG_V2)
    assert [g["metadata"]["name"] for g in core["items"]] == [""]
    plain = discovery.resource_list(BUILTIN, "apps", "v1")
    assert plain is not None and "deployments/scale" in [r["name"] for r in plain["resources"]]


# ---- RBAC
def _rbac(roles: list[dict[str, Any]], bindings: list[dict[str, Any]]) -> RbacObjects:
    return RbacObjects(
        cluster_roles=lambda n: None,
        roles=lambda ns, n: next((r for r in roles if r["metadata"]["name"] == n), None),
        cluster_role_bindings=lambda: [],
        role_bindings=lambda ns: [b for b in bindings if b["metadata"]["namespace"] == ns],
    )


def test_rbac_roles_bindings_and_masters() -> None:
    role = {"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods", "pods/log"],
                                                   "verbs": ["get"], "resourceNames": ["p1"]}]}  # fmt: skip
    binding = {"metadata": {"name": "b", "namespace": "ns"}, "roleRef": {"kind": "Role", "name": "r"},
               "subjects": [{"kind": "Group", "name": "devs"}]}  # fmt: skip
    objs = _rbac([role], [binding])
    dev = UserInfo("ann", ("devs",))
    assert authorize(dev, Attributes("get", "", "pods", namespace="ns", name="p1"), objs)[0]
    assert authorize(dev, Attributes("get", "", "pods", "log", namespace="ns", name="p1"), objs)[0]
    assert not authorize(dev, Attributes("get", "", "pods", namespace="ns", name="p2"), objs)[0]
    assert not authorize(dev, Attributes("get", "", "pods", namespace="other", name="p1"), objs)[0]
    assert not authorize(UserInfo("bob"), Attributes("get", "", "pods", namespace="ns", name="p1"), objs)[0]
    assert authorize(UserInfo("root", ("system:masters",)), Attributes("delete", "apps", "deployments"), objs)[0]


# ---- store and watch
def test_store_watch_filtering_and_expiry() -> None:
    store = ObjectStore(history=3)
    seen: list[tuple[str, str]] = []
    w = Watcher("/configmaps", "ns", lambda o: o["metadata"]["labels"].get("w") == "1",
                lambda e: seen.append((e.type, e.obj["metadata"]["name"])))  # fmt: skip
    store.add_watcher(w)
    store.put("/configmaps", obj("a", {"w": "1"}), "ADDED")
    store.put("/configmaps", obj("a", {"w": "0"}), "MODIFIED")  # leaves the selector: DELETED for this watcher
    store.put("/configmaps", obj("b", {"w": "0"}), "ADDED")
    store.put("/configmaps", obj("b", {"w": "1"}), "MODIFIED")  # enters the selector: ADDED
    assert seen == [("ADDED", "a"), ("DELETED", "a"), ("ADDED", "b")]
    assert [e.rv for e in store.events_since("/configmaps", 3)] == [4, 5]
    with pytest.raises(ApiError) as e:
        store.events_since("/configmaps", 1)
    assert (e.value.code, e.value.reason) == (410, "Expired")


def test_human_age() -> None:
    now = dt.datetime(2026, 1, 2, tzinfo=dt.UTC)
    assert tables.human_age("2026-01-01T23:58:44Z", now) == "76s"
    assert tables.human_age("2026-01-01T23:55:00Z", now) == "5m"
    assert tables.human_age("2026-01-01T20:00:00Z", now) == "4h"
    assert tables.human_age("2025-12-30T00:00:00Z", now) == "3d"


def test_protobuf_bodies_captured_from_real_clients() -> None:
    """Bodies recorded from helm 3.17.2 (release Secret) and kubectl 1.33 (can-i review, create deployment)."""
    data = Path(__file__).parent / "data" / "protobuf"
    secret = protobuf.decode((data / "Secret.pb").read_bytes())
    assert secret["metadata"]["name"] == "sh.helm.release.v1.demo.v1"
    assert secret["metadata"]["labels"] == {"createdAt": "1795318035", "name": "demo", "owner": "helm",
                                            "status": "pending-install", "version": "1"}  # fmt: skip
    assert secret["type"] == "helm.sh/release.v1"
    assert base64.b64decode(base64.b64decode(secret["data"]["release"]))[:2] == b"\x1f\x8b"  # helm's gzip
    review = protobuf.decode((data / "SelfSubjectAccessReview.pb").read_bytes())
    assert review["spec"] == {"resourceAttributes": {"namespace": "default", "verb": "create", "resource": "pods"}}
    deploy = protobuf.decode((data / "Deployment.pb").read_bytes())
    assert (deploy["apiVersion"], deploy["kind"], deploy["metadata"]) == (
        "apps/v1",
        "Deployment",
        {"name": "web", "labels": {"app": "web"}},
    )
    assert deploy["spec"]["replicas"] == 2 and deploy["spec"]["selector"] == {"matchLabels": {"app": "web"}}
    assert deploy["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.25"


def test_openapi_documents() -> None:
    body, digest = openapi.builtin_document("apps", "v1", "v1.31.2")
    doc = json.loads(body)
    patch = doc["paths"]["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]  # kubectl looks for it on `patch`
    deployment = doc["components"]["schemas"]["io.k8s.api.apps.v1.Deployment"]
    assert deployment["x-kubernetes-group-version-kind"] == [{"group": "apps", "kind": "Deployment", "version": "v1"}]
    spec = doc["components"]["schemas"]["io.k8s.api.apps.v1.DeploymentSpec"]
    assert "Number of desired pods" in spec["properties"]["replicas"]["description"]
    pod_spec = doc["components"]["schemas"]["io.k8s.api.core.v1.PodSpec"]["properties"]
    assert pod_spec["containers"]["x-kubernetes-patch-merge-key"] == "name"
    root = openapi.root_document("/clusters/c1", {"apis/apps/v1": digest})
    assert root == {
        "paths": {"apis/apps/v1": {"serverRelativeURL": f"/clusters/c1/openapi/v3/apis/apps/v1?hash={digest}"}}
    }


def test_taints_and_tolerations() -> None:
    from halyard.sim.controllers import tolerates

    node = {"spec": {"taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"},
                                {"key": "soft", "effect": "PreferNoSchedule"}]}}  # fmt: skip
    assert not tolerates({"spec": {}}, node)
    assert tolerates({"spec": {"tolerations": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}, node)
    assert tolerates({"spec": {"tolerations": [{"operator": "Exists"}]}}, node)
    assert not tolerates({"spec": {"tolerations": [{"key": "dedicated", "value": "cpu"}]}}, node)


def test_spec_validation_causes() -> None:
    from halyard.sim.validation import validate

    assert validate("Pod", {"spec": {}}) == [("FieldValueRequired", "spec.containers", "Required value")]
    deploy = {"spec": {"template": {"spec": {"containers": [{"name": "Web"}, {"name": "x", "image": "i",
                                                                            "ports": [{"containerPort": 0}]}]}}}}  # fmt: skip
    fields = [(r, f) for r, f, _ in validate("Deployment", deploy)]
    assert fields == [("FieldValueInvalid", "spec.template.spec.containers[0].name"),
                      ("FieldValueRequired", "spec.template.spec.containers[0].image"),
                      ("FieldValueInvalid", "spec.template.spec.containers[1].ports[0].containerPort")]  # fmt: skip
    assert [f for _, f, _ in validate("Service", {"spec": {"ports": [{"port": 80}, {"port": 99999}]}})] == [
        "spec.ports[0].name", "spec.ports[1].port", "spec.ports[1].name"]  # fmt: skip
    assert validate("Service", {"spec": {"type": "ExternalName", "externalName": "example.com"}}) == []


@pytest.mark.parametrize(
    ("image", "registry", "pullable_"),
    [
        ("ghcr.io/halyard/halyard-agent:0.1.0", "ghcr.io", True),
        ("nginx:1.27", "docker.io", True),
        ("library/nginx", "docker.io", True),
        ("localhost/agent:1", "localhost", True),
        ("mirror.example:5000/halyard/agent:1", "mirror.example:5000", True),
        ("registry.invalid/halyard/halyard-agent:0.1.0", "registry.invalid", False),
        ("mirror.invalid:5000/agent", "mirror.invalid:5000", False),
    ],
)
def test_images_from_a_reserved_invalid_registry_cannot_be_pulled(image: str, registry: str, pullable_: bool) -> None:
    assert registry_host(image) == registry
    assert pullable(image) is pullable_
