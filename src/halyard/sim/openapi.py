"""The OpenAPI documents kubectl and helm read before create/apply, and ``kubectl explain`` renders. Free of I/O.

``/openapi/v2`` is answered with an empty protobuf document: kubectl 1.28 needs a parseable v2 to decide that the
server supports field validation, and falls back to its compiled-in types for patch computation. ``/openapi/v3``
carries real schemas (generated from lightkube-models for built-ins, taken from the CRD for custom resources).
"""

from __future__ import annotations

import functools
import hashlib
import json
from collections.abc import Iterable
from typing import Any

from halyard.sim.resources import BUILTIN, ResourceType
from halyard.sim.schemas import SchemaSet, definition_name, schemas_for

V2_CONTENT_TYPE = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf"
V3_CONTENT_TYPE = "application/json"

_PARAMS_WRITE = [
    {"name": "dryRun", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldManager", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
    {"name": "fieldValidation", "in": "query", "schema": {"type": "string", "uniqueItems": True}},
]
_PARAMS_PATCH = [
    *_PARAMS_WRITE,
    {"name": "force", "in": "query", "schema": {"type": "boolean", "uniqueItems": True}},
]


def gv_path(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


def _operations(t: ResourceType, ref: str) -> dict[str, dict[str, Any]]:
    gvk = {"group": t.group, "version": t.version, "kind": t.kind}
    body = {"content": {"application/json": {"schema": {"$ref": ref}}}}
    resp = {"200": {"description": "OK", **body}}
    base = f"/{gv_path(t.group, t.version)}"
    ns = "/namespaces/{namespace}" if t.namespaced else ""
    collection = f"{base}{ns}/{t.plural}"
    paths: dict[str, dict[str, Any]] = {}
    if "create" in t.verbs:
        paths[collection] = {
            "post": {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS_WRITE,
                "requestBody": body,
                "responses": {"201": resp["200"], **resp},
            },
        }
    if "list" in t.verbs:
        paths.setdefault(collection, {})["get"] = {"x-kubernetes-group-version-kind": gvk, "responses": resp}
    if "get" in t.verbs:
        paths[f"{collection}/{{name}}"] = {
            "get": {"x-kubernetes-group-version-kind": gvk, "responses": resp},
            "put": {
                "x-kubernetes-group-version-kind": gvk,
                "parameters": _PARAMS_WRITE,
                "requestBody": body,
                "responses": resp,
            },
            "patch": {"x-kubernetes-group-version-kind": gvk, "parameters": _PARAMS_PATCH, "responses": resp},
            "delete": {"x-kubernetes-group-version-kind": gvk, "responses": resp},
        }
    return paths  # fmt: skip


def _document(paths: dict[str, Any], schemas: dict[str, Any], version: str) -> dict[str, Any]:
    return {
        "openapi": "3.0.0",
        "info": {"title": "Kubernetes", "version": version},
        "paths": paths,
        "components": {"schemas": schemas},
    }


@functools.lru_cache(maxsize=32)
def builtin_document(group: str, version: str, k8s_version: str) -> tuple[bytes, str]:
    """The v3 document of a built-in group/version, serialised, and its hash. Shared by every cluster."""
    members = [t for t in BUILTIN if t.group == group and t.version == version and t.model_module]
    schemas: dict[str, Any] = {}
    paths: dict[str, Any] = {}
    by_module: dict[str, list[tuple[str, str, str]]] = {}
    for t in members:
        by_module.setdefault(t.model_module, []).append((t.group, t.version, t.kind))
    for module, kinds in by_module.items():
        schemas.update(schemas_for(module, tuple(kinds)))
    for t in members:
        paths.update(_operations(t, f"#/components/schemas/{definition_name(t.model_module, t.kind)}"))
    body = json.dumps(_document(paths, schemas, k8s_version), separators=(",", ":")).encode()
    return body, hashlib.sha512(body).hexdigest()[:64].upper()


def _crd_definition_name(group: str, version: str, kind: str) -> str:
    return ".".join(reversed(group.split("."))) + f".{version}.{kind}"


def custom_document(types: Iterable[ResourceType], k8s_version: str) -> tuple[bytes, str]:
    """The v3 document of one custom group/version, from the CRDs' ``openAPIV3Schema``."""
    schemas = dict(_meta_schemas())
    meta_ref = f"#/components/schemas/{definition_name('meta_v1', 'ObjectMeta')}"
    paths: dict[str, Any] = {}
    for t in types:
        version_spec: dict[str, Any] = next(
            (v for v in (t.crd or {}).get("spec", {}).get("versions", []) if v.get("name") == t.version), {}
        )
        schema = json.loads(json.dumps((version_spec.get("schema") or {}).get("openAPIV3Schema") or {}))
        schema.setdefault("type", "object")
        props = schema.setdefault("properties", {})
        props.setdefault("apiVersion", {"type": "string"})
        props.setdefault("kind", {"type": "string"})
        props["metadata"] = {"allOf": [{"$ref": meta_ref}]}
        schema["x-kubernetes-group-version-kind"] = [{"group": t.group, "version": t.version, "kind": t.kind}]
        name = _crd_definition_name(t.group, t.version, t.kind)
        schemas[name] = schema
        paths.update(_operations(t, f"#/components/schemas/{name}"))
    body = json.dumps(_document(paths, schemas, k8s_version), separators=(",", ":")).encode()
    return body, hashlib.sha512(body).hexdigest()[:64].upper()


@functools.lru_cache(maxsize=1)
def _meta_schemas() -> dict[str, Any]:
    """ObjectMeta and what it refers to: the part of a custom resource's schema its CRD does not give."""
    s = SchemaSet()
    s.ref_for("meta_v1", "ObjectMeta")
    return s.schemas


def root_document(prefix: str, hashes: dict[str, str]) -> dict[str, Any]:
    """``/openapi/v3``: one entry per group/version. URLs carry the cluster prefix, as client-go uses them as is."""
    return {"paths": {gv: {"serverRelativeURL": f"{prefix}/openapi/v3/{gv}?hash={h}"} for gv, h in hashes.items()}}
