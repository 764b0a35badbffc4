"""A cheap first test in front of each entry of the app's router: one regular expression, the union of the entry's
routes' path patterns, turns away a path none of them can match before FastAPI tries them one by one.

The app's router tries its entries (one per included router) in order, and FastAPI matches an entry by trying each
of its routes' patterns in Python, with its own bookkeeping around each: a GET of a connected cluster went through
~29 patterns in 6 entries (the agents' routers are first: ``controlplane/routeorder.py``) before its own, about a
tenth of its CPU (docs/benchmarks.md, "Where a GET's CPU goes"). The gate answers "no match" only when no pattern of
the entry matches the path, exactly when FastAPI's own matching would (a path that matches a pattern but not its
methods still reaches FastAPI, which answers 405 as before); everything else is the entry's own.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi.routing import APIRoute, APIWebSocketRoute
from starlette._utils import get_route_path
from starlette.routing import BaseRoute, Match
from starlette.types import Receive, Scope, Send

_NAMED_GROUP = re.compile(r"\(\?P<[^>]+>")


class Gated(BaseRoute):
    """An entry of the app's router, tried only for HTTP paths one of its routes' patterns matches."""

    def __init__(self, entry: BaseRoute, pattern: re.Pattern[str]) -> None:
        self.entry = entry
        self.pattern = pattern

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] == "http" and self.pattern.match(get_route_path(scope)) is None:
            return Match.NONE, {}
        return self.entry.matches(scope)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.entry.handle(scope, receive, send)

    def url_path_for(self, name: str, /, **path_params: Any) -> Any:
        return self.entry.url_path_for(name, **path_params)

    def __getattr__(self, name: str) -> Any:  # the entry's own attributes (its templates, its router)
        return getattr(self.entry, name)


def union_pattern(entry: Any) -> re.Pattern[str] | None:
    """One pattern matching every path any of the entry's HTTP routes matches (None when a route's pattern is not
    known: a mount, a plain route; such an entry is tried as it is)."""
    contexts = getattr(entry, "effective_route_contexts", None)
    if contexts is None:
        return None
    patterns = []
    for context in contexts():
        route = getattr(context, "original_route", None)
        if isinstance(route, APIWebSocketRoute):
            continue  # matches no HTTP request; websocket requests pass the gate
        regex = getattr(context, "path_regex", None)
        if not isinstance(route, APIRoute) or not isinstance(regex, re.Pattern):
            return None
        # Each route's groups are named after its parameters; the union only tests, so they need no names.
        patterns.append(f"(?:{_NAMED_GROUP.sub('(?:', regex.pattern)})")
    return re.compile("|".join(patterns)) if patterns else None


def gated(entry: BaseRoute) -> BaseRoute:
    """The entry behind its gate, or the entry itself when its patterns are not all known."""
    pattern = union_pattern(entry)
    return entry if pattern is None else Gated(entry, pattern)


def ungated(entry: BaseRoute) -> BaseRoute:
    return entry.entry if isinstance(entry, Gated) else entry
