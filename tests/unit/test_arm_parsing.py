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


def test_only_a_matched_routes_literal_positions_are_respelled() -> None:
    cluster = "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Kubernetes/connectedClusters/{n}"
    routes = [
        "/subscriptions/{s}/resourcegroups/{g}",
        f"{cluster}/providers/Microsoft.HybridCompute/settings/default",
        cluster + "/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/{f}",
        "/dp/v1/fluxconfigurations",
    ]
    m = CanonicalPathMiddleware(app=None, route_paths=routes)  # type: ignore[arg-type]
    # A name spelled like another route's literal keeps the caller's casing (ARM preserves a name's casing).
    assert m.canonical("/SUBSCRIPTIONS/s/resourceGroups/Default") == "/subscriptions/s/resourcegroups/Default"
    flux = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c/providers/"
    flux += "Microsoft.KubernetesConfiguration/fluxConfigurations/Settings"
    assert m.canonical(flux.lower().replace("/settings", "/Settings")) == flux  # not the agents' spelling
    assert m.canonical("/DP/V1/FluxConfigurations") == "/dp/v1/fluxconfigurations"
    # Paths no route declares (the relay's kubectl paths, the portal) are not touched, doubled slashes included.
    assert m.canonical("/relay/v1/c//api/v1/namespaces/Default/pods") == "/relay/v1/c//api/v1/namespaces/Default/pods"


def test_a_scope_is_respelled_as_the_resource_it_names() -> None:
    routes = [
        "/subscriptions/{s}/resourceGroups/{g}/providers/Microsoft.Kubernetes/connectedClusters/{n}",
        "/{scope}/providers/Microsoft.Authorization/roleAssignments",
    ]
    m = CanonicalPathMiddleware(app=None, route_paths=routes)  # type: ignore[arg-type]
    cluster = "/subscriptions/s/resourceGroups/Providers/providers/Microsoft.Kubernetes/connectedClusters/c"
    listing = cluster + "/providers/Microsoft.Authorization/roleAssignments"
    assert m.canonical(listing.lower().replace("/providers/providers", "/Providers/providers")) == listing


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


CLUSTER = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/c"


@pytest.mark.parametrize(
    ("text", "subscription", "group", "full_type", "name", "parent"),
    [
        (CLUSTER, "s", "g", "Microsoft.Kubernetes/connectedClusters", "c", None),
        (
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.HybridCompute/privateLinkScopes/p"
            "/privateEndpointConnections/e",
            "s",
            "g",
            "Microsoft.HybridCompute/privateLinkScopes/privateEndpointConnections",
            "e",
            "/subscriptions/s/resourceGroups/g/providers/Microsoft.HybridCompute/privateLinkScopes/p",
        ),
        (
            CLUSTER + "/providers/Microsoft.KubernetesConfiguration/extensions/flux",
            "s",
            "g",
            "Microsoft.KubernetesConfiguration/extensions",
            "flux",
            CLUSTER,
        ),
        (
            CLUSTER + "/providers/Microsoft.HybridCompute/settings/default",
            "s",
            "g",
            "Microsoft.HybridCompute/settings",
            "default",
            CLUSTER,
        ),
        ("/subscriptions/s/providers/Halyard.T/things/t", "s", None, "Halyard.T/things", "t", None),
        ("/providers/Halyard.T/things/t", None, None, "Halyard.T/things", "t", None),
        # A resource may be named 'providers': the id's own part starts at the last 'providers' that fits.
        (
            "/subscriptions/s/resourceGroups/g/providers/Halyard.T/things/providers",
            "s",
            "g",
            "Halyard.T/things",
            "providers",
            None,
        ),
    ],
)
def test_resource_ids_of_every_placement_parse_and_round_trip(
    text: str, subscription: str | None, group: str | None, full_type: str, name: str, parent: str | None
) -> None:
    rid = ResourceId.parse(text)
    assert (rid.subscription_id, rid.resource_group, rid.full_type, rid.name) == (subscription, group, full_type, name)
    assert str(rid) == text and ResourceId.parse(str(rid)) == rid
    assert (str(rid.parent) if rid.parent else None) == parent


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "/subscriptions/s",
        "/subscriptions/s/resourceGroups/g/providers/NS/t",  # a type without a name
        "/subscriptions/s/resourceGroups/g/providers/NS/t/n/x",  # a child type without a name
        "/tenants/t/providers/NS/t/n",  # not a scope ARM knows
        "/subscriptions/s/resourceGroups/g/extra/providers/NS/t/n",
    ],
)
def test_malformed_resource_ids_are_refused(bad: str) -> None:
    with pytest.raises(InvalidRequest) as refused:
        ResourceId.parse(bad)
    assert refused.value.code == "InvalidResourceId"


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
