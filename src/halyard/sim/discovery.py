"""Discovery documents (aggregated v2/v2beta1 and the plain forms), built from resource types. Free of I/O."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from halyard.sim.resources import BUILTIN_GROUP_ORDER, ResourceType

AGG_V2 = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
AGG_V2BETA1 = "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList"
_SUB_VERBS = {
    "status": ["get", "patch", "update"],
    "scale": ["get", "patch", "update"],
    "log": ["get"],
    "token": ["create"],
    "finalize": ["update"],
    "eviction": ["create"],
}
_SUB_KIND = {
    "scale": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
    "token": {"group": "authentication.k8s.io", "version": "v1", "kind": "TokenRequest"},
    "eviction": {"group": "policy", "version": "v1", "kind": "Eviction"},
}


def negotiate_aggregated(accept: str) -> str | None:
    """The aggregated discovery content type to answer with, in the client's order of preference, or None."""
    for media in accept.split(","):
        params = {}
        for part in media.split(";")[1:]:
            k, _, v = part.strip().partition("=")
            params[k] = v
        if params.get("g") == "apidiscovery.k8s.io" and params.get("as") == "APIGroupDiscoveryList":
            if params.get("v") == "v2":
                return AGG_V2
            if params.get("v") == "v2beta1":
                return AGG_V2BETA1
    return None


def ordered_groups(types: Iterable[ResourceType]) -> list[tuple[str, list[str], list[ResourceType]]]:
    """(group, versions in preference order, types) with built-in groups first, then custom groups by name."""
    groups: dict[str, list[ResourceType]] = {}
    for t in types:
        groups.setdefault(t.group, []).append(t)
    rank = {g: n for n, g in enumerate(BUILTIN_GROUP_ORDER)}
    out = []
    for g in sorted(groups, key=lambda g: (rank.get(g, len(rank)), g)):
        versions: list[str] = []
        for t in groups[g]:
            if t.version not in versions:
                versions.append(t.version)
        out.append((g, versions, groups[g]))
    return out


def _agg_resource(t: ResourceType) -> dict[str, Any]:
    r: dict[str, Any] = {
        "resource": t.plural,
        "responseKind": {"group": "", "version": "", "kind": t.kind},
        "scope": "Namespaced" if t.namespaced else "Cluster",
        "singularResource": t.singular,
        "verbs": list(t.verbs),
    }
    if t.short_names:
        r["shortNames"] = list(t.short_names)
    if t.categories:
        r["categories"] = list(t.categories)
    if t.subresources:
        r["subresources"] = [
            {
                "subresource": s,
                "responseKind": _SUB_KIND.get(s, {"group": "", "version": "", "kind": t.kind}),
                "verbs": _SUB_VERBS.get(s, ["get"]),
            }
            for s in t.subresources
        ]
    return r


def aggregated(types: Iterable[ResourceType], *, core: bool, content_type: str) -> dict[str, Any]:
    """``/api`` (core=True) or ``/apis`` as an APIGroupDiscoveryList."""
    version = "v2" if content_type == AGG_V2 else "v2beta1"
    items = []
    for group, versions, members in ordered_groups(types):
        if (group == "") != core:
            continue
        items.append(
            {
                "metadata": {"name": group, "creationTimestamp": None},
                "versions": [
                    {
                        "version": v,
                        "resources": [_agg_resource(t) for t in members if t.version == v],
                        "freshness": "Current",
                    }
                    for v in versions
                ],
            }
        )
    return {
        "kind": "APIGroupDiscoveryList",
        "apiVersion": f"apidiscovery.k8s.io/{version}",
        "metadata": {},
        "items": items,
    }


def api_versions() -> dict[str, Any]:
    return {
        "kind": "APIVersions",
        "versions": ["v1"],
        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1:6443"}],
    }


def _group_doc(group: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{group}/{v}", "version": v} for v in versions]
    return {"name": group, "versions": gvs, "preferredVersion": gvs[0]}


def api_group_list(types: Iterable[ResourceType]) -> dict[str, Any]:
    return {
        "kind": "APIGroupList",
        "apiVersion": "v1",
        "groups": [_group_doc(g, vs) for g, vs, _ in ordered_groups(types) if g],
    }


def api_group(types: Iterable[ResourceType], group: str) -> dict[str, Any] | None:
    for g, versions, _ in ordered_groups(types):
        if g == group:
            return {"kind": "APIGroup", "apiVersion": "v1", **_group_doc(g, versions)}
    return None


def resource_list(types: Iterable[ResourceType], group: str, version: str) -> dict[str, Any] | None:
    members = [t for t in types if t.group == group and t.version == version]
    if not members:
        return None
    resources: list[dict[str, Any]] = []
    for t in members:
        r: dict[str, Any] = {
            "name": t.plural,
            "singularName": t.singular,
            "namespaced": t.namespaced,
            "kind": t.kind,
            "verbs": list(t.verbs),
        }
        if t.short_names:
            r["shortNames"] = list(t.short_names)
        if t.categories:
            r["categories"] = list(t.categories)
        resources.append(r)
        for s in t.subresources:
            sub_kind = _SUB_KIND.get(s)
            entry: dict[str, Any] = {
                "name": f"{t.plural}/{s}",
                "singularName": "",
                "namespaced": t.namespaced,
                "kind": sub_kind["kind"] if sub_kind else t.kind,
                "verbs": _SUB_VERBS.get(s, ["get"]),
            }
            if sub_kind:
                entry["group"], entry["version"] = sub_kind["group"], sub_kind["version"]
            resources.append(entry)
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": resources,
    }
