"""Which lists are keyed maps (merged item by item) rather than atomic values.

Strategic merge patch and server-side apply both need this; the real server reads it from the Go struct tags
(``patchMergeKey``). This is the table of the common fields, the ones kubectl, helm and the agents write.
"""

from __future__ import annotations

from typing import Any

# field name -> merge keys, in order of preference (the first key present in the items wins).
LIST_KEYS: dict[str, tuple[str, ...]] = {
    "containers": ("name",),
    "initContainers": ("name",),
    "ephemeralContainers": ("name",),
    "env": ("name",),
    "volumes": ("name",),
    "volumeMounts": ("mountPath",),
    "volumeDevices": ("devicePath",),
    "imagePullSecrets": ("name",),
    "ports": ("containerPort", "port"),
    "conditions": ("type",),
    "hostAliases": ("ip",),
    "topologySpreadConstraints": ("topologyKey",),
    "ownerReferences": ("uid",),
    "addresses": ("type",),
    "secrets": ("name",),
    "resourceClaims": ("name",),
}
# Lists of scalars whose patch strategy is "merge" (items added, not replaced).
MERGED_SCALAR_LISTS = frozenset({"finalizers"})


def merge_key(field: str, items: list[Any]) -> str | None:
    """The key that identifies items of the list ``field``, or None when the list is atomic."""
    keys = LIST_KEYS.get(field)
    if not keys:
        return None
    dict_items = [i for i in items if isinstance(i, dict)]
    if not dict_items:
        return keys[0] if not items else None
    for k in keys:
        if any(k in i for i in dict_items):
            return k
    return None
