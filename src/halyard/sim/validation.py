"""Validation of the built-in kinds' specs that clients notice: the 422 Invalid causes a real server returns.

Not the whole of Kubernetes' validation: the rules a mistaken manifest most often breaks (pods without containers,
containers without names or images, bad ports). Pure; returns (reason, field, message) causes.
"""

from __future__ import annotations

import re
from typing import Any

from halyard.sim import cron

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TEMPLATED = {"Deployment", "ReplicaSet", "StatefulSet", "DaemonSet", "Job"}

Cause = tuple[str, str, str]


def validate(kind: str, obj: dict[str, Any]) -> list[Cause]:
    spec = obj.get("spec") or {}
    if kind == "Pod":
        return _pod_spec(spec, "spec")
    if kind in _TEMPLATED:
        return _pod_spec((spec.get("template") or {}).get("spec") or {}, "spec.template.spec")
    if kind == "CronJob":
        causes: list[Cause] = []
        try:
            cron.parse(spec.get("schedule") or "")
        except ValueError as e:
            causes.append(("FieldValueInvalid", "spec.schedule", f'Invalid value: "{spec.get("schedule")}": {e}'))
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return causes + _pod_spec((job.get("template") or {}).get("spec") or {}, "spec.jobTemplate.spec.template.spec")
    if kind == "Service":
        return _service_ports(spec)
    return []


def _pod_spec(spec: dict[str, Any], path: str) -> list[Cause]:
    causes: list[Cause] = []
    containers = spec.get("containers")
    if not containers:
        return [("FieldValueRequired", f"{path}.containers", "Required value")]
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for i, c in enumerate(spec.get(field) or []):
            at = f"{path}.{field}[{i}]"
            name = c.get("name") if isinstance(c, dict) else None
            if not name:
                causes.append(("FieldValueRequired", f"{at}.name", "Required value"))
            elif not _DNS_LABEL.match(name) or len(name) > 63:
                causes.append(("FieldValueInvalid", f"{at}.name", f'Invalid value: "{name}": a lowercase RFC 1123 '
                               "label must consist of lower case alphanumeric characters or '-'"))  # fmt: skip
            elif name in seen:
                causes.append(("FieldValueDuplicate", f"{at}.name", f'Duplicate value: "{name}"'))
            else:
                seen.add(name)
            if isinstance(c, dict) and not c.get("image"):
                causes.append(("FieldValueRequired", f"{at}.image", "Required value"))
            for j, p in enumerate((c.get("ports") or []) if isinstance(c, dict) else []):
                port = p.get("containerPort") if isinstance(p, dict) else None
                if not isinstance(port, int) or not 0 < port < 65536:
                    causes.append(("FieldValueInvalid", f"{at}.ports[{j}].containerPort",
                                   f"Invalid value: {port}: must be between 1 and 65535, inclusive"))  # fmt: skip
    return causes


def _service_ports(spec: dict[str, Any]) -> list[Cause]:
    causes: list[Cause] = []
    ports = spec.get("ports") or []
    for i, p in enumerate(ports):
        port = p.get("port") if isinstance(p, dict) else None
        if not isinstance(port, int) or not 0 < port < 65536:
            causes.append(("FieldValueInvalid", f"spec.ports[{i}].port",
                           f"Invalid value: {port}: must be between 1 and 65535, inclusive"))  # fmt: skip
        if len(ports) > 1 and isinstance(p, dict) and not p.get("name"):
            causes.append(("FieldValueRequired", f"spec.ports[{i}].name", "Required value"))
    if not ports and spec.get("type", "ClusterIP") != "ExternalName" and spec.get("clusterIP") != "None":
        causes.append(("FieldValueRequired", "spec.ports", "Required value"))
    return causes
