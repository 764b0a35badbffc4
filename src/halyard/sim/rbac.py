"""RBAC authorization, evaluated from a cluster's Roles, ClusterRoles and bindings. Free of I/O."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MASTERS = "system:masters"


@dataclass(frozen=True, slots=True)
class UserInfo:
    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: dict[str, list[str]] = field(default_factory=dict, compare=False, hash=False)

    def as_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {"username": self.name, "groups": list(self.groups)}
        if self.uid:
            out["uid"] = self.uid
        if self.extra:
            out["extra"] = self.extra
        return out


@dataclass(frozen=True, slots=True)
class Attributes:
    verb: str
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""
    path: str = ""  # set for non-resource requests (``/version``, ``/healthz``)
    version: str = ""  # the API version requested (RBAC ignores it; an authorization webhook is told it)

    @property
    def resource_request(self) -> bool:
        return not self.path


def _matches(values: Iterable[str], want: str) -> bool:
    return any(v == "*" or v == want for v in values)


def rule_allows(rule: dict[str, Any], a: Attributes) -> bool:
    if not _matches(rule.get("verbs") or [], a.verb):
        return False
    if not a.resource_request:
        for url in rule.get("nonResourceURLs") or []:
            if url == a.path or url == "*" or (url.endswith("*") and a.path.startswith(url[:-1])):
                return True
        return False
    if not _matches(rule.get("apiGroups") or [], a.api_group):
        return False
    resources = rule.get("resources") or []
    combined = f"{a.resource}/{a.subresource}" if a.subresource else a.resource
    ok = any(
        r == "*"
        or r == combined
        or (a.subresource and r == f"*/{a.subresource}")
        or (not a.subresource and r == a.resource)
        for r in resources
    )
    if not ok:
        return False
    names = rule.get("resourceNames") or []
    return not names or a.name in names


def subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    if kind == "User":
        return subject.get("name") == user.name
    if kind == "Group":
        return subject.get("name") in user.groups
    if kind == "ServiceAccount":
        ns = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{ns}:{subject.get('name')}"
    return False


@dataclass(frozen=True, slots=True)
class RbacObjects:
    """Accessors for the RBAC objects of one cluster (the store passes its lists in)."""

    cluster_roles: Callable[[str], dict[str, Any] | None]
    roles: Callable[[str, str], dict[str, Any] | None]
    cluster_role_bindings: Callable[[], list[dict[str, Any]]]
    role_bindings: Callable[[str], list[dict[str, Any]]]


def authorize(user: UserInfo, a: Attributes, objs: RbacObjects) -> tuple[bool, str]:
    """(allowed, reason). ``system:masters`` may do anything, as on a real API server."""
    if MASTERS in user.groups:
        return True, ""
    for crb in objs.cluster_role_bindings():
        if not any(subject_matches(s, user, "") for s in crb.get("subjects") or []):
            continue
        role = objs.cluster_roles(crb.get("roleRef", {}).get("name", ""))
        if role and any(rule_allows(r, a) for r in role.get("rules") or []):
            name = crb["metadata"]["name"]
            return (
                True,
                f'RBAC: allowed by ClusterRoleBinding "{name}" of ClusterRole "{role["metadata"]["name"]}"',
            )
    if a.namespace and a.resource_request:
        for rb in objs.role_bindings(a.namespace):
            if not any(subject_matches(s, user, a.namespace) for s in rb.get("subjects") or []):
                continue
            ref = rb.get("roleRef") or {}
            if ref.get("kind") == "ClusterRole":
                role = objs.cluster_roles(ref.get("name", ""))
            else:
                role = objs.roles(a.namespace, ref.get("name", ""))
            if role and any(rule_allows(r, a) for r in role.get("rules") or []):
                return True, f'RBAC: allowed by RoleBinding "{rb["metadata"]["name"]}"'
    return False, ""


def rules_for(user: UserInfo, namespace: str, objs: RbacObjects) -> list[dict[str, Any]]:
    """Every rule that applies to ``user`` in ``namespace`` (SelfSubjectRulesReview)."""
    if MASTERS in user.groups:
        return [
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            {"verbs": ["*"], "nonResourceURLs": ["*"]},
        ]
    rules: list[dict[str, Any]] = []
    for crb in objs.cluster_role_bindings():
        if any(subject_matches(s, user, "") for s in crb.get("subjects") or []):
            role = objs.cluster_roles(crb.get("roleRef", {}).get("name", ""))
            rules += (role or {}).get("rules") or []
    for rb in objs.role_bindings(namespace):
        if any(subject_matches(s, user, namespace) for s in rb.get("subjects") or []):
            ref = rb.get("roleRef") or {}
            role = (
                objs.cluster_roles(ref.get("name", ""))
                if ref.get("kind") == "ClusterRole"
                else objs.roles(namespace, ref.get("name", ""))
            )
            rules += (role or {}).get("rules") or []
    return rules
