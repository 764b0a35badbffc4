"""OpenAPI schemas of the built-in kinds, generated from lightkube-models (the Kubernetes OpenAPI as dataclasses).

Generated once per process and shared by every virtual cluster. The same schemas drive ``kubectl explain``
(served in the OpenAPI v3 documents) and strict field validation (``fieldValidation=Strict``).
"""

from __future__ import annotations

import functools
import importlib
import re
from typing import Any

from halyard.sim.merge_keys import LIST_KEYS

# lightkube module -> OpenAPI definition prefix used by the real API server.
_PACKAGES = {
    "meta_v1": "io.k8s.apimachinery.pkg.apis.meta.v1",
    "util_intstr": "io.k8s.apimachinery.pkg.util.intstr",
    "resource": "io.k8s.apimachinery.pkg.api.resource",
    "runtime": "io.k8s.apimachinery.pkg.runtime",
    "apiextensions_v1": "io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.v1",
}
# Type aliases lightkube flattens to Python types, with the schema the real server gives them.
_ALIASES: dict[str, dict[str, Any]] = {
    "IntOrString": {"type": "string", "format": "int-or-string", "x-kubernetes-int-or-string": True},
    "Quantity": {"type": "string", "format": "quantity"},
    "Time": {"type": "string", "format": "date-time"},
    "MicroTime": {"type": "string", "format": "date-time"},
    "RawExtension": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
    "JSON": {"x-kubernetes-preserve-unknown-fields": True},
    "JSONSchemaPropsOrArray": {"x-kubernetes-preserve-unknown-fields": True},
    "JSONSchemaPropsOrBool": {"x-kubernetes-preserve-unknown-fields": True},
    "JSONSchemaPropsOrStringArray": {"x-kubernetes-preserve-unknown-fields": True},
    "FieldsV1": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
}
_SCALARS: dict[str, dict[str, Any]] = {
    "str": {"type": "string"},
    "int": {"type": "integer", "format": "int64"},
    "float": {"type": "number", "format": "double"},
    "bool": {"type": "boolean"},
    "datetime": {"type": "string", "format": "date-time"},
    "dict": {"type": "object", "additionalProperties": {"type": "string", "default": ""}},
    "Any": {"x-kubernetes-preserve-unknown-fields": True},
}


def _model(module: str, cls: str) -> Any:
    """The lightkube model class (a msgspec Struct), or None when ``cls`` is not a model."""
    obj = getattr(importlib.import_module(f"lightkube.models.{module}"), cls, None)
    return obj if hasattr(obj, "__struct_fields__") else None


def _model_fields(klass: Any) -> list[tuple[str, str, str]]:
    """(json name, python name, annotation text) of every field of a model."""
    names = klass.__struct_fields__
    encoded = getattr(klass, "__struct_encode_fields__", names)
    return [(j, n, str(klass.__annotations__.get(n, "Any"))) for n, j in zip(names, encoded, strict=True)]


def definition_name(module: str, cls: str) -> str:
    pkg = _PACKAGES.get(module)
    if pkg is None:
        group, _, version = module.rpartition("_")
        pkg = f"io.k8s.api.{group}.{version}"
    return f"{pkg}.{cls}"


def _descriptions(doc: str) -> dict[str, str]:
    """Field descriptions from a lightkube docstring's ``**parameters**`` list."""
    out: dict[str, str] = {}
    current = None
    for line in doc.splitlines():
        m = re.match(r"\s*\* \*\*(\w+)\*\* ``[^`]*`` - (.*)", line)
        if m:
            current = m.group(1)
            out[current] = m.group(2).strip()
        elif current and line.strip() and not line.strip().startswith("**"):
            out[current] += " " + line.strip()
    return out


def _class_description(doc: str) -> str:
    text = doc.split("**parameters**")[0]
    return " ".join(line.strip() for line in text.splitlines() if line.strip())


