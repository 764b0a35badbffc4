"""Kubernetes request attributes → the Arc data action and scope Azure RBAC checks, as Arc's guard maps them.

The mapping follows kubeguard/guard ``authz/providers/azure/rbac/checkaccessreqhelper.go`` (``getDataActions``,
``getActionName``, ``getResourceAndAction``, ``getScope``), for connected clusters without the optional
operations-map discovery:

- a resource request → ``Microsoft.Kubernetes/connectedClusters[/{group}]/{resource}/{action}``, where the action
  is ``read`` for get/list/watch, ``write`` for create/update/patch, ``delete`` for delete/deletecollection,
  ``{verb}/action`` for bind/escalate/use/impersonate, and ``pods/exec/action`` for ``pods`` ``exec``; any other
  subresource is checked as its resource (``pods/log`` get → ``pods/read``), and an unknown verb leaves the action
  off (``…/pods``), which only a wildcard grants;
- a non-resource request → ``Microsoft.Kubernetes/connectedClusters{path}/{action}`` (``/healthz`` get →
  ``…/healthz/read``);
- the scope is the cluster, or ``{cluster}/namespaces/{namespace}`` when the request names a namespace (so
  cluster-scoped resources are checked at the cluster).

A ``*`` verb, resource or group needs guard's operations map to expand; without it guard refuses them, and so does
this (:class:`Unmappable`). Pure: no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CLUSTER_TYPE = "Microsoft.Kubernetes/connectedClusters"

_VERB_ACTIONS = {
    "get": "read",
    "list": "read",
    "watch": "read",
    "create": "write",
    "update": "write",
    "patch": "write",
    "delete": "delete",
    "deletecollection": "delete",
    "bind": "bind/action",
    "escalate": "escalate/action",
    "use": "use/action",
    "impersonate": "impersonate/action",
}
# Group, resource and subresource are single path segments of a data action: no slash, no dot segments.
_SEGMENT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
_NAMESPACE = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


class Unmappable(ValueError):
    """The attributes name no single data action (a wildcard, a malformed part)."""


@dataclass(frozen=True)
class Check:
    data_action: str
    scope: str


def action_name(verb: str) -> str:
    """Guard's ``getActionName``: the data-action suffix of a Kubernetes verb ('' for one it does not know)."""
    return _VERB_ACTIONS.get(verb, "")


def _join(*parts: str) -> str:
    return "/".join(p for p in parts if p)


def _segment(value: str, what: str) -> str:
    if value and not _SEGMENT.match(value):
        raise Unmappable(f"The {what} '{value[:64]}' is not a Kubernetes name.")
    return value


def resource_check(
    cluster_id: str, *, namespace: str, verb: str, group: str, resource: str, subresource: str = ""
) -> Check:
    """The data action and scope of a resource request in the cluster ``cluster_id``."""
    if "*" in (verb, group, resource):
        raise Unmappable("Wildcard verbs, groups and resources are not supported (guard needs its operations map).")
    if not resource:
        raise Unmappable("A resource request must name its resource.")
    _segment(group, "API group")
    _segment(resource, "resource")
    _segment(subresource, "subresource")
    if namespace and not _NAMESPACE.match(namespace):
        raise Unmappable(f"The namespace '{namespace[:64]}' is not a Kubernetes namespace name.")
    if resource == "pods" and subresource == "exec":
        action = "pods/exec/action"
    else:
        action = _join(resource, action_name(verb))
    scope = f"{cluster_id}/namespaces/{namespace}" if namespace else cluster_id
    return Check(_join(CLUSTER_TYPE, group, action), scope)


def non_resource_check(cluster_id: str, *, path: str, verb: str) -> Check:
    """The data action of a non-resource request (``/healthz``, ``/version``), checked at the cluster."""
    if not path.startswith("/"):
        raise Unmappable("A non-resource path must start with '/'.")
    segments = [s for s in path.split("/") if s]
    # Go's path.Join would resolve '..' and let a path name an action outside the cluster type's; refuse instead.
    if any(s in (".", "..") for s in segments):
        raise Unmappable("A non-resource path must not hold '.' or '..' segments.")
    return Check(_join(CLUSTER_TYPE, *segments, action_name(verb)), cluster_id)
