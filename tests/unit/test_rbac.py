import pytest

from halyard.controlplane.arm import rbac
from halyard.controlplane.arm.rbac import canonical_scope

pytestmark = pytest.mark.unit
SUB = "/subscriptions/s1"
RG_A = "/subscriptions/s1/resourceGroups/A"
CLUSTER = "/subscriptions/s1/resourceGroups/A/providers/Microsoft.Kubernetes/connectedClusters/c"


@pytest.mark.parametrize(
    ("pattern", "action", "expected"),
    [
        ("*", "Microsoft.Kubernetes/connectedClusters/write", True),
        ("*/read", "Microsoft.Kubernetes/connectedClusters/read", True),
        ("*/read", "Microsoft.Kubernetes/connectedClusters/write", False),
        ("Microsoft.Kubernetes/connectedClusters/*", "microsoft.kubernetes/CONNECTEDCLUSTERS/delete", True),
        ("Microsoft.Kubernetes/connectedClusters/*", "Microsoft.KubernetesConfiguration/extensions/write", False),
        ("Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", True),
        ("a.b/c", "a.b/c/d", False),
        ("a.b/c", "a?b/c", False),
    ],
)
def test_action_patterns(pattern: str, action: str, expected: bool) -> None:
    assert rbac.action_matches(pattern, action) is expected


def test_builtin_roles() -> None:
    assert rbac.role_permits(rbac.OWNER, "Microsoft.Authorization/roleAssignments/write")
    assert not rbac.role_permits(rbac.CONTRIBUTOR, "Microsoft.Authorization/roleAssignments/write")
    assert rbac.role_permits(rbac.CONTRIBUTOR, "Microsoft.Kubernetes/connectedClusters/delete")
    assert rbac.role_permits(rbac.READER, "Microsoft.Kubernetes/connectedClusters/read")
    assert not rbac.role_permits(rbac.READER, "Microsoft.Kubernetes/connectedClusters/write")
    assert rbac.role_permits(rbac.ONBOARDING, "Microsoft.Kubernetes/connectedClusters/write")
    assert not rbac.role_permits(rbac.ONBOARDING, "Microsoft.Kubernetes/connectedClusters/delete")


@pytest.mark.parametrize(
    ("assigned", "target", "expected"),
    [
        ("/", CLUSTER, True),
        (SUB, CLUSTER, True),
        (RG_A, CLUSTER, True),
        (RG_A.lower(), CLUSTER, True),
        (RG_A, "/subscriptions/s1/resourceGroups/AB", False),
        (RG_A, SUB, False),
        (CLUSTER, RG_A, False),
    ],
)
def test_scope_inheritance_flows_downward_only(assigned: str, target: str, expected: bool) -> None:
    assert rbac.scope_covers(assigned, target) is expected


def test_is_allowed_combines_scope_and_role() -> None:
    assignments = [rbac.Assignment(RG_A, rbac.CONTRIBUTOR), rbac.Assignment(SUB, rbac.READER)]
    assert rbac.is_allowed(assignments, "Microsoft.Kubernetes/connectedClusters/write", CLUSTER)
    assert not rbac.is_allowed(
        assignments, "Microsoft.Kubernetes/connectedClusters/write", "/subscriptions/s1/resourceGroups/B/x"
    )
    assert rbac.is_allowed(
        assignments, "Microsoft.Kubernetes/connectedClusters/read", "/subscriptions/s1/resourceGroups/B/x"
    )
    assert rbac.allowed_at_or_below([rbac.Assignment(RG_A, rbac.READER)], "Microsoft.Resources/subscriptions/read", SUB)
    assert not rbac.is_allowed([rbac.Assignment(RG_A, rbac.READER)], "Microsoft.Resources/subscriptions/read", SUB)


@pytest.mark.parametrize(
    ("scope", "canonical"),
    [
        ("", "/"),
        ("/", "/"),
        ("SUBSCRIPTIONS/s1/", "/subscriptions/s1"),
        ("/subscriptions/s1/resourcegroups/RG1", "/subscriptions/s1/resourceGroups/RG1"),
        ("/subscriptions/s1/resourceGroups/g/PROVIDERS/Ns/t/n", "/subscriptions/s1/resourceGroups/g/providers/Ns/t/n"),
        (
            "/subscriptions/s1/resourceGroups/g/providers/Ns/t/n/c/m",
            "/subscriptions/s1/resourceGroups/g/providers/Ns/t/n/c/m",
        ),
        ("/subscriptions/s1/providers/Ns/t/n", "/subscriptions/s1/providers/Ns/t/n"),
    ],
)
def test_canonical_scope_spells_arms_literals(scope: str, canonical: str) -> None:
    assert canonical_scope(scope) == canonical


@pytest.mark.parametrize(
    "scope",
    [
        "/subscriptions/s1/resourceGroups/rg1/../rg2",
        "/subscriptions/s1/resourceGroups/RG1/x",
        "/subscriptions/s1//resourceGroups/g",
        "/subscriptions/./resourceGroups/g",
        "/subscriptions",
        "/tenants/t1",
        "/subscriptions/s1/resourceGroups/g/providers/Ns/t",
        "/subscriptions/s1/resourceGroups/g/notproviders/Ns/t/n",
    ],
)
def test_canonical_scope_refuses_what_only_looks_like_a_scope(scope: str) -> None:
    with pytest.raises(ValueError):
        canonical_scope(scope)
