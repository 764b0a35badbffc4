"""Patch application, free of I/O: JSON merge patch, JSON patch and strategic merge patch.

Server-side apply lives in :mod:`halyard.sim.fieldmanager` because it needs field ownership.
"""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch

from halyard.sim.errors import ApiError
from halyard.sim.merge_keys import MERGED_SCALAR_LISTS, merge_key

JSON_PATCH = "application/json-patch+json"
MERGE_PATCH = "application/merge-patch+json"
STRATEGIC_PATCH = "application/strategic-merge-patch+json"
APPLY_PATCH = "application/apply-patch+yaml"
APPLY_PATCH_CBOR = "application/apply-patch+cbor"


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386: objects merge recursively, ``null`` removes, anything else replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def json_patch(target: dict[str, Any], operations: Any) -> dict[str, Any]:
    """RFC 6902. A failed ``test`` or a bad path is a 422, as on a real server."""
    if not isinstance(operations, list):
        raise ApiError(400, "json patch must be a list of operations")
    try:
        result = jsonpatch.apply_patch(target, operations, in_place=False)
    except jsonpatch.JsonPatchTestFailed as e:
        raise ApiError(422, f"the server rejected our request due to an error in our request: {e}") from e
    except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException, KeyError, IndexError) as e:
        raise ApiError(422, f"the server rejected our request due to an error in our request: {e}") from e
    if not isinstance(result, dict):
        raise ApiError(422, "json patch result is not an object")
    return result


def strategic_merge(original: Any, patch: Any, field: str = "") -> Any:
    """Strategic merge patch for the common cases kubectl and helm send.

    Keyed lists (``containers`` by ``name``...) merge item by item; ``$patch: delete|replace|merge``,
    ``$setElementOrder/<list>``, ``$retainKeys``, ``$deleteFromPrimitiveList/<list>`` and ``null`` deletions are
    honoured. Lists with no known merge key are replaced, as their Go patch strategy says.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(original, dict):
        original = {}
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return None
    result = dict(original)
    orders: dict[str, list[Any]] = {}
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys"):
            continue
        if key.startswith("$setElementOrder/"):
            orders[key.split("/", 1)[1]] = value
            continue
        if key.startswith("$deleteFromPrimitiveList/"):
            name = key.split("/", 1)[1]
            result[name] = [v for v in result.get(name) or [] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list):
            result[key] = _merge_list(result.get(key), value, key)
        elif isinstance(value, dict):
            merged = strategic_merge(result.get(key), value, key)
            if merged is None:
                result.pop(key, None)
            else:
                result[key] = merged
        else:
            result[key] = value
    for name, order in orders.items():
        if isinstance(result.get(name), list):
            result[name] = _apply_order(result[name], order, name)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(original: Any, patch: list[Any], field: str) -> list[Any]:
    original = original if isinstance(original, list) else []
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [copy.deepcopy(i) for i in patch if not (isinstance(i, dict) and "$patch" in i)]
    key = merge_key(field, [*original, *patch])
    if key is None:
        if field in MERGED_SCALAR_LISTS and all(not isinstance(i, dict) for i in patch):
            return [*original, *(v for v in patch if v not in original)]
        return copy.deepcopy(patch)
    result = [copy.deepcopy(i) for i in original]
    for item in patch:
        if not isinstance(item, dict):
            continue
        idx = next((n for n, o in enumerate(result) if isinstance(o, dict) and o.get(key) == item.get(key)), None)
        if item.get("$patch") == "delete":
            if idx is not None:
                result.pop(idx)
            continue
        if idx is None:
            result.append({k: copy.deepcopy(v) for k, v in item.items() if k != "$patch"})
        else:
            result[idx] = strategic_merge(result[idx], item, field)
    return result


def _apply_order(items: list[Any], order: list[Any], field: str) -> list[Any]:
    """Reorder ``items`` as ``$setElementOrder`` says; items it does not mention keep their place at the end."""
    if not order:
        return items
    if isinstance(order[0], dict):
        key = merge_key(field, order) or next(iter(order[0]))
        rank = {o.get(key): n for n, o in enumerate(order)}
        return sorted(items, key=lambda i: rank.get(i.get(key) if isinstance(i, dict) else None, len(rank)))
    rank = {v: n for n, v in enumerate(order)}
    return sorted(items, key=lambda i: rank.get(i, len(rank)))
