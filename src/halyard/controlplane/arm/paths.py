"""ARM paths: matched case-insensitively, with doubled and trailing slashes forgiven, and resource ids parsed."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from starlette.types import ASGIApp, Receive, Scope, Send

from halyard.core.errors import InvalidRequest

_PARAM = re.compile(r"^\{.*\}$")
SCOPE_PREFIX = "/{scope}/"  # how a route declared at any scope (``/{scope:path}/…``) reads in the OpenAPI paths


class _Node:
    """One segment position of the routes' trie: literal children by lower-cased spelling, one parameter child."""

    __slots__ = ("end", "literals", "param")

    def __init__(self) -> None:
        # lower-cased: {as routes spell it: the next node}; routes may differ (``resourcegroups``, ``resourceGroups``)
        self.literals: dict[str, dict[str, _Node]] = {}
        self.param: _Node | None = None
        self.end = False

    def add(self, segments: list[str]) -> None:
        node = self
        for seg in segments:
            if _PARAM.match(seg):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literals.setdefault(seg.lower(), {}).setdefault(seg, _Node())
        node.end = True

    def match(self, segments: list[str], start: int, whole: bool) -> list[str] | None:
        """The segments from ``start`` respelled as the first route that matches them, literals tried before names.

        ``whole``: the route must end with the path; otherwise the path need only be a prefix of a route (a scope).
        """
        if start == len(segments):
            return [] if self.end or not whole else None
        seg = segments[start]
        for spelling, node in self.literals.get(seg.lower(), {}).items():
            rest = node.match(segments, start + 1, whole)
            if rest is not None:
                return [spelling, *rest]
        if self.param is not None:
            rest = self.param.match(segments, start + 1, whole)
            if rest is not None:
                return [seg, *rest]
        return None


class CanonicalPathMiddleware:
    """Rewrites the literal segments of a request path to the casing of the route it matches.

    az sends ``resourcegroups``, the SDKs ``resourceGroups``; ``--endpoint-resource-manager https://h/`` makes az send
    ``//metadata/endpoints``. Names (the parameters) keep the caller's casing; ARM compares them case-insensitively.
    Only the segments at a route's literal positions are respelled, as *that* route spells them: a resource group
    named ``Default`` stays ``Default`` though ``settings/default`` is a literal elsewhere, and an agent route's
    ``fluxconfigurations`` does not respell ARM's ``fluxConfigurations``. A path no route matches is left alone.

    Routes declared at any scope (``/{scope}/providers/Microsoft.Authorization/roleAssignments``) also serve the
    tenant root, where the scope is empty: ``/providers/Microsoft.Authorization/roleAssignments`` (and the SDKs'
    ``//providers/…`` for scope ``/``) is given back its empty scope segment so those routes match it.
    """

    def __init__(self, app: ASGIApp, route_paths: Iterable[str] = ()) -> None:
        self.app = app
        self.routes = _Node()
        self.scoped = _Node()  # the routes at any scope, from the segment after the scope
        self.add_route_paths(route_paths)

    def add_route_paths(self, paths: Iterable[str]) -> None:
        """Learn these route paths (OpenAPI spelling: ``{name}`` parameters, ``{scope}`` first for any scope)."""
        for path in paths:
            if path.startswith(SCOPE_PREFIX):
                self.scoped.add([s for s in path[len(SCOPE_PREFIX) :].split("/") if s])
            else:
                self.routes.add([s for s in path.split("/") if s])

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
        whole = self.routes.match(segments, 0, whole=True)
        if whole is not None:
            return "/" + "/".join(whole)
        # A scope is greedy, as the route's ``{scope:path}`` is: the last split that matches wins.
        for split in range(len(segments), -1, -1):
            tail = self.scoped.match(segments, split, whole=True)
            if tail is None:
                continue
            if split == 0:
                return "//" + "/".join(tail)  # the empty scope: the tenant root
            head = self.routes.match(segments[:split], 0, whole=False) or segments[:split]
            return "/" + "/".join([*head, *tail])
        return path


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
