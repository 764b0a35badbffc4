"""ARM resource ids, read the way az reads them for output (``resourceGroup``) and scopes."""

from __future__ import annotations

from typing import Any


def resource_group_of(resource_id: str) -> str | None:
    parts = resource_id.strip("/").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return None


def with_resource_group(item: Any) -> Any:
    """az adds ``resourceGroup`` (from the id) to resources inside a group; so do we."""
    if isinstance(item, list):
        return [with_resource_group(x) for x in item]
    if isinstance(item, dict) and isinstance(item.get("id"), str) and "resourceGroup" not in item:
        group = resource_group_of(item["id"])
        if group is not None:
            return {**item, "resourceGroup": group}
    return item


def group_scope(subscription_id: str, group: str) -> str:
    return f"/subscriptions/{subscription_id}/resourceGroups/{group}"
