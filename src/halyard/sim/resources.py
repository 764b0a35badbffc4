"""The resource types a virtual cluster serves: the built-in table, and types made from CustomResourceDefinitions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

ALL_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")
CREATE_ONLY = ("create",)


@dataclass(frozen=True, slots=True)
class ResourceType:
    """One REST resource (``apps/v1 deployments``) and what discovery says about it."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = ALL_VERBS
    subresources: tuple[str, ...] = ()
    # The lightkube-models module holding the schema of the kind (``apps_v1``); empty for custom resources.
    model_module: str = ""
    # Objects stored in the cluster (False for review-style resources that only answer a POST).
    persisted: bool = True
    # Custom resources carry their CRD's schema and printer columns.
    crd: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def singular(self) -> str:
        return self.kind.lower()

    @property
    def group_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> str:
        """The storage key: objects of one group and resource share it whatever the version."""
        return f"{self.group}/{self.plural}"

    def collection_path(self, namespace: str | None) -> str:
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{namespace}/{self.plural}"
        return f"{base}/{self.plural}"


def _t(
    group: str,
    version: str,
    plural: str,
    kind: str,
    namespaced: bool,
    short: tuple[str, ...] = (),
    cats: tuple[str, ...] = (),
    subs: tuple[str, ...] = (),
    verbs: tuple[str, ...] = ALL_VERBS,
    persisted: bool = True,
) -> ResourceType:
    module = (group.split(".")[0] if group else "core") + "_" + version
    return ResourceType(group, version, plural, kind, namespaced, short, cats, verbs, subs, module, persisted)


_ALL = ("all",)
BUILTIN: tuple[ResourceType, ...] = (
    _t("", "v1", "namespaces", "Namespace", False, ("ns",), subs=("status", "finalize")),
    _t("", "v1", "nodes", "Node", False, ("no",), subs=("status",)),
    _t("", "v1", "configmaps", "ConfigMap", True, ("cm",)),
    _t("", "v1", "secrets", "Secret", True),
    _t("", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), subs=("token",)),
    _t("", "v1", "services", "Service", True, ("svc",), _ALL, ("status",)),
    _t("", "v1", "endpoints", "Endpoints", True, ("ep",)),
    _t("", "v1", "events", "Event", True, ("ev",)),
    _t("", "v1", "pods", "Pod", True, ("po",), _ALL, ("status", "log", "eviction")),
    _t("apps", "v1", "deployments", "Deployment", True, ("deploy",), _ALL, ("status", "scale")),
    _t("apps", "v1", "replicasets", "ReplicaSet", True, ("rs",), _ALL, ("status", "scale")),
    _t("apps", "v1", "daemonsets", "DaemonSet", True, ("ds",), _ALL, ("status",)),
    _t("apps", "v1", "statefulsets", "StatefulSet", True, ("sts",), _ALL, ("status", "scale")),
    _t("apps", "v1", "controllerrevisions", "ControllerRevision", True),
    _t("batch", "v1", "jobs", "Job", True, (), _ALL, ("status",)),
    _t("batch", "v1", "cronjobs", "CronJob", True, ("cj",), _ALL, ("status",)),
    _t("coordination.k8s.io", "v1", "leases", "Lease", True),
    _t("rbac.authorization.k8s.io", "v1", "roles", "Role", True),
    _t("rbac.authorization.k8s.io", "v1", "rolebindings", "RoleBinding", True),
    _t("rbac.authorization.k8s.io", "v1", "clusterroles", "ClusterRole", False),
    _t("rbac.authorization.k8s.io", "v1", "clusterrolebindings", "ClusterRoleBinding", False),
    _t(
        "apiextensions.k8s.io", "v1", "customresourcedefinitions", "CustomResourceDefinition", False,
        ("crd", "crds"), ("api-extensions",), ("status",),
    ),
    _t("authorization.k8s.io", "v1", "selfsubjectaccessreviews", "SelfSubjectAccessReview", False,
       verbs=CREATE_ONLY, persisted=False),
    _t("authorization.k8s.io", "v1", "subjectaccessreviews", "SubjectAccessReview", False,
       verbs=CREATE_ONLY, persisted=False),
    _t("authorization.k8s.io", "v1", "localsubjectaccessreviews", "LocalSubjectAccessReview", True,
       verbs=CREATE_ONLY, persisted=False),
    _t("authorization.k8s.io", "v1", "selfsubjectrulesreviews", "SelfSubjectRulesReview", False,
       verbs=CREATE_ONLY, persisted=False),
    _t("authentication.k8s.io", "v1", "tokenreviews", "TokenReview", False, verbs=CREATE_ONLY, persisted=False),
    _t("authentication.k8s.io", "v1", "selfsubjectreviews", "SelfSubjectReview", False,
       verbs=CREATE_ONLY, persisted=False),
    # The metrics API (kubectl top): computed from the pods and nodes, never stored, no OpenAPI schema.
    ResourceType("metrics.k8s.io", "v1beta1", "nodes", "NodeMetrics", False, verbs=("get", "list"),
                 persisted=False),
    ResourceType("metrics.k8s.io", "v1beta1", "pods", "PodMetrics", True, verbs=("get", "list"), persisted=False),
)  # fmt: skip

