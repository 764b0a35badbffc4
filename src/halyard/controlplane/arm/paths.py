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
    subscription_id: str
    resource_group: str
    namespace: str
    type: str  # e.g. "connectedClusters"
    name: str

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.type}"

    def __str__(self) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/{self.namespace}/{self.type}/{self.name}"
        )

    @property
    def key(self) -> str:
        return str(self).lower()

    @classmethod
    def parse(cls, text: str) -> ResourceId:
        parts = [p for p in text.split("/") if p]
        if (
            len(parts) != 8
            or parts[0].lower() != "subscriptions"
            or parts[2].lower() != "resourcegroups"
            or parts[4].lower() != "providers"
        ):
            raise InvalidRequest(f"'{text}' is not a valid resource id.", code="InvalidResourceId")
        return cls(parts[1], parts[3], parts[5], parts[6], parts[7])


def subscription_scope(subscription_id: str) -> str:
    return f"/subscriptions/{subscription_id}"


def group_scope(subscription_id: str, group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{group}"
