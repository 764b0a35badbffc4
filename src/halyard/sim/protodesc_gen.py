"""Generates ``protodesc.py``, the field tables of the Kubernetes protobuf messages the simulator decodes.

Field numbers are the contract of the Kubernetes protobuf encoding, and no Python package ships them in a usable
form. Every Go client embeds them: each ``generated.pb.go`` registers its gzipped ``FileDescriptorProto``. This
reads those descriptors out of a client binary (any kubectl ≥ 1.28) and writes the messages reachable from the
kinds the simulator serves as a plain Python table::

    python -m halyard.sim.protodesc_gen /usr/lib/google-cloud-sdk/bin/kubectl.1.33 > src/halyard/sim/protodesc.py
"""

from __future__ import annotations

import pprint
import re
import sys
import zlib
from pathlib import Path
from typing import Any

from halyard.sim.protobuf import fields

_GZIP = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x02\xff"
_PACKAGES = (
    "k8s.io.api.core.v1", "k8s.io.api.apps.v1", "k8s.io.api.batch.v1", "k8s.io.api.coordination.v1",
    "k8s.io.api.rbac.v1", "k8s.io.api.authorization.v1", "k8s.io.api.authentication.v1", "k8s.io.api.autoscaling.v1",
    "k8s.io.api.policy.v1", "k8s.io.api.events.v1", "k8s.io.apimachinery.pkg.apis.meta.v1",
    "k8s.io.apimachinery.pkg.runtime",
)  # fmt: skip
# Messages whose JSON form is not their protobuf structure.
SPECIAL = {
    "k8s.io.apimachinery.pkg.apis.meta.v1.Time": "time",
    "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime": "time",
    "k8s.io.apimachinery.pkg.api.resource.Quantity": "quantity",
    "k8s.io.apimachinery.pkg.util.intstr.IntOrString": "intorstr",
    "k8s.io.apimachinery.pkg.runtime.RawExtension": "rawjson",
    "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1": "rawjson",
    "k8s.io.apimachinery.pkg.apis.meta.v1.Duration": "duration",
}
# Go structs embedded with ``json:",inline"``: a field in protobuf, its fields merged into the parent in JSON.
INLINE = frozenset(
    {"localObjectReference", "volumeSource", "persistentVolumeSource", "ephemeralContainerCommon", "typeMeta"}
)
INLINE_IN = {("k8s.io.api.core.v1.Probe", "handler")}
_SCALAR = {1: "double", 2: "float", 3: "int", 4: "int", 5: "int", 6: "int", 7: "int", 8: "bool", 9: "string",
           12: "bytes", 13: "int", 14: "int", 15: "int", 16: "int", 17: "sint", 18: "sint"}  # fmt: skip


def file_descriptors(binary: bytes) -> list[bytes]:
    out = []
    for m in re.finditer(re.escape(_GZIP), binary):
        try:
            raw = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(binary[m.start() : m.start() + 4_000_000])
        except zlib.error:
            continue
        if b"generated.proto" in raw[:200]:
            out.append(raw)
    return out


def _messages(prefix: str, data: bytes, table: dict[str, list[tuple[int, str, int, int, str]]],
              maps: dict[str, tuple[str, str]]) -> None:  # fmt: skip
    name = ""
    raw_fields = []
    nested = []
    is_map = False
    for number, _, value in fields(data):
        if number == 1:
            name = bytes(value).decode()
        elif number == 2:
            raw_fields.append(value)
        elif number == 3:
            nested.append(value)
        elif number == 7:
            is_map = any(n == 7 and v for n, _, v in fields(bytes(value)))
    full = f"{prefix}.{name}"
    parsed = []
    for f in raw_fields:
        fname, fnum, label, ftype, tname = "", 0, 1, 0, ""
        for n, _, v in fields(bytes(f)):
            if n == 1:
                fname = bytes(v).decode()
            elif n == 3:
                fnum = v
            elif n == 4:
                label = v
            elif n == 5:
                ftype = v
            elif n == 6:
                tname = bytes(v).decode().lstrip(".")
        parsed.append((fnum, fname, label, ftype, tname))
    table[full] = parsed
    if is_map:
        maps[full] = ("", "")
    for n in nested:
        _messages(full, bytes(n), table, maps)


def build(binary: bytes) -> dict[str, dict[int, tuple[str, str]]]:
    raw: dict[str, list[tuple[int, str, int, int, str]]] = {}
    maps: dict[str, tuple[str, str]] = {}
    for fd in file_descriptors(binary):
        package = ""
        for number, _, value in fields(fd):
            if number == 2:
                package = bytes(value).decode()
        for number, _, value in fields(fd):
            if number == 4:
                _messages(package, bytes(value), raw, maps)

    def kind(ftype: int, tname: str) -> str:
        if ftype in (11, 14) and tname:
            if ftype == 14:
                return "int"
            if tname in SPECIAL:
                return SPECIAL[tname]
            if tname in maps:
                value = next(f for f in raw[tname] if f[0] == 2)
                return "map:" + kind(value[3], value[4])
            return "msg:" + tname
        return _SCALAR.get(ftype, "bytes")

    out: dict[str, dict[int, tuple[str, str]]] = {}
    todo = [m for m in raw if m.rsplit(".", 1)[0] in _PACKAGES and m not in maps]
    while todo:
        name = todo.pop()
        if name in out or name in SPECIAL or name not in raw:
            continue
        entry = {}
        for fnum, fname, label, ftype, tname in raw[name]:
            k = kind(ftype, tname)
            if label == 3 and not k.startswith("map:"):
                k = "*" + k
            inline = k.startswith("msg:") and (fname in INLINE or (name, fname) in INLINE_IN)
            entry[fnum] = ("" if inline else fname, k)
            ref = k.lstrip("*")
            if ref.startswith("msg:"):
                todo.append(ref[4:])
            elif ref.startswith("map:msg:"):
                todo.append(ref[8:])
        out[name] = entry
    return out


def render(table: dict[str, Any], source: str) -> str:
    header = (
        f'"""Kubernetes protobuf field tables, generated by ``halyard.sim.protodesc_gen`` from {source}. Do not edit."""\n\n'
        "# fmt: off\n"
        "MESSAGES: dict[str, dict[int, tuple[str, str]]] = "
    )
    return header + pprint.pformat(dict(sorted(table.items())), width=200, sort_dicts=True) + "\n"


def main() -> None:
    path = Path(sys.argv[1])
    sys.stdout.write(render(build(path.read_bytes()), path.name))


if __name__ == "__main__":
    main()
