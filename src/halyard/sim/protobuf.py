"""Decoding of Kubernetes protobuf request bodies (the ``k8s\\x00`` envelope), for the kinds clients send so.

client-go ≥ 0.31 (helm 3.17, kubectl 1.32+) sends typed-client bodies as protobuf: helm's release Secrets, the
``auth can-i`` SelfSubjectAccessReview. A 415 there is fatal to those clients, so this decodes them into the same
dicts a JSON body would give. A hand-written wire decoder driven by a small table of message descriptors; kinds not
in the table get a 415 with a clear message (replies are always JSON, which every client accepts).
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from typing import Any

from halyard.sim.errors import ApiError

MAGIC = b"k8s\x00"

# message -> field number -> (json name, type). Types: string, bytes, int, bool, time, rawjson, msg:<name>,
# map:<value type>, and a leading "*" for repeated fields. Field numbers are those of k8s.io/api's generated.proto.
MESSAGES: dict[str, dict[int, tuple[str, str]]] = {
    "Unknown": {1: ("typeMeta", "msg:TypeMeta"), 2: ("raw", "bytes"), 3: ("contentEncoding", "string"),
                4: ("contentType", "string")},
    "TypeMeta": {1: ("apiVersion", "string"), 2: ("kind", "string")},
    "ObjectMeta": {
        1: ("name", "string"), 2: ("generateName", "string"), 3: ("namespace", "string"), 4: ("selfLink", "string"),
        5: ("uid", "string"), 6: ("resourceVersion", "string"), 7: ("generation", "int"),
        8: ("creationTimestamp", "time"), 9: ("deletionTimestamp", "time"), 10: ("deletionGracePeriodSeconds", "int"),
        11: ("labels", "map:string"), 12: ("annotations", "map:string"), 13: ("ownerReferences", "*msg:OwnerReference"),
        14: ("finalizers", "*string"), 17: ("managedFields", "*msg:ManagedFieldsEntry"),
    },
    "OwnerReference": {1: ("kind", "string"), 3: ("name", "string"), 4: ("uid", "string"), 5: ("apiVersion", "string"),
                       6: ("controller", "bool"), 7: ("blockOwnerDeletion", "bool")},
    "ManagedFieldsEntry": {1: ("manager", "string"), 2: ("operation", "string"), 3: ("apiVersion", "string"),
                           4: ("time", "time"), 6: ("fieldsType", "string"), 7: ("fieldsV1", "msg:FieldsV1"),
                           8: ("subresource", "string")},
    "FieldsV1": {1: ("Raw", "rawjson")},
    "Secret": {1: ("metadata", "msg:ObjectMeta"), 2: ("data", "map:bytes"), 3: ("type", "string"),
               4: ("stringData", "map:string"), 5: ("immutable", "bool")},
    "ConfigMap": {1: ("metadata", "msg:ObjectMeta"), 2: ("data", "map:string"), 3: ("binaryData", "map:bytes"),
                  4: ("immutable", "bool")},
    "Namespace": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:NamespaceSpec")},
    "NamespaceSpec": {1: ("finalizers", "*string")},
    "SelfSubjectAccessReview": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:SelfSubjectAccessReviewSpec")},
    "SelfSubjectAccessReviewSpec": {1: ("resourceAttributes", "msg:ResourceAttributes"),
                                    2: ("nonResourceAttributes", "msg:NonResourceAttributes")},
    "SubjectAccessReview": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:SubjectAccessReviewSpec")},
    "LocalSubjectAccessReview": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:SubjectAccessReviewSpec")},
    "SubjectAccessReviewSpec": {1: ("resourceAttributes", "msg:ResourceAttributes"),
                                2: ("nonResourceAttributes", "msg:NonResourceAttributes"), 3: ("user", "string"),
                                4: ("groups", "*string"), 6: ("uid", "string")},
    "ResourceAttributes": {1: ("namespace", "string"), 2: ("verb", "string"), 3: ("group", "string"),
                           4: ("version", "string"), 5: ("resource", "string"), 6: ("subresource", "string"),
                           7: ("name", "string")},
    "NonResourceAttributes": {1: ("path", "string"), 2: ("verb", "string")},
    "SelfSubjectRulesReview": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:SelfSubjectRulesReviewSpec")},
    "SelfSubjectRulesReviewSpec": {1: ("namespace", "string")},
    "DeleteOptions": {1: ("gracePeriodSeconds", "int"), 2: ("preconditions", "msg:Preconditions"),
                      3: ("orphanDependents", "bool"), 4: ("propagationPolicy", "string"), 5: ("dryRun", "*string")},
    "Preconditions": {1: ("uid", "string"), 2: ("resourceVersion", "string")},
    "TokenReview": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:TokenReviewSpec")},
    "TokenReviewSpec": {1: ("token", "string"), 2: ("audiences", "*string")},
    "TokenRequest": {1: ("metadata", "msg:ObjectMeta"), 2: ("spec", "msg:TokenRequestSpec")},
    "TokenRequestSpec": {1: ("audiences", "*string"), 4: ("expirationSeconds", "int")},
}  # fmt: skip


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        b = data[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(data: bytes) -> list[tuple[int, int, Any]]:
    """The raw (field number, wire type, value) triples of one message."""
    out = []
    pos = 0
    while pos < len(data):
        tag, pos = _varint(data, pos)
        number, wire = tag >> 3, tag & 7
        value: Any
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = int.from_bytes(data[pos : pos + 8], "little"), pos + 8
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated length-delimited field")
            value, pos = data[pos : pos + length], pos + length
        elif wire == 5:
            value, pos = int.from_bytes(data[pos : pos + 4], "little"), pos + 4
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _signed(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def _time(data: bytes) -> str:
    seconds = 0
    for number, _, value in fields(data):
        if number == 1:
            seconds = _signed(value)
    return dt.datetime.fromtimestamp(seconds, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, value: Any) -> Any:
    if kind == "string":
        return bytes(value).decode("utf-8")
    if kind == "bytes":
        return base64.b64encode(bytes(value)).decode("ascii")
    if kind == "int":
        return _signed(value)
    if kind == "bool":
        return bool(value)
    if kind == "time":
        return _time(bytes(value))
    if kind == "rawjson":
        return json.loads(bytes(value) or b"{}")
    if kind.startswith("msg:"):
        return decode_message(kind[4:], bytes(value))
    raise ValueError(f"unknown field type {kind}")


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """Decode one message into the dict its JSON form would give. Unknown field numbers are skipped."""
    spec = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, _, value in fields(data):
        if number not in spec:
            continue
        json_name, kind = spec[number]
        if kind.startswith("map:"):
            key = val = None
            for n, _, v in fields(bytes(value)):
                if n == 1:
                    key = bytes(v).decode("utf-8")
                elif n == 2:
                    val = _scalar(kind[4:], v)
            if key is not None:
                out.setdefault(json_name, {})[key] = val if val is not None else ""
        elif kind.startswith("*"):
            out.setdefault(json_name, []).append(_scalar(kind[1:], value))
        else:
            out[json_name] = _scalar(kind, value)
    if name == "FieldsV1":
        return out.get("Raw", {})
    return out


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\x00``-enveloped body into an object dict (with apiVersion and kind). 415 if not possible."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "protobuf body does not start with the k8s envelope magic", reason="UnsupportedMediaType")
    try:
        envelope = decode_message("Unknown", body[len(MAGIC) :])
        type_meta = envelope.get("typeMeta") or {}
        kind = type_meta.get("kind", "")
        if kind not in MESSAGES:
            raise ApiError(
                415,
                f"the simulator cannot decode protobuf bodies of kind {kind!r}; send JSON",
                reason="UnsupportedMediaType",
            )
        raw = base64.b64decode(envelope.get("raw", ""))
        obj = decode_message(kind, raw)
    except (ValueError, UnicodeDecodeError, KeyError) as e:
        raise ApiError(400, f"cannot decode protobuf body: {e}") from e
    obj["apiVersion"] = type_meta.get("apiVersion", "")
    obj["kind"] = kind
    return obj
