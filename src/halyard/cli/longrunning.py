"""Writes of a cluster's configuration resources (extensions, Flux configurations) as az makes them: the request,
then, unless ``--no-wait``, the wait for its long-running operation behind a progress line."""

from __future__ import annotations

from typing import Any

from halyard.cli.context import Invocation
from halyard.cli.output import Columns


def put(inv: Invocation, path: str, api_version: str, props: dict[str, Any], no_wait: bool) -> None:
    """Create or replace; prints the first answer with ``no_wait``, else the resource as the operation left it."""
    first = inv.arm.request("PUT", path, params={"api-version": api_version}, json={"properties": props})
    if no_wait:
        inv.emit(first.json() if first.content else None)
        return
    with inv.progress("Running"):
        inv.emit(inv.arm.wait("PUT", inv.arm.resource_url(path, api_version), first))


def patch(
    inv: Invocation,
    path: str,
    api_version: str,
    props: dict[str, Any],
    no_wait: bool,
    columns: Columns | None = None,
) -> None:
    """Update; prints nothing with ``no_wait``, else the resource read once the operation ended."""
    first = inv.arm.request("PATCH", path, params={"api-version": api_version}, json={"properties": props})
    if no_wait:
        return
    with inv.progress("Running"):
        inv.arm.wait("PATCH", inv.arm.resource_url(path, api_version), first)
    inv.emit(inv.arm.get(path, api_version), columns)


def delete(inv: Invocation, path: str, api_version: str, *, force: bool, no_wait: bool) -> None:
    """Delete (``forceDelete``: without waiting for the agents); waits unless ``no_wait`` or it was done at once."""
    params = {"api-version": api_version, **({"forceDelete": "true"} if force else {})}
    first = inv.arm.request("DELETE", path, params=params)
    if no_wait or first.status_code in (200, 204):
        return
    with inv.progress("Running"):
        inv.arm.wait("DELETE", inv.arm.resource_url(path, api_version), first)
