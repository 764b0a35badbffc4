"""The order the app's router tries its routes in: the resource types' routers as early as they can go without
changing which route answers any request.

The router tries its entries (``/openapi.json`` and one per included router) in order, and a GET of a connected
cluster came 23rd of 37: ~110 path patterns tried per request, ~0.35 ms of a GET's ~2 ms of CPU
(docs/benchmarks.md, "Where a GET's CPU goes"). Which route answers a path depends only on the order of the routes
that can match it, so an entry may move ahead of every entry none of whose path templates can match a path its own
can: a literal segment differs at the same place, or the numbers of segments cannot agree. Every pair of routes that
can match one path keeps its order, so every request is answered by the same route as before (and
``/openapi.json``, built before, is unchanged). Pure: templates in, order out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _segments(template: str) -> list[str]:
    return template.split("/")


def _is_literal(segment: str) -> bool:
    return "{" not in segment


def _is_path_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith(":path}")


def _differ(a: Sequence[str], b: Sequence[str]) -> bool:
    """Whether two aligned runs of segments differ in a place where both are literal."""
    return any(_is_literal(x) and _is_literal(y) and x != y for x, y in zip(a, b, strict=True))


def may_overlap(a: str, b: str) -> bool:
    """Whether some path could match both templates (Starlette's: a ``{param}`` is one non-empty segment, a
    ``{param:path}`` any run of characters, slashes included). Conservative: True unless provably not."""
    sa, sb = _segments(a), _segments(b)
    path_a = [i for i, s in enumerate(sa) if _is_path_param(s)]
    path_b = [i for i, s in enumerate(sb) if _is_path_param(s)]
    if len(path_a) + len(path_b) > 1 or any(not _is_literal(s) and not s.startswith("{") for s in sa + sb):
        return True  # two path parameters, or a segment mixing text and a parameter: not worth proving
    if path_b:
        sa, sb, path_a = sb, sa, path_b
    if not path_a:
        return len(sa) == len(sb) and not _differ(sa, sb)
    # ``sa`` = head, a path parameter (one segment at least, possibly empty), tail; ``sb`` has no path parameter.
    head, tail = sa[: path_a[0]], sa[path_a[0] + 1 :]
    if len(sb) < len(head) + 1 + len(tail):
        return False
    return not (_differ(head, sb[: len(head)]) or (tail and _differ(tail, sb[len(sb) - len(tail) :])))


def templates(entry: Any) -> list[str] | None:
    """The path templates of one of the router's entries (an included router's every route); None when unknown
    (such an entry is taken to overlap everything)."""
    contexts = getattr(entry, "effective_route_contexts", None)
    if contexts is not None:
        paths = [context.path or getattr(context.original_route, "path", None) for context in contexts()]
        return [p for p in paths if isinstance(p, str)] if all(isinstance(p, str) for p in paths) else None
    path = getattr(entry, "path", None)
    return [path] if isinstance(path, str) else None


def _disjoint(a: list[str] | None, b: list[str] | None) -> bool:
    return a is not None and b is not None and not any(may_overlap(x, y) for x in a for y in b)


def hoisted(routes: Sequence[Any], movable: Sequence[Any]) -> list[Any]:
    """``routes`` with each of ``movable``, in the order given, moved ahead of every entry before it that it is
    disjoint from, stopping at the first it may overlap or at the movable entry placed at the front before it (so
    movable entries that all reach the front keep the order given)."""
    order = list(routes)
    known = {id(entry): templates(entry) for entry in order}
    front = 0  # where the next movable entry may go at the earliest
    for entry in movable:
        at = order.index(entry)
        to = at
        while to > front and _disjoint(known[id(entry)], known[id(order[to - 1])]):
            to -= 1
        order.insert(to, order.pop(at))
        if to == front:
            front += 1
    return order
