"""ARM role-based access control, as a pure function of role definitions and assignments.

An assignment at a scope applies to that scope and everything below it. A role grants an action when one of its
``actions`` patterns matches and none of its ``notActions`` does; patterns use ``*`` as a wildcard and compare
case-insensitively, as ARM does.
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
BUILTIN_ROLES = (OWNER, CONTRIBUTOR, READER, ONBOARDING)


@lru_cache(maxsize=4096)
def _pattern(pattern: str) -> re.Pattern[str]:
    return re.compile("^" + re.escape(pattern).replace(r"\*", ".*") + "$", re.IGNORECASE)


def action_matches(pattern: str, action: str) -> bool:
    return _pattern(pattern).match(action) is not None


def role_permits(role: Role, action: str) -> bool:
    return any(action_matches(p, action) for p in role.actions) and not any(
        action_matches(p, action) for p in role.not_actions
    )


def normalize_scope(scope: str) -> str:
    """Lower-cased, one leading slash, no trailing slash ('/' is the root)."""
    scope = "/" + scope.strip("/").lower()
    return scope


def scope_covers(assigned: str, target: str) -> bool:
    """Whether an assignment at ``assigned`` applies at ``target`` (inheritance flows downward only)."""
    a, t = normalize_scope(assigned), normalize_scope(target)
    return a == "/" or t == a or t.startswith(a + "/")


def is_allowed(assignments: Iterable[Assignment], action: str, scope: str) -> bool:
    return any(scope_covers(a.scope, scope) and role_permits(a.role, action) for a in assignments)


def allowed_at_or_below(assignments: Iterable[Assignment], action: str, scope: str) -> bool:
    """Whether any assignment grants ``action`` at ``scope`` or anywhere under it (how ARM lists subscriptions)."""
    s = normalize_scope(scope)
    for a in assignments:
        a_scope = normalize_scope(a.scope)
        if (scope_covers(a_scope, s) or a_scope.startswith(s + "/")) and role_permits(a.role, action):
            return True
    return False
