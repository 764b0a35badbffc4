"""Server-side printing: the ``meta.k8s.io/v1 Table`` kubectl asks for in ``get``. Free of I/O."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from halyard.sim.resources import ResourceType

Column = tuple[str, str, int, Callable[[dict[str, Any], dt.datetime], Any]]  # name, type, priority, cell


def human_age(created: str | None, now: dt.datetime) -> str:
    """kubectl's ``HumanDuration`` (``76s``, ``5m3s``, ``4h``, ``3d``)."""
    if not created:
        return "<unknown>"
    then = dt.datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)
    s = max(0, int((now - then).total_seconds()))
    if s < 120:
        return f"{s}s"
    m = s // 60
    if m < 10:
        return f"{m}m{s % 60}s" if s % 60 else f"{m}m"
    if m < 180:
        return f"{m}m"
    h = m // 60
    if h < 8:
        return f"{h}h{m % 60}m" if m % 60 else f"{h}h"
    if h < 48:
        return f"{h}h"
    d = h // 24
    if h < 192:
        return f"{d}d{h % 24}h" if h % 24 else f"{d}d"
    if d < 365 * 2:
        return f"{d}d"
    return f"{d // 365}y"


def _meta(o: dict[str, Any]) -> dict[str, Any]:
    return o.get("metadata") or {}


def _age(o: dict[str, Any], now: dt.datetime) -> str:
    return human_age(_meta(o).get("creationTimestamp"), now)


def _cond(o: dict[str, Any], kind: str) -> str | None:
    for c in (o.get("status") or {}).get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get("status"))
    return None


def _node_status(o: dict[str, Any], _: dt.datetime) -> str:
    ready = _cond(o, "Ready")
    status = {"True": "Ready", "False": "NotReady"}.get(ready or "", "Unknown")
    if (o.get("spec") or {}).get("unschedulable"):
        status += ",SchedulingDisabled"
    return status


def _node_roles(o: dict[str, Any], _: dt.datetime) -> str:
    prefix = "node-role.kubernetes.io/"
    roles = sorted(k[len(prefix) :] for k in (_meta(o).get("labels") or {}) if k.startswith(prefix))
    return ",".join(roles) or "<none>"


def _address(kind: str) -> Callable[[dict[str, Any], dt.datetime], str]:
    def cell(o: dict[str, Any], _: dt.datetime) -> str:
        for a in (o.get("status") or {}).get("addresses") or []:
            if a.get("type") == kind:
                return str(a.get("address"))
        return "<none>"

    return cell


def _node_info(key: str) -> Callable[[dict[str, Any], dt.datetime], str]:
    return lambda o, _: str(((o.get("status") or {}).get("nodeInfo") or {}).get(key, ""))


def _pod_ready(o: dict[str, Any], _: dt.datetime) -> str:
    statuses = (o.get("status") or {}).get("containerStatuses") or []
    total = len((o.get("spec") or {}).get("containers") or [])
    return f"{sum(1 for s in statuses if s.get('ready'))}/{total}"


def _pod_status(o: dict[str, Any], _: dt.datetime) -> str:
    if _meta(o).get("deletionTimestamp"):
        return "Terminating"
    status = o.get("status") or {}
    for s in status.get("containerStatuses") or []:
        waiting = (s.get("state") or {}).get("waiting")
        if waiting:
            return str(waiting.get("reason", "Waiting"))
        terminated = (s.get("state") or {}).get("terminated")
        if terminated and status.get("phase") not in ("Succeeded",):
            return str(terminated.get("reason", "Terminated"))
    if status.get("phase") == "Succeeded":
        return "Completed"
    return str(status.get("phase", "Pending"))


def _restarts(o: dict[str, Any], _: dt.datetime) -> int:
    return sum(int(s.get("restartCount", 0)) for s in (o.get("status") or {}).get("containerStatuses") or [])


def _get(*path: str, default: Any = "<none>") -> Callable[[dict[str, Any], dt.datetime], Any]:
    def cell(o: dict[str, Any], _: dt.datetime) -> Any:
        cur: Any = o
        for p in path:
            cur = cur.get(p) if isinstance(cur, dict) else None
        return default if cur is None or cur == "" else cur

    return cell