# Groups in the order discovery lists them (the order real servers use: core first, then by priority).
BUILTIN_GROUP_ORDER = (
    "",
    "apps",
    "batch",
    "coordination.k8s.io",
    "rbac.authorization.k8s.io",
    "apiextensions.k8s.io",
    "authorization.k8s.io",
    "authentication.k8s.io",
    "metrics.k8s.io",
)


def crd_types(crd: dict[str, Any]) -> list[ResourceType]:
    """The resource types a CustomResourceDefinition serves, one per served version (storage version first)."""
    spec = crd.get("spec") or {}
    names = spec.get("names") or {}
    versions = [v for v in spec.get("versions") or [] if v.get("served", True)]
    versions.sort(key=lambda v: not v.get("storage", False))
    out = []
    for v in versions:
        subs = tuple(s for s in ("status", "scale") if s in (v.get("subresources") or {}))
        out.append(
            ResourceType(
                group=spec.get("group", ""),
                version=v["name"],
                plural=names.get("plural", ""),
                kind=names.get("kind", ""),
                namespaced=spec.get("scope", "Namespaced") == "Namespaced",
                short_names=tuple(names.get("shortNames") or ()),
                categories=tuple(names.get("categories") or ()),
                subresources=subs,
                crd=crd,
            )
        )
    return out


class Registry:
    """Lookup of the built-in types plus one cluster's custom types. Built-ins are shared by every cluster."""

    _builtin_by_path: dict[tuple[str, str, str], ResourceType] = {(t.group, t.version, t.plural): t for t in BUILTIN}

    def __init__(self) -> None:
        self.custom: dict[tuple[str, str, str], ResourceType] = {}

    def lookup(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self._builtin_by_path.get((group, version, plural)) or self.custom.get((group, version, plural))

    def by_key(self, key: str) -> ResourceType | None:
        """Any version of the resource stored under ``group/plural``, preferring the first declared."""
        group, _, plural = key.partition("/")
        for t in self.all_types():
            if t.group == group and t.plural == plural:
                return t
        return None

    def by_kind(self, api_version: str, kind: str) -> ResourceType | None:
        group, _, version = api_version.rpartition("/")
        for t in self.all_types():
            if t.group == group and t.version == version and t.kind == kind:
                return t
        return None

    def all_types(self) -> list[ResourceType]:
        return [*BUILTIN, *self.custom.values()]

    def set_crd(self, crd: dict[str, Any]) -> None:
        self.remove_crd(crd["metadata"]["name"])
        established = any(
            c.get("type") == "Established" and c.get("status") == "True"
            for c in (crd.get("status") or {}).get("conditions") or []
        )
        if not established:
            return
        for t in crd_types(crd):
            self.custom[(t.group, t.version, t.plural)] = t

    def remove_crd(self, name: str) -> None:
        for k, t in list(self.custom.items()):
            if t.crd is not None and t.crd["metadata"]["name"] == name:
                del self.custom[k]
