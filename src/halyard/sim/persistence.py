"""Saving the virtual clusters' objects to the data directory, and loading them back at start."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

from halyard.core.clock import Clock
from halyard.core.files import write_private
from halyard.sim.cluster import VirtualCluster
from halyard.sim.rbac import UserInfo

STATE_FILE = "state.json"


def save(directory: Path, clusters: dict[str, VirtualCluster]) -> None:
    """Write every cluster's objects, resourceVersion and tokens (owner-only: tokens and Secrets are inside)."""
    doc: dict[str, Any] = {"version": 1, "clusters": {}}
    for name, c in clusters.items():
        doc["clusters"][name] = {
            "rv": c.store.rv,
            "adminToken": c.admin_token,
            "tokens": {
                t: [u.name, list(u.groups), u.uid, c.token_expiry[t].isoformat() if t in c.token_expiry else None]
                for t, u in c.tokens.items()
            },
            "objects": {key: list(bucket.values()) for key, bucket in c.store.objects.items() if bucket},
        }
    write_private(directory / STATE_FILE, json.dumps(doc, separators=(",", ":")).encode())


def load(directory: Path, clock: Clock, watch_history: int) -> dict[str, VirtualCluster]:
    path = directory / STATE_FILE
    if not path.exists():
        return {}
    doc = json.loads(path.read_text())
    out: dict[str, VirtualCluster] = {}
    for name, data in doc.get("clusters", {}).items():
        c = VirtualCluster(name, clock, watch_history=watch_history)
        c.admin_token = data["adminToken"]
        c.tokens = {t: UserInfo(u[0], tuple(u[1]), u[2]) for t, u in data.get("tokens", {}).items()}
        c.token_expiry = {
            t: dt.datetime.fromisoformat(u[3]) for t, u in data.get("tokens", {}).items() if len(u) > 3 and u[3]
        }
        for key, objs in data.get("objects", {}).items():
            for obj in objs:
                c.store.load(key, obj)
                if key == "apiextensions.k8s.io/customresourcedefinitions":
                    c.registry.set_crd(obj)
        c.store.rv = int(data["rv"])
        c.skip_ips(sum(len(b) for b in c.store.objects.values()))  # new addresses must not clash with reloaded ones
        # Watch history is not persisted: any watch from before the restart gets 410 Expired and relists.
        c.store.compacted_rv = c.store.rv
        out[name] = c
    return out
