"""Server-side apply: field ownership (``managedFields``), conflicts and the apply merge. Free of I/O.

A field is named by a path of FieldsV1 segments: ``f:<name>`` for a map key, ``k:{"name":"x"}`` for an item of
a keyed list. Each manager owns a set of paths; the object's ``metadata.managedFields`` is that map serialised.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from typing import Any

from halyard.sim.errors import ApiError
from halyard.sim.merge_keys import merge_key

Path = tuple[str, ...]

# Fields the server owns, never a manager (the real field manager strips them too).
_IGNORED: frozenset[Path] = frozenset(
    {("f:apiVersion",), ("f:kind",)}
    | {
        ("f:metadata", f"f:{n}")
        for n in (
            "name", "namespace", "uid", "resourceVersion", "generation", "creationTimestamp", "managedFields",
            "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "generateName",
        )
    }
)  # fmt: skip


def field_set(obj: Any, prefix: Path = ()) -> set[Path]:
    """The leaf fields set in ``obj`` (maps recursed, keyed lists recursed by key, other lists atomic)."""
    out: set[Path] = set()
    if not isinstance(obj, dict):
        return out
    for key, value in obj.items():
        p = (*prefix, f"f:{key}")
        if p in _IGNORED:
            continue
        if isinstance(value, dict) and value:
            out |= field_set(value, p)
        elif isinstance(value, list) and value and all(isinstance(i, dict) for i in value):
            mk = merge_key(key, value)
            if mk is None or any(mk not in i for i in value):
                out.add(p)
                continue
            for item in value:
                ip = (*p, _key_segment(mk, item[mk]))
                out.add(ip)
                out |= field_set(item, ip)
        else:
            out.add(p)
    return out


def _key_segment(key: str, value: Any) -> str:
    return "k:" + json.dumps({key: value}, separators=(",", ":"))


def to_fieldsv1(paths: set[Path]) -> dict[str, Any]:
    root: dict[str, Any] = {}
    for path in sorted(paths):
        node = root
        for seg in path:
            node = node.setdefault(seg, {})
        if path and path[-1].startswith("k:"):
            node.setdefault(".", {})
    return root


def from_fieldsv1(tree: dict[str, Any], prefix: Path = ()) -> set[Path]:
    out: set[Path] = set()
    for key, sub in tree.items():
        if key == ".":
            out.add(prefix)
        elif not sub:
            out.add((*prefix, key))
        else:
            out |= from_fieldsv1(sub, (*prefix, key))
    return out


def _find_item(items: list[Any], seg: str) -> int | None:
    want = json.loads(seg[2:])
    for n, item in enumerate(items):
        if isinstance(item, dict) and all(item.get(k) == v for k, v in want.items()):
            return n
    return None


def get_path(obj: Any, path: Path) -> tuple[bool, Any]:
    cur = obj
    for seg in path:
        if seg.startswith("f:") and isinstance(cur, dict) and seg[2:] in cur:
            cur = cur[seg[2:]]
        elif seg.startswith("k:") and isinstance(cur, list):
            idx = _find_item(cur, seg)
            if idx is None:
                return False, None
            cur = cur[idx]
        else:
            return False, None
    return True, cur


def remove_path(obj: Any, path: Path) -> None:
    found, parent = get_path(obj, path[:-1])
    if not found:
        return
    seg = path[-1]
    if seg.startswith("f:") and isinstance(parent, dict):
        parent.pop(seg[2:], None)
    elif seg.startswith("k:") and isinstance(parent, list):
        idx = _find_item(parent, seg)
        if idx is not None:
            parent.pop(idx)


def display_path(path: Path) -> str:
    """``.spec.containers[name="nginx"].image``, the form real conflict messages use."""
    out = ""
    for seg in path:
        if seg.startswith("f:"):
            out += "." + seg[2:]
        else:
            out += "[" + ",".join(f"{k}={json.dumps(v)}" for k, v in json.loads(seg[2:]).items()) + "]"
    return out


def apply_merge(live: Any, config: Any, field: str = "") -> Any:
    """Merge an apply configuration into the live object: maps and keyed lists merge, the rest is replaced."""
    if isinstance(config, dict) and isinstance(live, dict):
        result = dict(live)
        for key, value in config.items():
            result[key] = apply_merge(live.get(key), value, key)
        return result
    if isinstance(config, list) and isinstance(live, list) and config:
        mk = merge_key(field, config)
        if mk and all(isinstance(i, dict) and mk in i for i in config):
            items = [copy.deepcopy(i) for i in live]
            for item in config:
                idx = next((n for n, o in enumerate(items) if isinstance(o, dict) and o.get(mk) == item[mk]), None)
                if idx is None:
                    items.append(copy.deepcopy(item))
                else:
                    items[idx] = apply_merge(items[idx], item, field)
            return items
    return copy.deepcopy(config)


@dataclass
class Manager:
    name: str
    operation: str  # "Apply" or "Update"
    api_version: str
    time: str
    fields: set[Path]
    subresource: str = ""

    def entry(self) -> dict[str, Any]:
        e: dict[str, Any] = {
            "manager": self.name,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": to_fieldsv1(self.fields),
        }
        if self.subresource:
            e["subresource"] = self.subresource
        return e


def read_managers(obj: dict[str, Any] | None) -> list[Manager]:
    entries = ((obj or {}).get("metadata") or {}).get("managedFields") or []
    return [
        Manager(
            e.get("manager", ""),
            e.get("operation", "Update"),
            e.get("apiVersion", ""),
            e.get("time", ""),
            from_fieldsv1(e.get("fieldsV1") or {}),
            e.get("subresource", ""),
        )
        for e in entries
    ]


def _scope(paths: set[Path], subresource: str) -> set[Path]:
    """Status is written through the status subresource, everything else through the main resource."""
    if subresource == "status":
        return {p for p in paths if p[:1] == ("f:status",)}
    return {p for p in paths if p[:1] != ("f:status",)}


def _manager(managers: list[Manager], name: str, operation: str, subresource: str) -> Manager | None:
    for m in managers:
        if m.name == name and m.operation == operation and m.subresource == subresource:
            return m
    return None


def apply(
    live: dict[str, Any] | None,
    config: dict[str, Any],
    manager: str,
    *,
    force: bool,
    api_version: str,
    now: str,
    subresource: str = "",
) -> dict[str, Any]:
    """The object after ``manager`` applies ``config``; raises a 409 listing conflicts unless ``force``."""
    managers = read_managers(live)
    wanted = _scope(field_set(config), subresource)
    conflicts: list[tuple[str, Path]] = []
    for m in managers:
        if m.name == manager and m.operation == "Apply":
            continue
        for path in sorted(m.fields & wanted):
            if path[-1].startswith("k:"):
                continue
            _, live_value = get_path(live, path)
            _, new_value = get_path(config, path)
            if live_value != new_value:
                conflicts.append((m.name, path))
    if conflicts and not force:
        raise _conflict_error(conflicts)
    if force:
        # Forcing takes the conflicting fields; fields with equal values stay shared, as on a real server.
        taken = {(name, path) for name, path in conflicts}
        for m in managers:
            m.fields -= {path for name, path in taken if name == m.name}
    merged = apply_merge(copy.deepcopy(live) if live else {}, config)
    mine = _manager(managers, manager, "Apply", subresource)
    others: set[Path] = set()
    for m in managers:
        if m is not mine:
            others |= m.fields
    if mine is not None:
        for path in sorted(mine.fields - wanted - others, key=len, reverse=True):
            remove_path(merged, path)
        mine.fields = wanted
        mine.time = now
        mine.api_version = api_version
    else:
        managers.append(Manager(manager, "Apply", api_version, now, wanted, subresource))
    _store(merged, managers)
    return merged


def record_update(
    old: dict[str, Any] | None,
    new: dict[str, Any],
    manager: str,
    *,
    api_version: str,
    now: str,
    subresource: str = "",
) -> None:
    """Give ``manager`` (operation Update) the fields a create, update or patch changed; set ``managedFields``."""
    managers = read_managers(old)
    new_fields = field_set(new)
    changed = set()
    for path in _scope(new_fields, subresource):
        _, before = get_path(old, path)
        _, after = get_path(new, path)
        if old is None or before != after or not get_path(old, path)[0]:
            changed.add(path)
    for m in managers:
        m.fields = (m.fields - changed) & new_fields
    if changed:
        mine = _manager(managers, manager, "Update", subresource)
        if mine is None:
            managers.append(Manager(manager, "Update", api_version, now, changed, subresource))
        else:
            mine.fields |= changed
            mine.time = now
    _store(new, managers)


def _store(obj: dict[str, Any], managers: list[Manager]) -> None:
    entries = [m.entry() for m in managers if m.fields]
    meta = obj.setdefault("metadata", {})
    if entries:
        meta["managedFields"] = entries
    else:
        meta.pop("managedFields", None)


def _conflict_error(conflicts: list[tuple[str, Path]]) -> ApiError:
    causes = [
        {"reason": "FieldManagerConflict", "message": f'conflict with "{m}"', "field": display_path(p)}
        for m, p in conflicts
    ]
    if len(conflicts) == 1:
        m, p = conflicts[0]
        message = f'Apply failed with 1 conflict: conflict with "{m}": {display_path(p)}'
    else:
        lines = "\n".join(f'conflict with "{m}": {display_path(p)}' for m, p in conflicts)
        message = f"Apply failed with {len(conflicts)} conflicts: {lines}"
    return ApiError(409, message, reason="Conflict", details={"causes": causes})
