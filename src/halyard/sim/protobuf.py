"""Decoding of Kubernetes protobuf request bodies (the ``k8s\\x00`` envelope), for the kinds clients send so.

client-go ≥ 0.31 (helm 3.17, kubectl 1.32+) sends typed-client bodies as protobuf: helm's release Secrets, the
``auth can-i`` SelfSubjectAccessReview, every ``kubectl create <kind>``. A 415 there is fatal to those clients, so
this decodes them into the same dicts a JSON body would give: a small wire decoder driven by the field tables of
``protodesc.py`` (generated from the descriptors Go clients embed). Kinds outside those tables get a 415 with a
clear message. Replies are always JSON, which every client accepts.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
from typing import Any

from halyard.sim.errors import ApiError
from halyard.sim.protodesc import MESSAGES

MAGIC = b"k8s\x00"

ENVELOPE = "k8s.io.apimachinery.pkg.runtime.Unknown"
META = "k8s.io.apimachinery.pkg.apis.meta.v1"
OBJECT_META = f"{META}.ObjectMeta"


def message_for(api_version: str, kind: str) -> str | None:
    """The protobuf message of a kind (``apps/v1 Deployment`` -> ``k8s.io.api.apps.v1.Deployment``)."""
    group, _, version = api_version.rpartition("/")
    package = f"k8s.io.api.{group.split('.')[0] if group else 'core'}.{version}"
    for name in (f"{package}.{kind}", f"{META}.{kind}"):
        if name in MESSAGES:
            return name
    return None


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


def _time(data: bytes) -> str | None:
    seconds = 0
    for number, _, value in fields(data):
        if number == 1:
            seconds = _signed(value)
    if seconds == 0:
        return None  # Go's zero time.Time, which JSON renders as null
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
        return _raw_json(bytes(value))
    if kind == "quantity":
        return _first_string(bytes(value))
    if kind == "intorstr":
        return _int_or_string(bytes(value))
    if kind == "duration":
        return _duration(bytes(value))
    if kind == "double":
        return struct.unpack("<d", value.to_bytes(8, "little"))[0]
    if kind == "float":
        return struct.unpack("<f", value.to_bytes(4, "little"))[0]
    if kind == "sint":
        return (value >> 1) ^ -(value & 1)
    if kind.startswith("msg:"):
        return decode_message(kind[4:], bytes(value))
    raise ValueError(f"unknown field type {kind}")


def _raw_json(data: bytes) -> Any:
    """RawExtension and FieldsV1 carry JSON (a RawExtension may carry a nested protobuf object instead)."""
    if not data:
        return None
    if data.startswith(MAGIC):
        return decode(data)
    return json.loads(data)


def _first_string(data: bytes) -> str:
    for number, _, value in fields(data):
        if number == 1:
            return bytes(value).decode("utf-8")
    return ""


def _int_or_string(data: bytes) -> int | str:
    kind, int_val, str_val = 0, 0, ""
    for number, _, value in fields(data):
        if number == 1:
            kind = value
        elif number == 2:
            int_val = _signed(value)
        elif number == 3:
            str_val = bytes(value).decode("utf-8")
    return str_val if kind == 1 else int_val


def _duration(data: bytes) -> str:
    nanos = 0
    for number, _, value in fields(data):
        if number == 1:
            nanos = _signed(value)
    seconds = nanos / 1e9
    h, rem = divmod(int(seconds), 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m}m{s}s" if h else (f"{m}m{s}s" if m else f"{seconds:g}s")


def decode_message(name: str, data: bytes) -> dict[str, Any]:
    """Decode one message into the dict its JSON form would give.

    Unknown field numbers are skipped. Empty strings are dropped: Go's generated code writes every non-pointer
    string, set or not, while JSON omits them (``omitempty``); ints and bools are kept, as a pointer field set to
    zero is meaningful (``replicas: 0``).
    """
    spec = MESSAGES[name]
    out: dict[str, Any] = {}
    for number, _, value in fields(data):
        if number not in spec:
            continue
        json_name, kind = spec[number]
        if not json_name:  # an inlined embedded struct
            out.update(decode_message(kind[4:], bytes(value)))
            continue
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
            decoded = _scalar(kind, value)
            if decoded is None or decoded == "" or (name == OBJECT_META and json_name == "generation" and not decoded):
                out.pop(json_name, None)
            else:
                out[json_name] = decoded
    return out


def decode(body: bytes) -> dict[str, Any]:
    """Decode a ``k8s\\x00``-enveloped body into an object dict (with apiVersion and kind). 415 if not possible."""
    if not body.startswith(MAGIC):
        raise ApiError(415, "protobuf body does not start with the k8s envelope magic", reason="UnsupportedMediaType")
    try:
        envelope = decode_message(ENVELOPE, body[len(MAGIC) :])
        api_version, kind = envelope.get("apiVersion", ""), envelope.get("kind", "")
        message = message_for(api_version, kind)
        if message is None:
            raise ApiError(
                415,
                f"the simulator cannot decode protobuf bodies of {api_version} {kind}; send JSON",
                reason="UnsupportedMediaType",
            )
        obj = decode_message(message, base64.b64decode(envelope.get("raw", "")))
    except (ValueError, UnicodeDecodeError, KeyError, TypeError, struct.error) as e:
        raise ApiError(400, f"cannot decode protobuf body: {e}") from e
    return {"apiVersion": api_version, "kind": kind, **obj}
