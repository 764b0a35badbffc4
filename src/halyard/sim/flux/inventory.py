"""The kustomize-controller's bookkeeping of what it applied, free of I/O: inventory ids (cli-utils' ``ObjMetadata``
string, ``<namespace>_<name>_<group>_<kind>``), the apply order of ``fluxcd/pkg/ssa`` and its change-set lines
(``Deployment/apps/web created``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

# fluxcd/pkg/ssa ReconcileOrder: these kinds first, in this order; webhooks last; the rest between, by group/kind.
_FIRST = ("CustomResourceDefinition", "Namespace", "ClusterRole", "ClusterClass", "RuntimeClass", "PriorityClass",
          "StorageClass", "VolumeSnapshotClass", "IngressClass", "GatewayClass", "ClusterRoleBinding", "ResourceQuota",
          "ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Secret", "Service", "LimitRange", "Deployment",
          "StatefulSet", "CronJob", "PodDisruptionBudget")  # fmt: skip
_LAST = ("MutatingWebhookConfiguration", "ValidatingWebhookConfiguration")
_INDEX = {k: i - len(_FIRST) for i, k in enumerate(_FIRST)} | {k: i + 1 for i, k in enumerate(_LAST)}
_RBAC = "rbac.authorization.k8s.io"


@dataclass(frozen=True, order=False)
class Ref:
    """One object by identity: what an inventory entry names."""

    group: str
    kind: str
    namespace: str
    name: str
    version: str = ""

    @property
    def id(self) -> str:
        name = self.name
        if self.group == _RBAC:
            name = name.replace(":", "__")  # cli-utils transcodes the colons of RBAC names
        return f"{self.namespace}_{name}_{self.group}_{self.kind}"

    @property
    def subject(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` when cluster-scoped), as Flux's change sets print it."""
        return f"{self.kind}/{self.namespace}/{self.name}" if self.namespace else f"{self.kind}/{self.name}"

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


def ref_of(obj: dict[str, Any]) -> Ref:
    api_version = str(obj.get("apiVersion") or "")
    group, _, version = api_version.rpartition("/")
    meta = obj.get("metadata") or {}
    return Ref(
        group, str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""), version
    )


def parse_id(entry_id: str, version: str) -> Ref:
    """The object an inventory entry names (ValueError if the id is malformed)."""
    parts = entry_id.split("_")
    if len(parts) < 4:
        raise ValueError(f"unexpected inventory id {entry_id!r}")
    namespace, kind, group = parts[0], parts[-1], parts[-2]
    name = "_".join(parts[1:-2])
    if group == _RBAC:
        name = name.replace("__", ":")
    return Ref(group, kind, namespace, name, version)


def sort_key(ref: Ref) -> tuple[Any, ...]:
    return _INDEX.get(ref.kind, 0), ref.group, ref.kind, ref.namespace, ref.name


def stage(ref: Ref) -> int:
    """Which of ``ApplyAllStaged``'s stages applies the object: cluster definitions, class definitions, the rest."""
    if ref.kind in ("CustomResourceDefinition", "Namespace") or (ref.kind == "ClusterRole" and ref.group == _RBAC):
        return 0
    if ref.kind.endswith("Class"):
        return 1
    return 2


def entries(refs: list[Ref]) -> list[dict[str, str]]:
    """``status.inventory.entries`` for the applied objects, in apply order."""
    return [{"id": r.id, "v": r.version} for r in refs]


def stale(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[Ref]:
    """Objects of the old inventory absent from the new one, in deletion order (the reverse of apply order)."""
    keep = {e.get("id") for e in new}
    out = []
    for e in old:
        if e.get("id") in keep:
            continue
        try:
            out.append(parse_id(str(e.get("id")), str(e.get("v") or "")))
        except ValueError:
            continue
    return sorted(out, key=sort_key, reverse=True)
