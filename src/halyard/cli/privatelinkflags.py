"""``--enable-private-link true|false`` with ``--private-link-scope-resource-id``, as az connectedk8s update takes
them: checked before anything is sent, then set on the cluster's body (a full PUT: the PATCH body has neither)."""

from __future__ import annotations

from typing import Any

from halyard.cli.errors import UsageError


def private_link_update(enable: str | None, scope: str | None) -> tuple[bool, str | None] | None:
    """(enabled, scope) to set, or None when neither flag was given; UsageError as az words it."""
    if enable is None and scope is None:
        return None
    if enable is not None and enable.lower() not in ("true", "false"):
        raise UsageError("--enable-private-link must be true or false.")
    enabled = enable is not None and enable.lower() == "true"
    if enabled and not scope:
        raise UsageError("--enable-private-link true needs --private-link-scope-resource-id.")
    if scope and not enabled:
        raise UsageError("--private-link-scope-resource-id is allowed only with --enable-private-link true.")
    return enabled, scope


def with_private_link(cluster: dict[str, Any], enabled: bool, scope: str | None) -> dict[str, Any]:
    """The cluster's body joined to ``scope`` (enabled) or out of any scope: its agents follow with their next
    heartbeat, no re-onboarding."""
    properties = cluster.setdefault("properties", {})
    properties["privateLinkState"] = "Enabled" if enabled else "Disabled"
    if enabled:
        properties["privateLinkScopeResourceId"] = scope
    else:
        properties.pop("privateLinkScopeResourceId", None)
    return cluster
