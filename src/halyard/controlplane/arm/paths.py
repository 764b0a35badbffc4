"""ARM paths: matched case-insensitively, with doubled and trailing slashes forgiven, and resource ids parsed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from halyard.core.errors import InvalidRequest

_PARAM = re.compile(r"^\{.*\}$")
SCOPE_PREFIX = "/{scope}/"  # how a route declared at any scope (``/{scope:path}/…``) reads in the OpenAPI paths


class CanonicalPathMiddleware:
    """Rewrites the literal segments of a request path to the casing the routes declare.

    az sends ``resourcegroups``, the SDKs ``resourceGroups``; ``--endpoint-resource-manager https://h/`` makes az send
    ``//metadata/endpoints``. Names (the parameters) keep the caller's casing; ARM compares them case-insensitively.

    Routes declared at any scope (``/{scope}/providers/Microsoft.Authorization/roleAssignments``) also serve the
    tenant root, where the scope is empty: ``/providers/Microsoft.Authorization/roleAssignments`` (and the SDKs'
    ``//providers/…`` for scope ``/``) is given back its empty scope segment so those routes match it.
    """

    def __init__(self, app: ASGIApp, route_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.literals: dict[str, str] = {}  # lower-cased: as the routes spell it
        self.root_scoped: set[tuple[str, ...]] = set()  # lower-cased literal heads of the routes at any scope
        self.add_route_paths(route_paths)

    def add_route_paths(self, paths: Iterable[str]) -> None:
        """Learn the literal segments (and the routes at any scope) of these route paths (OpenAPI spelling)."""
        for path in paths:
            for seg in path.split("/"):
                if seg and not _PARAM.match(seg):
                    self.literals.setdefault(seg.lower(), seg)
            if path.startswith(SCOPE_PREFIX):
                head = []
                for seg in path[len(SCOPE_PREFIX) :].split("/"):
                    if _PARAM.match(seg):
                        break
                    head.append(seg.lower())
                self.root_scoped.add(tuple(head))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path: str = scope["path"]
            canonical = self.canonical(path)
            if canonical != path:
                scope = dict(scope)
                scope["path"] = canonical
                scope["raw_path"] = canonical.encode()
        await self.app(scope, receive, send)

    def canonical(self, path: str) -> str:
        segments = [s for s in path.split("/") if s]
        lowered = [s.lower() for s in segments]
        canonical = "/" + "/".join(self.literals.get(low, s) for s, low in zip(segments, lowered, strict=True))
        if any(tuple(lowered[: len(head)]) == head for head in self.root_scoped):
            return "/" + canonical  # the empty scope: the tenant root
        return canonical


@dataclass(frozen=True)
class ResourceId:
    """An ARM resource id: a scope, then one provider's chain of types and names.

    ``/subscriptions/s/resourceGroups/g/providers/NS/t1/n1`` (a group's resource),
    ``…/providers/NS/t1/n1/t2/n2`` (a child of t1), ``…/providers/NS/t1/n1/providers/NS2/t3/n3`` (an extension
    resource: its scope is the resource it extends), ``/subscriptions/s/providers/NS/t/n`` and ``/providers/NS/t/n``
    (subscription and tenant resources).
    """

    scope: str  # "" (tenant), "/subscriptions/s", "/subscriptions/s/resourceGroups/g", or a resource id
    namespace: str
    types: tuple[str, ...]
    names: tuple[str, ...]

    @classmethod
    def in_group(cls, subscription_id: str, group: str, namespace: str, type_name: str, name: str) -> ResourceId:
        return cls(group_scope(subscription_id, group), namespace, (type_name,), (name,))

    @property
    def name(self) -> str:
        return self.names[-1]

    @property
    def type(self) -> str:
        """The type below the namespace: ``connectedClusters``, ``privateLinkScopes/privateEndpointConnections``."""
        return "/".join(self.types)

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.type}"

    @property
    def subscription_id(self) -> str | None:
        parts = self.scope.split("/")
        return parts[2] if len(parts) > 2 and parts[1].lower() == "subscriptions" else None

    @property
    def resource_group(self) -> str | None:
        parts = self.scope.split("/")
        return parts[4] if len(parts) > 4 and parts[3].lower() == "resourcegroups" else None

    @property
    def parent(self) -> ResourceId | None:
        """The resource this one lives under: the parent of a child, the extended resource of an extension."""
        if len(self.types) > 1:
            return ResourceId(self.scope, self.namespace, self.types[:-1], self.names[:-1])
        if "/providers/" in self.scope.lower():
            return ResourceId.parse(self.scope)
        return None

    def child(self, type_name: str, name: str) -> ResourceId:
        return ResourceId(self.scope, self.namespace, (*self.types, type_name), (*self.names, name))

    def extension(self, namespace: str, type_name: str, name: str) -> ResourceId:
        return ResourceId(str(self), namespace, (type_name,), (name,))

    def __str__(self) -> str:
        chain = "".join(f"/{t}/{n}" for t, n in zip(self.types, self.names, strict=True))
        return f"{self.scope}/providers/{self.namespace}{chain}"

    @property
    def key(self) -> str:
        return str(self).lower()

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        parts = [p for p in text.split("/") if p]
        # The last 'providers' followed by a namespace and whole type/name pairs starts the id's own part; what is
        # before it is the scope (a resource's own name may be 'providers', hence from the end).
        for index in range(len(parts) - 3, -1, -1):
            rest = parts[index + 1 :]
            if parts[index].lower() == "providers" and len(rest) >= 3 and len(rest) % 2 == 1:
                scope = _scope(parts[:index], text)
                return cls(scope, rest[0], tuple(rest[1::2]), tuple(rest[2::2]))
        raise _invalid(text)


def _scope(parts: list[str], text: str) -> str:
    lowered = [p.lower() for p in parts]
    if not parts:
        return ""
    if lowered[0] != "subscriptions" or len(parts) < 2:
        if lowered[0] == "providers":
            return str(ResourceId.parse("/" + "/".join(parts)))
        raise _invalid(text)
    if len(parts) == 2:
        return subscription_scope(parts[1])
    if lowered[2] == "resourcegroups" and len(parts) == 4:
        return group_scope(parts[1], parts[3])
    return str(ResourceId.parse("/" + "/".join(parts)))


def _invalid(text: str) -> InvalidRequest:
    return InvalidRequest(f"'{text}' is not a valid resource id.", code="InvalidResourceId")


def subscription_scope(subscription_id: str) -> str:
    return f"/subscriptions/{subscription_id}"


def group_scope(subscription_id: str, group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{group}"
