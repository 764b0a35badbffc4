"""Simulated resource usage, served as the metrics API (``metrics.k8s.io/v1beta1``) that ``kubectl top`` reads.

Usage is a steady function of each pod's uid: the same pod always uses the same small amount, so demos and tests see
stable figures. Nodes use a base amount plus what their running pods use. Pure.
"""

from __future__ import annotations

import hashlib
from typing import Any

GROUP = "metrics.k8s.io"
VERSION = "v1beta1"
_WINDOW = "10.0s"


def _seed(*parts: str) -> int:
    return int(hashlib.sha256("/".join(parts).encode()).hexdigest()[:8], 16)


def container_usage(pod_uid: str, container: str) -> tuple[int, int]:
    """(millicores, MiB) a simulated container uses."""
    s = _seed(pod_uid, container)
    return 1 + s % 20, 8 + (s >> 8) % 56


def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    m = obj["metadata"]
    out = {"name": m["name"], "creationTimestamp": m.get("creationTimestamp")}
    if m.get("namespace"):
        out["namespace"] = m["namespace"]
    if m.get("labels"):
        out["labels"] = m["labels"]
    return out


def running(pod: dict[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") == "Running"


def pod_metrics(pod: dict[str, Any], now: str) -> dict[str, Any]:
    containers = []
    for c in (pod.get("spec") or {}).get("containers") or []:
        cpu, mem = container_usage(pod["metadata"]["uid"], c.get("name", ""))
        containers.append({"name": c.get("name"), "usage": {"cpu": f"{cpu}m", "memory": f"{mem * 1024}Ki"}})
    return {"metadata": _meta(pod), "timestamp": now, "window": _WINDOW, "containers": containers}


def node_metrics(node: dict[str, Any], pods: list[dict[str, Any]], now: str) -> dict[str, Any]:
    name = node["metadata"]["name"]
    cpu, mem = 120 + _seed(name) % 80, 700 + _seed(name, "mem") % 300
    for pod in pods:
        if (pod.get("spec") or {}).get("nodeName") == name and running(pod):
            for c in pod["spec"].get("containers") or []:
                c_cpu, c_mem = container_usage(pod["metadata"]["uid"], c.get("name", ""))
                cpu, mem = cpu + c_cpu, mem + c_mem
    return {"metadata": _meta(node), "timestamp": now, "window": _WINDOW,
            "usage": {"cpu": f"{cpu}m", "memory": f"{mem * 1024}Ki"}}  # fmt: skip


def as_list(kind: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    return {"kind": f"{kind}List", "apiVersion": f"{GROUP}/{VERSION}", "metadata": {}, "items": items}
