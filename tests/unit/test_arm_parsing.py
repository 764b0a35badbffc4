import pytest

from halyard.controlplane.arm.apiversions import newest_stable_first
from halyard.controlplane.arm.filters import parse_filter
from halyard.controlplane.arm.paths import CanonicalPathMiddleware, ResourceId
from halyard.core.errors import InvalidRequest

pytestmark = pytest.mark.unit


def test_canonical_paths_fix_literal_case_and_slashes_but_keep_names() -> None:
    routes = ["/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Kubernetes/connectedClusters/{n}"]
    m = CanonicalPathMiddleware(app=None, route_paths=routes)  # type: ignore[arg-type]
    assert (
        m.canonical("//SUBSCRIPTIONS/S1/resourcegroups/MyRG/providers/microsoft.kubernetes/connectedclusters/MyC/")
        == "/subscriptions/S1/resourceGroups/MyRG/providers/Microsoft.Kubernetes/connectedClusters/MyC"
    )


def test_routes_at_any_scope_also_serve_the_tenant_root() -> None:
    routes = [
        "/{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
        "/providers/Microsoft.Kubernetes/operations",
    ]
    m = CanonicalPathMiddleware(app=None, route_paths=routes)  # type: ignore[arg-type]
    root = "//providers/Microsoft.Authorization/roleAssignments/a"  # what the route's scope pattern matches as "/"
    assert m.canonical("/providers/microsoft.authorization/roleassignments/a") == root
    assert m.canonical("//providers/Microsoft.Authorization/roleAssignments/a") == root  # the SDKs' scope "/"
    scoped = "/subscriptions/s/providers/Microsoft.Authorization/roleAssignments/a"
    assert m.canonical(scoped.lower().replace("/s/", "/S/")) == scoped.replace("/s/", "/S/")
    assert m.canonical("/providers/Microsoft.Kubernetes/operations") == "/providers/Microsoft.Kubernetes/operations"


def test_resource_ids_parse_and_round_trip() -> None:
    rid = ResourceId.parse("/subscriptions/s/resourcegroups/g/providers/Microsoft.Kubernetes/connectedClusters/c")
    assert (rid.subscription_id, rid.resource_group, rid.full_type, rid.name) == (
        "s",
        "g",
        "Microsoft.Kubernetes/connectedClusters",
        "c",
    )
    assert rid.key == str(rid).lower()
    with pytest.raises(InvalidRequest):
        ResourceId.parse("/subscriptions/s/resourceGroups/g")


def test_filter_parses_what_az_sends() -> None:
    f = parse_filter("resourceGroup eq 'rg1' and resourceType eq 'Microsoft.Kubernetes/connectedClusters'")
    assert f.matches(group="RG1", type_="microsoft.kubernetes/connectedclusters", name="c", location="eastus", tags={})
    assert not f.matches(group="rg2", type_="Microsoft.Kubernetes/connectedClusters", name="c", location=None, tags={})
    tag = parse_filter("tagName eq 'env' and tagValue eq 'prod'")
    assert tag.matches(group="g", type_="t", name="n", location=None, tags={"Env": "prod"})
    assert not tag.matches(group="g", type_="t", name="n", location=None, tags={"env": "dev"})
    assert parse_filter("substringof('ab', name)").matches(group="g", type_="t", name="xaby", location=None, tags={})
    assert parse_filter("name eq 'it''s'").name == "it's"
    assert parse_filter("").resource_group is None


@pytest.mark.parametrize("bad", ["resourceGroup ne 'x'", "foo eq 'x'", "tagValue eq 'v'", "name eq x", "1=1"])
def test_filter_refuses_what_it_does_not_understand(bad: str) -> None:
    with pytest.raises(InvalidRequest) as exc:
        parse_filter(bad)
    assert exc.value.code == "InvalidFilterInQueryString"


def test_api_versions_newest_stable_first() -> None:
    assert newest_stable_first(["2021-10-01", "2026-02-01-preview", "2026-05-01", "2024-01-01"]) == [
        "2026-05-01",
        "2024-01-01",
        "2021-10-01",
        "2026-02-01-preview",
    ]
