"""Arc data actions: how Kubernetes requests map to them (as Arc's guard does) and how roles grant them (as ARM)."""

import pytest

from halyard.controlplane.arm import rbac
from halyard.controlplane.arm.dataactions import Unmappable, non_resource_check, resource_check

pytestmark = pytest.mark.unit
CC = "Microsoft.Kubernetes/connectedClusters"
CLUSTER = "/subscriptions/s1/resourceGroups/A/providers/Microsoft.Kubernetes/connectedClusters/c"
NS_A = CLUSTER + "/namespaces/a"


@pytest.mark.parametrize(
    ("verb", "group", "resource", "subresource", "action"),
    [
        ("get", "", "pods", "", f"{CC}/pods/read"),
        ("list", "", "pods", "", f"{CC}/pods/read"),
        ("watch", "", "pods", "", f"{CC}/pods/read"),
        ("create", "apps", "deployments", "", f"{CC}/apps/deployments/write"),
        ("update", "apps", "deployments", "", f"{CC}/apps/deployments/write"),
        ("patch", "apps", "deployments", "scale", f"{CC}/apps/deployments/write"),
        ("delete", "", "secrets", "", f"{CC}/secrets/delete"),
        ("deletecollection", "batch", "jobs", "", f"{CC}/batch/jobs/delete"),
        ("create", "", "pods", "exec", f"{CC}/pods/exec/action"),
        ("get", "", "pods", "exec", f"{CC}/pods/exec/action"),
        ("get", "", "pods", "log", f"{CC}/pods/read"),
        ("bind", "rbac.authorization.k8s.io", "roles", "", f"{CC}/rbac.authorization.k8s.io/roles/bind/action"),
        (
            "escalate",
            "rbac.authorization.k8s.io",
            "clusterroles",
            "",
            f"{CC}/rbac.authorization.k8s.io/clusterroles/escalate/action",
        ),
        ("impersonate", "", "users", "", f"{CC}/users/impersonate/action"),
        ("use", "policy", "podsecuritypolicies", "", f"{CC}/policy/podsecuritypolicies/use/action"),
        ("proxy", "", "services", "", f"{CC}/services"),  # guard's getActionName('proxy') is '': no verb part
    ],
)
def test_resource_requests_map_as_guard_does(
    verb: str, group: str, resource: str, subresource: str, action: str
) -> None:
    check = resource_check(CLUSTER, namespace="a", verb=verb, group=group, resource=resource, subresource=subresource)
    assert (check.data_action, check.scope) == (action, NS_A)


def test_cluster_scoped_resources_are_checked_at_the_cluster() -> None:
    check = resource_check(CLUSTER, namespace="", verb="list", group="", resource="nodes")
    assert (check.data_action, check.scope) == (f"{CC}/nodes/read", CLUSTER)


@pytest.mark.parametrize(
    ("path", "verb", "action"),
    [
        ("/healthz", "get", f"{CC}/healthz/read"),
        ("/api/v1", "get", f"{CC}/api/v1/read"),
        ("/metrics/", "get", f"{CC}/metrics/read"),
        ("/logs", "post", f"{CC}/logs"),
    ],
)
def test_non_resource_paths(path: str, verb: str, action: str) -> None:
    check = non_resource_check(CLUSTER, path=path, verb=verb)
    assert (check.data_action, check.scope) == (action, CLUSTER)


@pytest.mark.parametrize(
    "attributes",
    [
        {"verb": "*", "resource": "pods"},
        {"verb": "get", "resource": "*"},
        {"verb": "get", "group": "*", "resource": "pods"},
        {"verb": "get", "resource": ""},
        {"verb": "get", "resource": "pods/../secrets"},
        {"verb": "get", "group": "..", "resource": "pods"},
        {"verb": "get", "resource": "pods", "namespace": "a/../../b"},
        {"verb": "get", "resource": "pods", "namespace": "A"},
    ],
)
def test_unmappable_resource_requests(attributes: dict[str, str]) -> None:
    with pytest.raises(Unmappable):
        resource_check(CLUSTER, **{"namespace": "a", "group": "", **attributes})


@pytest.mark.parametrize("path", ["healthz", "/../../../x", "/api/./v1"])
def test_unmappable_paths(path: str) -> None:
    with pytest.raises(Unmappable):
        non_resource_check(CLUSTER, path=path, verb="get")