class SchemaSet:
    """Builds ``components.schemas`` entries on demand, following references transitively."""

    def __init__(self) -> None:
        self.schemas: dict[str, dict[str, Any]] = {}

    def ref_for(self, module: str, cls: str) -> str:
        name = definition_name(module, cls)
        if name not in self.schemas:
            self.schemas[name] = {}  # placeholder against cycles (JSONSchemaProps refers to itself)
            self.schemas[name] = self._build(module, cls)
        return name

    def _type(self, text: str, module: str) -> dict[str, Any]:
        text = text.strip()
        m = re.fullmatch(r"Optional\[(.*)\]", text)
        if m:
            return self._type(m.group(1), module)
        m = re.fullmatch(r"List\[(.*)\]", text)
        if m:
            return {"type": "array", "items": self._type(m.group(1), module)}
        m = re.fullmatch(r"Dict\[str, (.*)\]", text)
        if m:
            return {"type": "object", "additionalProperties": self._type(m.group(1), module)}
        if text in _SCALARS:
            return dict(_SCALARS[text])
        mod, _, name = text.rpartition(".")
        mod = mod or module
        if name in _ALIASES:
            return dict(_ALIASES[name])
        if _model(mod, name) is None:
            return {"x-kubernetes-preserve-unknown-fields": True}
        return {"$ref": f"#/components/schemas/{self.ref_for(mod, name)}"}

    def _build(self, module: str, cls: str) -> dict[str, Any]:
        klass = _model(module, cls)
        doc = klass.__doc__ or ""
        descriptions = _descriptions(doc)
        props: dict[str, Any] = {}
        required = []
        for json_name, py_name, annotation in _model_fields(klass):
            schema = self._type(annotation, module)
            if "$ref" in schema:
                schema = {"allOf": [schema]}
            if descriptions.get(py_name):
                schema["description"] = descriptions[py_name]
            if schema.get("type") == "array" and json_name in LIST_KEYS:
                schema["x-kubernetes-list-type"] = "map"
                schema["x-kubernetes-patch-merge-key"] = LIST_KEYS[json_name][0]
                schema["x-kubernetes-patch-strategy"] = "merge"
            props[json_name] = schema
            if not str(annotation).startswith("Optional"):
                required.append(json_name)
        out: dict[str, Any] = {"description": _class_description(doc), "type": "object", "properties": props}
        if required:
            out["required"] = required
        return out


@functools.lru_cache(maxsize=64)
def schemas_for(module: str, kinds: tuple[tuple[str, str, str], ...]) -> dict[str, dict[str, Any]]:
    """``components.schemas`` for the kinds ``(group, version, kind)`` of one lightkube module, GVK-tagged."""
    s = SchemaSet()
    for group, version, kind in kinds:
        name = s.ref_for(module, kind)
        s.schemas[name]["x-kubernetes-group-version-kind"] = [{"group": group, "kind": kind, "version": version}]
    return s.schemas


@functools.lru_cache(maxsize=256)
def _fields_of(module: str, cls: str) -> dict[str, str]:
    return {j: a for j, _, a in _model_fields(_model(module, cls))}


def unknown_fields(module: str, kind: str, obj: dict[str, Any]) -> list[str]:
    """Dotted paths of fields in ``obj`` that its kind's schema does not declare (strict validation)."""
    out: list[str] = []
    try:
        _walk(module, kind, obj, "", out)
    except (ImportError, AttributeError, TypeError):
        return []
    return out


def _walk(module: str, cls: str, obj: Any, prefix: str, out: list[str]) -> None:
    if not isinstance(obj, dict):
        return
    fields = _fields_of(module, cls)
    for key, value in obj.items():
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            out.append(path)
            continue
        _walk_type(fields[key], module, value, path, out)


def _walk_type(text: str, module: str, value: Any, path: str, out: list[str]) -> None:
    m = re.fullmatch(r"Optional\[(.*)\]", text)
    if m:
        text = m.group(1)
    m = re.fullmatch(r"List\[(.*)\]", text)
    if m:
        if isinstance(value, list):
            for i, item in enumerate(value):
                _walk_type(m.group(1), module, item, f"{path}[{i}]", out)
        return
    if text in _SCALARS:
        return
    mod, _, name = text.rpartition(".")
    mod = mod or module
    if name in _ALIASES:
        return
    if _model(mod, name) is not None:
        _walk(mod, name, value, path, out)
