"""ARM role-based access control, as a pure function of role definitions and assignments.

An assignment at a scope applies to that scope and everything below it. A role grants an action when one of its
``actions`` patterns matches and none of its ``notActions`` does; patterns use ``*`` as a wildcard and compare
case-insensitively, as ARM does.

Data actions (what a principal may do *inside* a resource: read a connected cluster's pods) are a separate list, as in
ARM: a role grants a data action only through its ``dataActions`` minus its ``notDataActions``; its ``actions``
never do, so Owner's ``*`` manages a cluster but reads none of its pods.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache


@dataclass(frozen=True)
class Role:
    id: str
    name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    data_actions: tuple[str, ...] = ()
    not_data_actions: tuple[str, ...] = ()


@dataclass(frozen=True)
class Assignment:
    scope: str
    role: Role


OWNER = Role(
    "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
    "Owner",
    "Grants full access to manage all resources, including the ability to assign roles.",
    ("*",),
)
CONTRIBUTOR = Role(
    "b24988ac-6180-42a0-ab88-20f7382dd24c",
    "Contributor",
    "Grants full access to manage all resources, but does not allow you to assign roles or manage principals.",
    ("*",),
    (
        "Microsoft.Authorization/*/Write",
        "Microsoft.Authorization/*/Delete",
        "Microsoft.Authorization/*/action",
    ),
)
READER = Role("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader", "View all resources, but make no changes.", ("*/read",))
ONBOARDING = Role(
    "34e09817-6cbe-4d01-b1a2-e0eac5743d41",
    "Kubernetes Cluster - Azure Arc Onboarding",
    "Can onboard (create and read) connected clusters, nothing else.",
    (
        "Microsoft.Authorization/*/read",
        "Microsoft.Resources/subscriptions/read",
        "Microsoft.Resources/subscriptions/operationresults/read",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        "Microsoft.Resources/subscriptions/providers/read",
        "Microsoft.Kubernetes/connectedClusters/write",
        "Microsoft.Kubernetes/connectedClusters/read",
        "Microsoft.Kubernetes/locations/operationStatuses/read",
        "Microsoft.Kubernetes/operations/read",
    ),
)

# The Azure Arc Kubernetes roles as Azure defines them (names, ids, actions and data actions copied from
# MicrosoftDocs/azure-docs articles/role-based-access-control/built-in-roles/containers.md, ms.date 06/30/2025, the
# generated list of Azure's built-in roles). Viewer and Writer list replicationcontrollers twice there too.
_ARC_ACTIONS = (
    "Microsoft.Authorization/*/read",
    "Microsoft.Insights/alertRules/*",
    "Microsoft.Resources/deployments/write",
    "Microsoft.Resources/subscriptions/operationresults/read",
    "Microsoft.Resources/subscriptions/read",
    "Microsoft.Resources/subscriptions/resourceGroups/read",
    "Microsoft.Support/*",
)
_CC = "Microsoft.Kubernetes/connectedClusters/"


def _cc(*suffixes: str) -> tuple[str, ...]:
    return tuple(_CC + s for s in suffixes)


ARC_VIEWER = Role(
    "63f0a09d-1495-4db4-a681-037d84835eb4",
    "Azure Arc Kubernetes Viewer",
    "Lets you view all resources in cluster/namespace, except secrets.",
    _ARC_ACTIONS,
    data_actions=_cc(
        "apps/controllerrevisions/read",
        "apps/daemonsets/read",
        "apps/deployments/read",
        "apps/replicasets/read",
        "apps/statefulsets/read",
        "autoscaling/horizontalpodautoscalers/read",
        "batch/cronjobs/read",
        "batch/jobs/read",
        "configmaps/read",
        "endpoints/read",
        "events.k8s.io/events/read",
        "events/read",
        "extensions/daemonsets/read",
        "extensions/deployments/read",
        "extensions/ingresses/read",
        "extensions/networkpolicies/read",
        "extensions/replicasets/read",
        "limitranges/read",
        "namespaces/read",
        "networking.k8s.io/ingresses/read",
        "networking.k8s.io/networkpolicies/read",
        "persistentvolumeclaims/read",
        "pods/read",
        "policy/poddisruptionbudgets/read",
        "replicationcontrollers/read",
        "replicationcontrollers/read",
        "resourcequotas/read",
        "serviceaccounts/read",
        "services/read",
    ),
)
_WRITER_DATA = (
    "apps/controllerrevisions/read",
    "apps/daemonsets/*",
    "apps/deployments/*",
    "apps/replicasets/*",
    "apps/statefulsets/*",
    "autoscaling/horizontalpodautoscalers/*",
    "batch/cronjobs/*",
    "batch/jobs/*",
    "configmaps/*",
    "endpoints/*",
    "events.k8s.io/events/read",
    "events/read",
    "extensions/daemonsets/*",
    "extensions/deployments/*",
    "extensions/ingresses/*",
    "extensions/networkpolicies/*",
    "extensions/replicasets/*",
    "limitranges/read",
    "namespaces/read",
    "networking.k8s.io/ingresses/*",
    "networking.k8s.io/networkpolicies/*",
    "persistentvolumeclaims/*",
    "pods/*",
    "policy/poddisruptionbudgets/*",
    "replicationcontrollers/*",
    "replicationcontrollers/*",
    "resourcequotas/read",
    "secrets/*",
    "serviceaccounts/*",
    "services/*",
)
ARC_WRITER = Role(
    "5b999177-9696-4545-85c7-50de3797e5a1",
    "Azure Arc Kubernetes Writer",
    "Lets you update everything in cluster/namespace, except (cluster)roles and (cluster)role bindings.",
    _ARC_ACTIONS,
    data_actions=_cc(*_WRITER_DATA),
)
ARC_ADMIN = Role(
    "dffb1e0c-446f-4dde-a09f-99eb5cc68b96",
    "Azure Arc Kubernetes Admin",
    "Lets you manage all resources under cluster/namespace, except update or delete resource quotas and namespaces.",
    _ARC_ACTIONS,
    # Writer's, plus local access reviews and namespaced roles and role bindings (Azure's list, in its order).
    data_actions=_cc(
        *_WRITER_DATA[:5],
        "authorization.k8s.io/localsubjectaccessreviews/write",
        *_WRITER_DATA[5:24],
        "rbac.authorization.k8s.io/rolebindings/*",
        "rbac.authorization.k8s.io/roles/*",
        *_WRITER_DATA[24:],
    ),
)
ARC_CLUSTER_ADMIN = Role(
    "8393591c-06b9-48a2-a542-1bd6b377f6a2",
    "Azure Arc Kubernetes Cluster Admin",
    "Lets you manage all resources in the cluster.",
    _ARC_ACTIONS,
    data_actions=(_CC + "*",),
)
# Who may open cluster-connect streams (listClusterUserCredential), from the same source.
ARC_CLUSTER_USER = Role(
    "00493d72-78f6-4148-b6c5-d3ce8e4799dd",
    "Azure Arc Enabled Kubernetes Cluster User Role",
    "List cluster user credentials action.",
    (
        "Microsoft.Resources/deployments/write",
        "Microsoft.Resources/subscriptions/operationresults/read",
        "Microsoft.Resources/subscriptions/read",
        "Microsoft.Resources/subscriptions/resourceGroups/read",
        _CC + "listClusterUserCredentials/action",
        "Microsoft.Authorization/*/read",
        "Microsoft.Insights/alertRules/*",
        "Microsoft.Support/*",
        _CC + "listClusterUserCredential/action",
    ),
)
BUILTIN_ROLES = (
    OWNER,
    CONTRIBUTOR,
    READER,
    ONBOARDING,
    ARC_VIEWER,
    ARC_WRITER,
    ARC_ADMIN,
    ARC_CLUSTER_ADMIN,
    ARC_CLUSTER_USER,
)
BUILTIN_BY_ID = {r.id: r for r in BUILTIN_ROLES}


@lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$", re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).match(action) is not None


def role_permits(role: Role, action: str) -> bool:
    return any(action_matches(p, action) for p in role.actions) and not any(
        action_matches(p, action) for p in role.not_actions
    )


def role_permits_data(role: Role, data_action: str) -> bool:
    """Whether ``role`` grants ``data_action``: its ``dataActions`` minus its ``notDataActions`` (never its
    ``actions``, as in ARM)."""
    return any(action_matches(p, data_action) for p in role.data_actions) and not any(
        action_matches(p, data_action) for p in role.not_data_actions
    )


def normalize_scope(scope: str) -> str:
    """Lower-cased, one leading slash, no trailing slash ('/' is the root)."""
    scope = "/" + scope.strip("/").lower()
    return scope


_LITERALS = {"subscriptions": "subscriptions", "resourcegroups": "resourceGroups", "providers": "providers"}


def canonical_scope(scope: str) -> str:
    """The one spelling of an assignable scope: ``/``, a subscription, a resource group or a resource id, with ARM's
    literal segments (``resourceGroups``) and no ``.``/``..`` or empty segments; ValueError for anything else.

    A scope is compared lower-cased, so ``…/rg1/../rg2`` or ``…/RG1/x`` never granted more than it says; stored as
    written, it misled whoever read the list of assignments. Names keep the caller's casing (the route replaces the
    group's with its own).
    """
    stripped = scope.strip("/")
    if not stripped:
        return "/"
    parts = stripped.split("/")
    if any(p in ("", ".", "..") or p != p.strip() for p in parts):
        raise ValueError(f"The scope '{scope}' is not canonical: no empty, '.' or '..' segments.")
    lowered = [p.lower() for p in parts]
    # subscriptions/{id}[/resourceGroups/{name}][/providers/{namespace}/{type}/{name}[/{type}/{name}]...]
    n = len(parts)
    if lowered[0] != "subscriptions" or n == 1 or n == 3:
        valid = False
    elif n == 2:
        valid = True
    elif lowered[2] == "resourcegroups":
        valid = n == 4 or (n >= 8 and n % 2 == 0 and lowered[4] == "providers")
    else:
        valid = n >= 6 and n % 2 == 0 and lowered[2] == "providers"
    if not valid:
        raise ValueError(
            f"The scope '{scope}' is not a valid scope: use '/', /subscriptions/{{id}}, "
            "/subscriptions/{id}/resourceGroups/{name} or a resource id."
        )
    for index in (0, 2, 4):
        if index < n and lowered[index] in _LITERALS:
            parts[index] = _LITERALS[lowered[index]]
    return "/" + "/".join(parts)


def scope_covers(assigned: str, target: str) -> bool:
    """Whether an assignment at ``assigned`` applies at ``target`` (inheritance flows downward only)."""
    a, t = normalize_scope(assigned), normalize_scope(target)
    return a == "/" or t == a or t.startswith(a + "/")


def is_allowed(assignments: Iterable[Assignment], action: str, scope: str) -> bool:
    return any(scope_covers(a.scope, scope) and role_permits(a.role, action) for a in assignments)


def data_action_grant(assignments: Iterable[Assignment], data_action: str, scope: str) -> Assignment | None:
    """The first assignment that grants ``data_action`` at ``scope`` (inherited from above like any action), if any."""
    for a in assignments:
        if scope_covers(a.scope, scope) and role_permits_data(a.role, data_action):
            return a
    return None


def allowed_at_or_below(assignments: Iterable[Assignment], action: str, scope: str) -> bool:
    """Whether any assignment grants ``action`` at ``scope`` or anywhere under it (how ARM lists subscriptions)."""
    s = normalize_scope(scope)
    for a in assignments:
        a_scope = normalize_scope(a.scope)
        if (scope_covers(a_scope, s) or a_scope.startswith(s + "/")) and role_permits(a.role, action):
            return True
    return False
