"""Custom resources checked against their CRD's structural schema: pruning, types, required, enums, bounds.

Pure: :func:`check` returns the pruned object, the unknown fields it dropped, and the validation errors as
(reason, field, message) causes, worded as the real API server words them.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from typing import Any

_TYPES: dict[str, tuple[type, ...]] = {
    "object": (dict,),
    "array": (list,),
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
}
# The top-level fields every object has, which the CRD schema does not govern.
_ENVELOPE = ("apiVersion", "kind", "metadata")


@dataclass
class Result:
    obj: dict[str, Any]
    unknown: list[str] = field(default_factory=list)
    causes: list[tuple[str, str, str]] = field(default_factory=list)


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def check(schema: dict[str, Any], obj: dict[str, Any]) -> Result:
    """Prune and validate ``obj`` against a CRD version's ``openAPIV3Schema``."""
    out = copy.deepcopy(obj)
    result = Result(out)
    body = {k: v for k, v in out.items() if k not in _ENVELOPE}
    props = dict(schema.get("properties") or {})
    for k in _ENVELOPE:
        props.pop(k, None)
    top = {**schema, "properties": props}
    _walk(top, body, "", result)
    for k in list(out):
        if k not in _ENVELOPE:
            if k in body:
                out[k] = body[k]
            else:
                del out[k]
    return result


def _walk(schema: dict[str, Any], value: Any, path: str, result: Result) -> None:
    kind = schema.get("type")
    if value is None:
        if not schema.get("nullable"):
            result.causes.append(("FieldValueTypeInvalid", path, f'Invalid value: "null": {path} in body must be of '
                                  f"type {kind}"))  # fmt: skip
        return
    if schema.get("x-kubernetes-int-or-string"):
        if not isinstance(value, int | str) or isinstance(value, bool):
            result.causes.append(("FieldValueTypeInvalid", path,
                                  f'Invalid value: "{_type_name(value)}": {path} in body must be of type '
                                  "integer or string"))  # fmt: skip
        return
    if kind in _TYPES and (not isinstance(value, _TYPES[kind]) or (kind in ("integer", "number")
                                                                   and isinstance(value, bool))):  # fmt: skip
        result.causes.append(("FieldValueTypeInvalid", path, f'Invalid value: "{_type_name(value)}": {path} in body '
                              f'must be of type {kind}: "{_type_name(value)}"'))  # fmt: skip
        return
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(f'"{v}"' for v in schema["enum"])
        result.causes.append(("FieldValueNotSupported", path, f'Unsupported value: "{value}": supported values: '
                              f"{allowed}"))  # fmt: skip
    if isinstance(value, int | float) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            result.causes.append(("FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be "
                                  f"greater than or equal to {schema['minimum']}"))  # fmt: skip
        if "maximum" in schema and value > schema["maximum"]:
            result.causes.append(("FieldValueInvalid", path, f"Invalid value: {value}: {path} in body should be "
                                  f"less than or equal to {schema['maximum']}"))  # fmt: skip
    if isinstance(value, str):
        if "pattern" in schema and not re.search(schema["pattern"], value):
            result.causes.append(("FieldValueInvalid", path, f'Invalid value: "{value}": {path} in body should '
                                  f"match '{schema['pattern']}'"))  # fmt: skip
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            result.causes.append(("FieldValueTooLong", path, f"Too long: may not be longer than {schema['maxLength']}"))
    if isinstance(value, dict):
        _walk_object(schema, value, path, result)
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            _walk(schema["items"], item, f"{path}[{i}]", result)


def _walk_object(schema: dict[str, Any], value: dict[str, Any], path: str, result: Result) -> None:
    props = schema.get("properties")
    extra = schema.get("additionalProperties")
    for name in schema.get("required") or []:
        if name not in value:
            result.causes.append(("FieldValueRequired", _join(path, name), "Required value"))
    for key in list(value):
        sub = _join(path, key)
        if props is not None and key in props:
            _walk(props[key], value[key], sub, result)
        elif isinstance(extra, dict):
            _walk(extra, value[key], sub, result)
        elif extra is True or schema.get("x-kubernetes-preserve-unknown-fields") or (props is None and not extra):
            continue
        else:
            result.unknown.append(sub)
            del value[key]


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key