def _containers(field: str) -> Callable[[dict[str, Any], dt.datetime], str]:
    def cell(o: dict[str, Any], _: dt.datetime) -> str:
        spec = ((o.get("spec") or {}).get("template") or {}).get("spec") or {}
        return ",".join(str(c.get(field, "")) for c in spec.get("containers") or [])

    return cell


def _selector(o: dict[str, Any], _: dt.datetime) -> str:
    sel = (o.get("spec") or {}).get("selector") or {}
    labels = sel.get("matchLabels", sel) if isinstance(sel, dict) else {}
    return ",".join(f"{k}={v}" for k, v in labels.items() if isinstance(v, str)) or "<none>"


def _ports(o: dict[str, Any], _: dt.datetime) -> str:
    out = []
    for p in (o.get("spec") or {}).get("ports") or []:
        s = str(p.get("port"))
        if p.get("nodePort"):
            s += f":{p['nodePort']}"
        out.append(f"{s}/{p.get('protocol', 'TCP')}")
    return ",".join(out) or "<none>"


def _ready_of(o: dict[str, Any], _: dt.datetime) -> str:
    st = o.get("status") or {}
    return f"{st.get('readyReplicas', 0)}/{(o.get('spec') or {}).get('replicas', 0)}"


def _job_status(o: dict[str, Any], _: dt.datetime) -> str:
    if _cond(o, "Complete") == "True":
        return "Complete"
    if _cond(o, "Failed") == "True":
        return "Failed"
    return "Running"


def _job_completions(o: dict[str, Any], _: dt.datetime) -> str:
    return f"{(o.get('status') or {}).get('succeeded', 0)}/{(o.get('spec') or {}).get('completions', 1)}"


_NAME: Column = ("Name", "string", 0, lambda o, _: _meta(o).get("name", ""))
_AGE: Column = ("Age", "string", 0, _age)
COLUMNS: dict[str, list[Column]] = {
    "Node": [
        _NAME, ("Status", "string", 0, _node_status), ("Roles", "string", 0, _node_roles), _AGE,
        ("Version", "string", 0, _node_info("kubeletVersion")),
        ("Internal-IP", "string", 1, _address("InternalIP")), ("External-IP", "string", 1, _address("ExternalIP")),
        ("OS-Image", "string", 1, _node_info("osImage")), ("Kernel-Version", "string", 1, _node_info("kernelVersion")),
        ("Container-Runtime", "string", 1, _node_info("containerRuntimeVersion")),
    ],
    "Pod": [
        _NAME, ("Ready", "string", 0, _pod_ready), ("Status", "string", 0, _pod_status),
        ("Restarts", "string", 0, _restarts), _AGE, ("IP", "string", 1, _get("status", "podIP")),
        ("Node", "string", 1, _get("spec", "nodeName")), ("Nominated Node", "string", 1, _get("status", "nominatedNodeName")),
        ("Readiness Gates", "string", 1, lambda o, _: "<none>"),
    ],
    "Deployment": [
        _NAME, ("Ready", "string", 0, _ready_of), ("Up-to-date", "integer", 0, _get("status", "updatedReplicas", default=0)),
        ("Available", "integer", 0, _get("status", "availableReplicas", default=0)), _AGE,
        ("Containers", "string", 1, _containers("name")), ("Images", "string", 1, _containers("image")),
        ("Selector", "string", 1, _selector),
    ],
    "ReplicaSet": [
        _NAME, ("Desired", "integer", 0, _get("spec", "replicas", default=0)),
        ("Current", "integer", 0, _get("status", "replicas", default=0)),
        ("Ready", "integer", 0, _get("status", "readyReplicas", default=0)), _AGE,
    ],
    "StatefulSet": [_NAME, ("Ready", "string", 0, _ready_of), _AGE],
    "DaemonSet": [
        _NAME, ("Desired", "integer", 0, _get("status", "desiredNumberScheduled", default=0)),
        ("Current", "integer", 0, _get("status", "currentNumberScheduled", default=0)),
        ("Ready", "integer", 0, _get("status", "numberReady", default=0)), _AGE,
    ],
    "Job": [_NAME, ("Status", "string", 0, _job_status), ("Completions", "string", 0, _job_completions), _AGE],
    "Service": [
        _NAME, ("Type", "string", 0, _get("spec", "type")), ("Cluster-IP", "string", 0, _get("spec", "clusterIP")),
        ("External-IP", "string", 0, lambda o, _: "<none>"), ("Port(s)", "string", 0, _ports), _AGE,
        ("Selector", "string", 1, _selector),
    ],
    "Namespace": [_NAME, ("Status", "string", 0, _get("status", "phase", default="Active")), _AGE],
    "ConfigMap": [_NAME, ("Data", "integer", 0, lambda o, _: len(o.get("data") or {}) + len(o.get("binaryData") or {})), _AGE],
    "Secret": [_NAME, ("Type", "string", 0, _get("type")), ("Data", "integer", 0, lambda o, _: len(o.get("data") or {})), _AGE],
    "Event": [
        ("Last Seen", "string", 0, lambda o, now: human_age(o.get("lastTimestamp"), now)),
        ("Type", "string", 0, _get("type")), ("Reason", "string", 0, _get("reason")),
        ("Object", "string", 0, lambda o, _: f"{(o.get('involvedObject') or {}).get('kind', '').lower()}/"
                                            f"{(o.get('involvedObject') or {}).get('name', '')}"),
        ("Message", "string", 0, _get("message")),
    ],
    "CronJob": [
        _NAME, ("Schedule", "string", 0, _get("spec", "schedule")), ("Timezone", "string", 0, _get("spec", "timeZone")),
        ("Suspend", "boolean", 0, lambda o, _: bool((o.get("spec") or {}).get("suspend"))),
        ("Active", "integer", 0, lambda o, _: len((o.get("status") or {}).get("active") or [])),
        ("Last Schedule", "string", 0, lambda o, now: human_age((o.get("status") or {}).get("lastScheduleTime"), now)
         if (o.get("status") or {}).get("lastScheduleTime") else "<none>"),
        _AGE,
    ],
    "CustomResourceDefinition": [_NAME, ("Created At", "date", 0, _get("metadata", "creationTimestamp"))],
    "Lease": [_NAME, ("Holder", "string", 0, _get("spec", "holderIdentity", default="")), _AGE],
    "ServiceAccount": [_NAME, ("Secrets", "integer", 0, lambda o, _: len(o.get("secrets") or [])), _AGE],
}  # fmt: skip