def test_arc_roles_are_azures() -> None:
    # Ids and names as Azure's built-in roles list them (containers.md); the data actions' counts there.
    assert {r.name: (r.id, len(r.data_actions)) for r in rbac.BUILTIN_ROLES if r.name.startswith("Azure Arc")} == {
        "Azure Arc Kubernetes Viewer": ("63f0a09d-1495-4db4-a681-037d84835eb4", 29),
        "Azure Arc Kubernetes Writer": ("5b999177-9696-4545-85c7-50de3797e5a1", 30),
        "Azure Arc Kubernetes Admin": ("dffb1e0c-446f-4dde-a09f-99eb5cc68b96", 33),
        "Azure Arc Kubernetes Cluster Admin": ("8393591c-06b9-48a2-a542-1bd6b377f6a2", 1),
        "Azure Arc Enabled Kubernetes Cluster User Role": ("00493d72-78f6-4148-b6c5-d3ce8e4799dd", 0),
    }


@pytest.mark.parametrize(
    ("role", "data_action", "expected"),
    [
        (rbac.ARC_VIEWER, f"{CC}/pods/read", True),
        (rbac.ARC_VIEWER, f"{CC}/secrets/read", False),
        (rbac.ARC_VIEWER, f"{CC}/pods/delete", False),
        (rbac.ARC_WRITER, f"{CC}/apps/deployments/write", True),
        (rbac.ARC_WRITER, f"{CC}/pods/exec/action", True),
        (rbac.ARC_WRITER, f"{CC}/rbac.authorization.k8s.io/roles/write", False),
        (rbac.ARC_ADMIN, f"{CC}/rbac.authorization.k8s.io/rolebindings/write", True),
        (rbac.ARC_ADMIN, f"{CC}/namespaces/delete", False),
        (rbac.ARC_CLUSTER_ADMIN, f"{CC}/namespaces/delete", True),
        (rbac.ARC_CLUSTER_ADMIN, f"{CC}/healthz/read", True),
        (rbac.ARC_CLUSTER_ADMIN, "Microsoft.KubernetesConfiguration/extensions/read", False),
        # A role's actions never grant data actions: Owner's '*' reads no pod.
        (rbac.OWNER, f"{CC}/pods/read", False),
        (rbac.CONTRIBUTOR, f"{CC}/pods/read", False),
    ],
)
def test_roles_grant_data_actions(role: rbac.Role, data_action: str, expected: bool) -> None:
    assert rbac.role_permits_data(role, data_action) is expected


def test_data_actions_do_not_grant_actions() -> None:
    assert not rbac.role_permits(rbac.ARC_CLUSTER_ADMIN, "Microsoft.Kubernetes/connectedClusters/delete")
    assert not rbac.is_allowed([rbac.Assignment(CLUSTER, rbac.ARC_CLUSTER_ADMIN)], f"{CC}/pods/read", CLUSTER)


def test_not_data_actions_subtract() -> None:
    role = rbac.Role("x", "custom", "", (), data_actions=(f"{CC}/*",), not_data_actions=(f"{CC}/secrets/*",))
    assert rbac.role_permits_data(role, f"{CC}/pods/read")
    assert not rbac.role_permits_data(role, f"{CC}/secrets/read")
    assert not rbac.role_permits_data(role, f"{CC.upper()}/SECRETS/read")  # compared case-insensitively


def test_namespace_scope_inherits_like_any_scope() -> None:
    at_ns = [rbac.Assignment(NS_A, rbac.ARC_VIEWER)]
    at_cluster = [rbac.Assignment(CLUSTER, rbac.ARC_VIEWER)]
    at_group = [rbac.Assignment("/subscriptions/s1/resourceGroups/A", rbac.ARC_VIEWER)]
    pods = f"{CC}/pods/read"
    assert rbac.data_action_grant(at_ns, pods, NS_A) is not None
    assert rbac.data_action_grant(at_ns, pods, CLUSTER + "/namespaces/b") is None
    assert rbac.data_action_grant(at_ns, pods, CLUSTER + "/namespaces/ab") is None  # a prefix is not a parent
    assert rbac.data_action_grant(at_ns, f"{CC}/nodes/read", CLUSTER) is None  # cluster scope is above it
    assert rbac.data_action_grant(at_cluster, pods, CLUSTER + "/namespaces/b") is not None
    assert rbac.data_action_grant(at_group, pods, NS_A.upper()) is not None


def test_namespace_scope_is_a_canonical_scope() -> None:
    assert rbac.canonical_scope(NS_A.replace("resourceGroups", "resourcegroups")) == NS_A
