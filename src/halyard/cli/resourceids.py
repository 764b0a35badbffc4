"""ARM resource ids: built in one place for every command, and read the way az reads them for output
(``resourceGroup``).

Every path a command sends is one of these shapes; building them here keeps the segment names (``resourceGroups``,
``providers``) and their order out of the commands. The server matches segment names case-insensitively, as ARM
does, so one spelling serves every command.
"""

from __future__ import annotations

from typing import Any


def subscription_scope(subscription_id: str) -> str:
    """``/subscriptions/S``."""
    return f"/subscriptions/{subscription_id}"


def group_scope(subscription_id: str, group: str) -> str:
    """``/subscriptions/S/resourceGroups/G``."""
    return f"{subscription_scope(subscription_id)}/resourceGroups/{group}"


def groups_collection(subscription_id: str) -> str:
    """``/subscriptions/S/resourceGroups``: the subscription's resource groups."""
    return f"{subscription_scope(subscription_id)}/resourceGroups"


def provider_id(subscription_id: str, namespace: str | None = None) -> str:
    """``/subscriptions/S/providers[/Namespace]``: a resource provider's registration, or all of them."""
    base = f"{subscription_scope(subscription_id)}/providers"
    return f"{base}/{namespace}" if namespace else base


def resource_id(subscription_id: str, group: str, namespace: str, resource_type: str, name: str) -> str:
    """``/subscriptions/S/resourceGroups/G/providers/Namespace/type/name``: one top-level resource."""
    return f"{resources_collection(subscription_id, namespace, resource_type, group)}/{name}"


def resources_collection(subscription_id: str, namespace: str, resource_type: str, group: str | None = None) -> str:
    """The list path of a resource type: in resource group ``group``, or (None) in the whole subscription."""
    scope = group_scope(subscription_id, group) if group else subscription_scope(subscription_id)
    return f"{scope}/providers/{namespace}/{resource_type}"


def extension_id(scope: str, namespace: str, resource_type: str, name: str | None = None) -> str:
    """``{scope}/providers/Namespace/type[/name]``: a resource (or the collection) that extends another resource or a
    scope: role assignments of a group, extensions of a connected cluster."""
    base = f"{scope.rstrip('/')}/providers/{namespace}/{resource_type}"
    return f"{base}/{name}" if name else base


def all_resources(subscription_id: str) -> str:
    """``/subscriptions/S/resources``: every resource of the subscription (``az resource list``)."""
    return f"{subscription_scope(subscription_id)}/resources"


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
