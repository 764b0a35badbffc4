"""No route's dependency runs in FastAPI's thread pool: a plain-function dependency costs every request that uses it
a hop to a worker thread and back (the control-plane dependency did, on every management and agent route; issue 9,
docs/benchmarks.md "ARM CRUD")."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import APIRoute

from halyard.controlplane.app import create_app
from halyard.core.settings import Settings

pytestmark = pytest.mark.unit


def _runs_on_the_loop(call: Any) -> bool:
    target = call if inspect.isroutine(call) else getattr(call, "__call__", None)  # a class instance: its __call__
    return asyncio.iscoroutinefunction(target) or inspect.isasyncgenfunction(target)


def _routes(router: Any) -> Iterator[APIRoute]:
    for entry in router.routes:
        entry = getattr(entry, "entry", entry)  # behind its gate (controlplane/routegate.py)
        if isinstance(entry, APIRoute):
            yield entry
        elif hasattr(entry, "original_router"):
            yield from _routes(entry.original_router)


def _dependencies(dependant: Any) -> Iterator[Any]:
    for sub in dependant.dependencies:
        yield sub
        yield from _dependencies(sub)


def test_every_dependency_of_every_route_runs_on_the_event_loop(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data", insecure_http=True))
    routes = list(_routes(app.router))
    assert len(routes) > 100
    in_threads = {
        f"{route.path} {getattr(sub.call, '__qualname__', sub.call)}"
        for route in routes
        for sub in _dependencies(route.dependant)
        if sub.call is not None and not _runs_on_the_loop(sub.call)
    }
    assert not in_threads
