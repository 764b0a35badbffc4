"""Label and field selectors: parsed once per request, matched against plain object dicts."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from halyard.sim.errors import ApiError

_KEY = re.compile(r"^([a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?/)?[a-z0-9A-Z]([-a-z0-9A-Z_.]*[a-z0-9A-Z])?$")


@dataclass(frozen=True, slots=True)
class Requirement:
    key: str
    op: str  # "=", "!=", "in", "notin", "exists", "!"
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op == "exists":
            return present
        if self.op == "!":
            return not present
        if self.op == "=":
            return present and labels[self.key] in self.values
        if self.op == "in":
            return present and labels[self.key] in self.values
        if self.op == "!=":
            return not present or labels[self.key] not in self.values
        return not present or labels[self.key] not in self.values  # notin


def _split_top(text: str) -> list[str]:
    """Split on commas that are not inside ``( )`` of a set-based requirement."""
    parts: list[str] = []
    cur: list[str] = []
    depth = 0
    for ch in text:
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        if ch == "," and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p.strip() for p in parts if p.strip()]


def _bad(selector: str, why: str) -> ApiError:
    return ApiError(400, f'unable to parse requirement: {why} in selector "{selector}"')


def parse_label_selector(text: str) -> list[Requirement]:
    """Parse the string form (``a=b,c!=d,e in (f,g),!h``). Raises a 400 ApiError for bad syntax."""
    reqs = []
    for part in _split_top(text or ""):
        m = re.match(r"^(\S+)\s+(in|notin)\s*\((.*)\)$", part)
        if m:
            values = frozenset(v.strip() for v in m.group(3).split(",") if v.strip())
            reqs.append(Requirement(m.group(1), m.group(2), values))
            continue
        for op, norm in (("==", "="), ("!=", "!="), ("=", "=")):
            if op in part:
                key, _, value = part.partition(op)
                key, value = key.strip(), value.strip()
                if not _KEY.match(key):
                    raise _bad(text, f"invalid label key {key!r}")
                reqs.append(Requirement(key, norm, frozenset([value])))
                break
        else:
            if part.startswith("!"):
                reqs.append(Requirement(part[1:].strip(), "!"))
            elif _KEY.match(part):
                reqs.append(Requirement(part, "exists"))
            else:
                raise _bad(text, f"invalid requirement {part!r}")
    return reqs


def selector_from_label_selector(sel: Mapping[str, Any] | None) -> list[Requirement]:
    """The requirements of a ``LabelSelector`` object (``matchLabels`` and ``matchExpressions``)."""
    if not sel:
        return []
    reqs = [Requirement(k, "=", frozenset([str(v)])) for k, v in (sel.get("matchLabels") or {}).items()]
    ops = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
    for e in sel.get("matchExpressions") or []:
        reqs.append(Requirement(e["key"], ops[e["operator"]], frozenset(e.get("values") or [])))
    return reqs


def labels_match(reqs: list[Requirement], obj: Mapping[str, Any]) -> bool:
    if not reqs:
        return True
    labels = (obj.get("metadata") or {}).get("labels") or {}
    return all(r.matches(labels) for r in reqs)


@dataclass(frozen=True, slots=True)
class FieldRequirement:
    path: tuple[str, ...]
    value: str
    equal: bool


def parse_field_selector(text: str) -> list[FieldRequirement]:
    """Parse ``metadata.name=x,status.phase!=Running``: any dotted path, equality and inequality."""
    reqs = []
    for part in (p.strip() for p in (text or "").split(",")):
        if not part:
            continue
        for op, equal in (("!=", False), ("==", True), ("=", True)):
            if op in part:
                key, _, value = part.partition(op)
                reqs.append(FieldRequirement(tuple(key.strip().split(".")), value.strip(), equal))
                break
        else:
            raise ApiError(400, f'invalid field selector: "{part}": no operator')
    return reqs


def _field_value(obj: Mapping[str, Any], path: tuple[str, ...]) -> str:
    cur: Any = obj
    for p in path:
        if not isinstance(cur, Mapping):
            return ""
        cur = cur.get(p)
    if cur is None:
        return ""
    if isinstance(cur, bool):
        return "true" if cur else "false"
    return str(cur)


def fields_match(reqs: list[FieldRequirement], obj: Mapping[str, Any]) -> bool:
    return all((_field_value(obj, r.path) == r.value) == r.equal for r in reqs)