def _jsonpath_cell(path: str) -> Callable[[dict[str, Any], dt.datetime], Any]:
    parts = [p for p in path.strip().lstrip(".").split(".") if p]
    return _get(*parts, default="")


def columns_for(t: ResourceType) -> list[Column]:
    if t.kind in COLUMNS and not t.crd:
        return COLUMNS[t.kind]
    extra: list[Column] = []
    for v in ((t.crd or {}).get("spec") or {}).get("versions") or []:
        if v.get("name") == t.version:
            for c in v.get("additionalPrinterColumns") or []:
                extra.append(
                    (
                        c["name"],
                        c.get("type", "string"),
                        int(c.get("priority", 0)),
                        _jsonpath_cell(c["jsonPath"]),
                    )
                )
    return [_NAME, *extra, _AGE] if extra else [_NAME, _AGE]


def partial_metadata(o: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": _meta(o)}


def table(
    t: ResourceType,
    objs: list[dict[str, Any]],
    *,
    resource_version: str,
    include_object: str,
    now: dt.datetime,
    with_columns: bool = True,
    continue_token: str = "",
) -> dict[str, Any]:
    cols = columns_for(t)
    rows = []
    for o in objs:
        row: dict[str, Any] = {"cells": [c[3](o, now) for c in cols]}
        if include_object == "Object":
            row["object"] = o
        elif include_object != "None":
            row["object"] = partial_metadata(o)
        rows.append(row)
    meta: dict[str, Any] = {"resourceVersion": resource_version}
    if continue_token:
        meta["continue"] = continue_token
    return {
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": meta,
        "columnDefinitions": [
            {"name": n, "type": typ, "format": "name" if n == "Name" else "", "description": n, "priority": p}
            for n, typ, p, _ in cols
        ]
        if with_columns
        else None,
        "rows": rows,
    }
