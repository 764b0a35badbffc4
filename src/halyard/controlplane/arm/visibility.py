"""Which stored resources a caller may read, as a query condition: the rule of ``rbac.is_allowed`` over ``Resource``
rows, so an aggregate (a count) covers exactly what the caller's lists would show them and nothing else."""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, or_

from halyard.controlplane.arm import rbac
from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.store.models import Resource


def permitted(caller: AuthorizedCaller, action: str, scope: str) -> ColumnElement[bool] | None:
    """The rows under ``scope`` on which ``caller`` may perform ``action``: None when all of them (an assignment at or
    above ``scope`` grants it), else those at or under the scopes of the assignments below it that grant it (no
    row when there is none)."""
    if caller.allowed(action, scope):
        return None
    inside = rbac.normalize_scope(scope).rstrip("/") + "/"
    below = sorted(
        {
            rbac.normalize_scope(a.scope)
            for a in caller.assignments
            if rbac.role_permits(a.role, action) and rbac.normalize_scope(a.scope).startswith(inside)
        }
    )
    if not below:
        return false()
    # id_key is the lower-cased id, as normalize_scope writes a scope: a resource at the scope or anywhere under it.
    return or_(*(or_(Resource.id_key == s, Resource.id_key.startswith(s + "/", autoescape=True)) for s in below))
