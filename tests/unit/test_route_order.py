"""The resource types' routes are tried first (issue 9: ~110 path patterns were tried before a GET of a connected
cluster), and no request is answered by another route than in the declared order: checked with Starlette's own
matching on a path of every shape the app's templates describe, for every method, not with the reordering's
reasoning."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Match

from halyard.controlplane.app import create_app
from halyard.controlplane.routegate import Gated, ungated
from halyard.controlplane.routeorder import hoisted, may_overlap, templates
from halyard.core.settings import Settings

pytestmark = pytest.mark.unit
METHODS = ("GET", "PUT", "PATCH", "POST", "DELETE", "HEAD", "OPTIONS")


@pytest.mark.parametrize(
    ("a", "b", "overlap"),
    [
        ("/subscriptions/{s}/providers", "/subscriptions/{s}/resources", False),  # a literal differs
        ("/subscriptions/{s}/providers/{ns}", "/subscriptions/{s}/providers/Microsoft.Kubernetes", True),
        ("/a/{x}", "/a/{x}/b", False),  # segment counts
        ("/{scope:path}/providers/Microsoft.Authorization/roleAssignments", "/subscriptions/{s}/providers/X/y", False),
        ("/{scope:path}/providers/{ns}/roleAssignments", "/subscriptions/{s}/providers/X/roleAssignments", True),
        ("/{scope:path}/providers/A/b", "/x/y/providers/A/b", True),  # a path parameter spans segments
        ("/{scope:path}/providers/A/b", "/providers/A/b", False),  # "/" + "" + "/providers/A/b" has two slashes
        ("/portal/{rest:path}", "/subscriptions/{s}", False),  # the head differs
        ("/a/{x}.json", "/a/b", True),  # a segment mixing text and a parameter: not proven apart
        ("/{a:path}/x", "/{b:path}/y", True),  # two path parameters: not proven apart
    ],
)
def test_templates_that_may_match_one_path(a: str, b: str, overlap: bool) -> None:
    assert may_overlap(a, b) is overlap
    assert may_overlap(b, a) is overlap


def _sample(template: str) -> str:
    path = re.sub(r"\{[^}/]+:path\}", "x/y", template)
    return re.sub(r"\{[^}/]+\}", "x", path)


def _first(routes: list[Any], path: str, method: str) -> Any:
    scope = {"type": "http", "path": path, "method": method, "root_path": "", "query_string": b"", "headers": []}
    partial = None
    for entry in routes:
        match, _ = entry.matches(dict(scope))
        if match == Match.FULL:
            return entry
        if match == Match.PARTIAL and partial is None:
            partial = entry
    return partial


def test_every_request_reaches_the_route_it_reached_in_the_declared_order(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", insecure_http=True))
    declared, served = app.state.declared_routes, app.router.routes
    assert sorted(map(id, declared)) == sorted(id(ungated(e)) for e in served)
    assert sum(isinstance(e, Gated) for e in served) > len(served) - 5  # all but /openapi.json and the mounts

    def entry(template: str) -> Any:
        return next(e for e in served if template in (templates(e) or []))

    # The agents' heartbeats, then connectedClusters' actions (which must precede its routes: ``statusCounts``
    # could be a name), then the resource types: 14th and 26th of 39 as declared.
    assert served.index(entry("/dp/v1/heartbeat")) < 4
    item = "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Kubernetes/"
    assert served.index(entry(item + "connectedClusters/statusCounts")) < 5
    assert served.index(entry(item + "connectedClusters/{resourceName}")) < 7
    paths = {_sample(t) for entry in declared for t in templates(entry) or []}
    paths |= {p + "/" for p in paths} | {p.rstrip("/") for p in paths if p != "/"}
    for path in sorted(paths):
        for method in METHODS:  # also proves the gates (routegate.py) turn away no path their entry matches
            assert ungated(_first(served, path, method)) is _first(declared, path, method), (method, path)


def test_an_entry_stops_at_the_first_it_may_overlap() -> None:
    class Entry:
        def __init__(self, path: str) -> None:
            self.path = path

    generic, other, a, b = Entry("/s/{id}/{kind}"), Entry("/t"), Entry("/s/{id}/a"), Entry("/u")
    assert hoisted([generic, other, a, b], [a, b]) == [b, generic, a, other]
