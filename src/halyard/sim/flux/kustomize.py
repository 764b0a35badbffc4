"""The simulated kustomize-controller: a Kustomization's source artifact unpacked, its path built with the real
kustomize (``kubectl kustomize``), the objects applied with server-side apply (field manager
``kustomize-controller``) in Flux's order and stages, the inventory recorded, what left the build pruned, and the
status, conditions, reasons and events of kustomize-controller v1.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import os
import shutil
import signal
import tarfile
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from halyard.sim.cluster import VirtualCluster, WriteContext, rfc3339
from halyard.sim.errors import ApiError
from halyard.sim.flux import generator, inventory
from halyard.sim.flux import status as st
from halyard.sim.flux.runner import KUSTOMIZATION, KUSTOMIZE_GROUP, SOURCE_KEYS
from halyard.sim.flux.source import STORAGE_HOST
from halyard.sim.store import Obj

if TYPE_CHECKING:
    from halyard.sim.flux.runner import FluxControllers

COMPONENT = "kustomize-controller"
STATUS_MANAGER = "gotk-kustomize-controller"
HEALTH_POLL = 0.25  # seconds between health checks (Flux polls every 5 s; the simulator's objects settle faster)


class Failure(Exception):
    """A failed step: ``reason`` goes to Ready, the message to Ready and the Warning event."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def timeout_of(spec: dict[str, Any]) -> float:
    """kustomize-controller's GetTimeout: spec.timeout, else interval - 30s; never under 30s."""
    try:
        duration = st.parse_duration(str(spec.get("interval") or "10m")) - 30
        if spec.get("timeout"):
            duration = st.parse_duration(str(spec["timeout"]))
    except ValueError:
        duration = 30
    return max(duration, 30.0)


def _intervals(spec: dict[str, Any]) -> tuple[float, float]:
    try:
        interval = st.parse_duration(str(spec.get("interval") or "10m"))
    except ValueError:
        interval = 600.0
    try:
        retry = st.parse_duration(str(spec["retryInterval"])) if spec.get("retryInterval") else interval
    except ValueError:
        retry = interval
    return interval, retry


async def reconcile(flux: FluxControllers, c: VirtualCluster, ns: str, name: str) -> float | None:
    obj = c.store.get(KUSTOMIZATION, ns, name)
    if obj is None:
        return None
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        await _finalize(flux, c, obj)
        return None
    if st.FINALIZER not in (meta.get("finalizers") or ()):
        obj = flux.set_finalizers(c, KUSTOMIZATION, obj, [*(meta.get("finalizers") or ()), st.FINALIZER], COMPONENT)
        if obj is None:
            return None
    spec = obj.get("spec") or {}
    if spec.get("suspend"):
        return None
    interval, retry = _intervals(spec)
    key = (c.name, KUSTOMIZATION, ns, name)
    started = time.monotonic()
    revision = ""
    try:
        source, revision = _source(c, obj, flux.settings.requeue_dependency)
        waiting = _dependencies_not_ready(c, obj, source)
        if waiting:
            message = f"Dependencies do not meet ready condition, retrying in {st.format_duration(flux.settings.requeue_dependency)}"
            _finish(flux, c, obj, st.DEPENDENCY_NOT_READY, waiting, revision=revision, event=("Normal", message))
            return flux.settings.requeue_dependency
        await _apply_revision(flux, c, obj, source, revision)
    except _Gone:
        return None
    except _Wait as w:
        _finish(flux, c, obj, st.ARTIFACT_FAILED, str(w), revision=revision)
        return w.requeue
    except Failure as f:
        obj = c.store.get(KUSTOMIZATION, ns, name) or obj
        _finish(flux, c, obj, f.reason, str(f), revision=revision, event=("Warning", str(f)))
        return retry
    obj = c.store.get(KUSTOMIZATION, ns, name)
    if obj is None:
        return None
    status = st.fresh(obj)
    generation = int(obj["metadata"].get("generation", 1))
    now = rfc3339(c.clock)
    status["lastAppliedRevision"] = revision
    st.mark(status, st.READY, "True", st.RECONCILIATION_SUCCEEDED, f"Applied revision: {revision}", generation, now)
    st.delete(status, st.RECONCILING)
    status["observedGeneration"] = generation
    if st.requested_at(obj):
        status["lastHandledReconcileAt"] = st.requested_at(obj)
    written = flux.write_status(c, KUSTOMIZATION, ns, name, status, STATUS_MANAGER)
    if written is not None:
        message = (f"Reconciliation finished in {st.format_duration(round(time.monotonic() - started, 3))}, "
                   f"next run in {st.format_duration(interval)}")  # fmt: skip
        flux.event(c, written, "Normal", st.RECONCILIATION_SUCCEEDED, message, COMPONENT,
                   {f"{KUSTOMIZE_GROUP}/revision": revision, f"{KUSTOMIZE_GROUP}/commit_status": "update"})  # fmt: skip
    flux.succeeded(key)
    return interval


class _Gone(Exception):
    """The Kustomization was deleted during the reconcile: nothing left to report on."""


class _Wait(Exception):
    """Not an error of this Kustomization: its source is missing or has no artifact yet."""

    def __init__(self, message: str, requeue: float) -> None:
        super().__init__(message)
        self.requeue = requeue


def _source(c: VirtualCluster, obj: Obj, requeue_dependency: float) -> tuple[Obj, str]:
    ref = (obj.get("spec") or {}).get("sourceRef") or {}
    ns = ref.get("namespace") or obj["metadata"].get("namespace", "")
    kind, name = ref.get("kind", ""), ref.get("name", "")
    key = SOURCE_KEYS.get(kind)
    if key is None:
        raise Failure(st.ARTIFACT_FAILED, f"source `{name}` kind '{kind}' not supported")
    retry = _intervals(obj.get("spec") or {})[1]
    source = c.store.get(key, ns, name)
    if source is None:
        raise _Wait(f'{key.split("/")[1]}.{key.split("/")[0]} "{name}" not found', retry)
    artifact = (source.get("status") or {}).get("artifact") or {}
    if not artifact.get("revision"):
        raise _Wait(f"Source artifact not found, retrying in {st.format_duration(requeue_dependency)}",
                    requeue_dependency)  # fmt: skip
    return source, str(artifact["revision"])


def _dependencies_not_ready(c: VirtualCluster, obj: Obj, source: Obj) -> str:
    """The first unmet dependency, in kustomize-controller's words; "" when every dependency is ready."""
    spec = obj.get("spec") or {}
    own_ref = spec.get("sourceRef") or {}
    ns = obj["metadata"].get("namespace", "")
    revision = ((source.get("status") or {}).get("artifact") or {}).get("revision")
    for dep in spec.get("dependsOn") or []:
        dep_ns = dep.get("namespace") or ns
        dep_name = f"{dep_ns}/{dep.get('name')}"
        d = c.store.get(KUSTOMIZATION, dep_ns, dep.get("name", ""))
        if d is None:
            return (
                f"dependency '{dep_name}' not found: kustomizations.{KUSTOMIZE_GROUP} \"{dep.get('name')}\" not found"
            )
        ds = d.get("status") or {}
        if not ds.get("conditions") or d["metadata"].get("generation") != ds.get("observedGeneration"):
            return f"dependency '{dep_name}' is not ready"
        if not st.is_true(ds, st.READY):
            return f"dependency '{dep_name}' is not ready"
        dref = (d.get("spec") or {}).get("sourceRef") or {}
        if (dref.get("name") == own_ref.get("name") and dref.get("kind") == own_ref.get("kind")
                and (dref.get("namespace") or dep_ns) == (own_ref.get("namespace") or ns)
                and ds.get("lastAppliedRevision") != revision):  # fmt: skip
            return f"dependency '{dep_name}' revision is not up to date"
    return ""


def _finish(flux: FluxControllers, c: VirtualCluster, obj: Obj, reason: str, message: str, *, revision: str,
            event: tuple[str, str] | None = None) -> None:  # fmt: skip
    """Ready=False with ``reason``; Reconciling (if set) turns ProgressingWithRetry; the event, if any."""
    ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    current = c.store.get(KUSTOMIZATION, ns, name)
    if current is None:
        return
    status = st.fresh(current)
    generation = int(current["metadata"].get("generation", 1))
    st.mark(status, st.READY, "False", reason, message, generation, rfc3339(c.clock))
    st.with_retry(status)
    if st.requested_at(current):
        status["lastHandledReconcileAt"] = st.requested_at(current)
    written = flux.write_status(c, KUSTOMIZATION, ns, name, status, STATUS_MANAGER)
    if written is not None and event is not None:
        annotations = {f"{KUSTOMIZE_GROUP}/revision": revision} if revision else None
        flux.event(c, written, event[0], reason, event[1], COMPONENT, annotations)


def _progress(flux: FluxControllers, c: VirtualCluster, obj: Obj, message: str, **fields: Any) -> Obj:
    ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    current = c.store.get(KUSTOMIZATION, ns, name)
    if current is None:
        raise _Gone
    status = st.fresh(current)
    status.update(fields)
    generation = int(current["metadata"].get("generation", 1))
    now = rfc3339(c.clock)
    if st.get(status, st.READY) is None or st.get(status, st.READY)["reason"] != st.PROGRESSING:  # type: ignore[index]
        st.mark(status, st.READY, "Unknown", st.PROGRESSING, "Reconciliation in progress", generation, now)
    st.mark(status, st.RECONCILING, "True", st.PROGRESSING, message, generation, now)
    return flux.write_status(c, KUSTOMIZATION, ns, name, status, STATUS_MANAGER) or current


async def _apply_revision(flux: FluxControllers, c: VirtualCluster, obj: Obj, source: Obj, revision: str) -> None:
    spec = obj.get("spec") or {}
    timeout = timeout_of(spec)
    with_timeout = f"{revision} with a timeout of {st.format_duration(timeout)}"
    obj = _progress(flux, c, obj, f"Fetching manifests for revision {with_timeout}")
    artifact = (source.get("status") or {}).get("artifact") or {}
    archive = flux.settings.storage / c.name / str(artifact.get("path", ""))
    if not str(artifact.get("url", "")).startswith(f"http://{STORAGE_HOST}/") or not archive.is_file():
        wait = flux.settings.requeue_dependency
        raise _Wait(f"Source is not ready, artifact not found, retrying in {st.format_duration(wait)}", wait)
    work = await asyncio.to_thread(_scratch)
    try:
        async with flux.work:
            await asyncio.to_thread(_untar, archive, work, flux.settings.max_artifact_bytes)
            directory = await asyncio.to_thread(_build_dir, work, str(spec.get("path") or "./"))
            obj = _progress(flux, c, obj, f"Building manifests for revision {with_timeout}",
                            lastAttemptedRevision=revision)  # fmt: skip
            try:
                await asyncio.to_thread(generator.write, directory, spec)
            except (generator.GenerateError, OSError) as e:
                raise Failure(st.BUILD_FAILED, str(e)) from None
            manifests = await _build(flux.settings.kubectl, directory, work, timeout)
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    objects = _decode(manifests)
    obj = _progress(flux, c, obj, f"Detecting drift for revision {with_timeout}")
    applied = _apply_all(flux, c, obj, objects, revision)
    ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    current = c.store.get(KUSTOMIZATION, ns, name)
    if current is None:
        return
    old_entries = ((current.get("status") or {}).get("inventory") or {}).get("entries") or []
    new_entries = inventory.entries(applied)
    status = st.fresh(current)
    status["inventory"] = {"entries": new_entries}
    obj = flux.write_status(c, KUSTOMIZATION, ns, name, status, STATUS_MANAGER) or current
    if spec.get("prune"):
        deleted = _prune(c, inventory.stale(old_entries, new_entries), ns, name)
        if deleted:
            flux.event(c, obj, "Normal", st.PROGRESSING, "\n".join(f"{r.subject} deleted" for r in deleted),
                       COMPONENT, {f"{KUSTOMIZE_GROUP}/revision": revision})  # fmt: skip
    if spec.get("wait") or spec.get("healthChecks"):
        await _check_health(flux, c, obj, applied, revision, timeout)


def _scratch() -> Path:
    """A new scratch directory, by its real path (the one kustomize's messages name)."""
    return Path(os.path.realpath(tempfile.mkdtemp(prefix="halyard-flux-kustomization-")))


def _build_dir(work: Path, path: str) -> Path:
    """The kustomization path inside the unpacked artifact (securejoin's rule: never outside it)."""
    root = work.resolve()
    directory = (root / path.lstrip("/")).resolve()
    if not directory.is_relative_to(root):
        raise Failure(st.ARTIFACT_FAILED, f"path '{path}' is outside the artifact")
    if not directory.is_dir():
        shown = "/" + str(directory.relative_to(root)) if directory != root else "/"
        raise Failure(st.ARTIFACT_FAILED, f"kustomization path not found: stat {shown}: no such file or directory")
    return directory


def _untar(archive: Path, dest: Path, max_bytes: int) -> None:
    try:
        with tarfile.open(archive, "r:gz") as tar:
            members = tar.getmembers()
            if sum(m.size for m in members) > max_bytes:
                raise Failure(st.ARTIFACT_FAILED, f"artifact exceeds the simulator's size limit of "
                                                  f"{max_bytes // (1024 * 1024)} MiB when unpacked")  # fmt: skip
            tar.extractall(dest, filter="data")
    except (tarfile.TarError, OSError) as e:
        raise Failure(st.ARTIFACT_FAILED, f"failed to extract artifact: {e}") from None


async def _build(kubectl: str, directory: Path, root: Path, timeout: float) -> bytes:
    """``kubectl kustomize directory``; its errors name paths inside the artifact (``/deploy/x.yaml``), not the
    scratch directory, so a failing revision keeps one message from attempt to attempt."""
    if not kubectl:
        raise Failure(st.BUILD_FAILED, "kustomize build failed: no kubectl to run `kubectl kustomize` (put kubectl "
                                       "on PATH, set HALYARD_KUBECTL, or run scripts/install-kubectl.sh)")  # fmt: skip
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(root), "LC_ALL": "C"}
    try:
        proc = await asyncio.create_subprocess_exec(
            kubectl, "kustomize", str(directory), env=env, stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, start_new_session=True,
        )  # fmt: skip
    except OSError as e:
        raise Failure(st.BUILD_FAILED, f"kustomize build failed: cannot run {kubectl}: {e.strerror}") from None
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except (TimeoutError, asyncio.CancelledError) as e:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            await proc.wait()
        if isinstance(e, asyncio.CancelledError):
            raise
        raise Failure(st.BUILD_FAILED, f"kustomize build failed: timeout after {st.format_duration(timeout)}") from None
    if proc.returncode != 0:
        text = err.decode(errors="replace").strip().replace(str(root), "")
        text = text.removeprefix("error: ")
        raise Failure(st.BUILD_FAILED, f"kustomize build failed: {text}")
    return out


def _decode(manifests: bytes) -> list[Obj]:
    try:
        docs = [d for d in yaml.safe_load_all(manifests) if d is not None]
    except yaml.YAMLError as e:
        raise Failure(st.BUILD_FAILED, f"kustomize build failed: {e}") from None
    for d in docs:
        if not isinstance(d, dict) or not d.get("apiVersion") or not d.get("kind") or \
                not (d.get("metadata") or {}).get("name"):  # fmt: skip
            raise Failure(st.BUILD_FAILED, f"failed to decode Kubernetes apiVersion, kind and name from: {d}")
    return docs


def _comparable(obj: Obj) -> Obj:
    out = copy.deepcopy(obj)
    meta = out.get("metadata") or {}
    for k in ("managedFields", "resourceVersion", "generation", "creationTimestamp", "uid"):
        meta.pop(k, None)
    out.pop("status", None)
    return out


def _apply_all(
    flux: FluxControllers, c: VirtualCluster, owner: Obj, objects: list[Obj], revision: str
) -> list[inventory.Ref]:
    """Server-side apply in Flux's stages and order: each stage dry-run first (one invalid object applies nothing
    of its stage), then the drifted objects applied. Returns what the inventory lists; raises Failure."""
    owner_ns, owner_name = owner["metadata"].get("namespace", ""), owner["metadata"]["name"]
    common = (owner.get("spec") or {}).get("commonMetadata") or {}
    for o in objects:
        meta = o.setdefault("metadata", {})
        if common.get("annotations"):
            meta["annotations"] = {**(meta.get("annotations") or {}), **common["annotations"]}
        if common.get("labels"):
            meta["labels"] = {**(meta.get("labels") or {}), **common["labels"]}
        labels = o.setdefault("metadata", {}).setdefault("labels", {}) or {}
        labels[f"{KUSTOMIZE_GROUP}/name"] = owner_name
        labels[f"{KUSTOMIZE_GROUP}/namespace"] = owner_ns
        o["metadata"]["labels"] = labels
    refs = sorted(((inventory.ref_of(o), o) for o in objects), key=lambda ro: inventory.sort_key(ro[0]))
    changes: list[tuple[inventory.Ref, str]] = []
    applied: list[inventory.Ref] = []
    for stage in (0, 1, 2):
        batch = [(r, o) for r, o in refs if inventory.stage(r) == stage]
        plans = []
        for r, o in batch:
            rt = c.registry.by_kind(r.api_version, r.kind)
            if rt is None:
                raise Failure(st.RECONCILIATION_FAILED, f"{r.subject} dry-run failed: no matches for kind "
                                                        f'"{r.kind}" in version "{r.api_version}"')  # fmt: skip
            ns = r.namespace
            if not rt.namespaced:
                o["metadata"].pop("namespace", None)
                ns = ""
                r = inventory.Ref(r.group, r.kind, "", r.name, r.version)
            elif not ns:
                raise Failure(st.RECONCILIATION_FAILED, f"{r.subject} namespace not specified: the server could not "
                                                        "find the requested resource")  # fmt: skip
            if (o["metadata"].get("labels") or {}).get(f"{KUSTOMIZE_GROUP}/reconcile") == "disabled":
                continue
            existing = c.store.get(rt.key, ns, r.name)
            if existing is not None and ((existing["metadata"].get("labels") or {}).get(
                    f"{KUSTOMIZE_GROUP}/reconcile") == "disabled"):  # fmt: skip
                continue
            body = json.dumps(o).encode()
            try:
                dry, _ = c.patch(rt, ns, r.name, "application/apply-patch+yaml", body,
                                 WriteContext(field_manager=COMPONENT, dry_run=True), force=True)  # fmt: skip
            except ApiError as e:
                if e.code == 404:
                    raise Failure(st.RECONCILIATION_FAILED, f"{r.subject} not found: {e.message}") from None
                raise Failure(
                    st.RECONCILIATION_FAILED, f"{r.subject} dry-run failed ({e.reason}): {e.message}"
                ) from None
            action = "created" if existing is None else (
                "unchanged" if _comparable(dry) == _comparable(existing) else "configured")  # fmt: skip
            plans.append((r, rt, ns, body, action))
        for r, rt, ns, body, action in plans:
            if action != "unchanged":
                try:
                    c.patch(rt, ns, r.name, "application/apply-patch+yaml", body,
                            WriteContext(field_manager=COMPONENT), force=True)  # fmt: skip
                except ApiError as e:
                    raise Failure(st.RECONCILIATION_FAILED, f"{r.subject} apply failed: {e.message}") from None
            changes.append((r, action))
            applied.append(r)
    lines = "\n".join(f"{r.subject} {a}" for r, a in changes if a != "unchanged")
    if lines:
        flux.event(c, owner, "Normal", st.PROGRESSING, lines, COMPONENT, {f"{KUSTOMIZE_GROUP}/revision": revision})
    return applied


def _prune(c: VirtualCluster, refs: list[inventory.Ref], owner_ns: str, owner_name: str) -> list[inventory.Ref]:
    """Delete what left the build, if it still carries this Kustomization's labels and no prune=disabled."""
    deleted = []
    for r in refs:
        rt = c.registry.by_kind(r.api_version, r.kind) or next(
            (t for t in c.registry.all_types() if t.group == r.group and t.kind == r.kind), None)  # fmt: skip
        if rt is None:
            continue
        live = c.store.get(rt.key, r.namespace if rt.namespaced else "", r.name)
        if live is None:
            deleted.append(r)
            continue
        labels = live["metadata"].get("labels") or {}
        annotations = live["metadata"].get("annotations") or {}
        if (
            labels.get(f"{KUSTOMIZE_GROUP}/name") != owner_name
            or labels.get(f"{KUSTOMIZE_GROUP}/namespace") != owner_ns
        ):
            continue
        if "disabled" in (labels.get(f"{KUSTOMIZE_GROUP}/prune"), annotations.get(f"{KUSTOMIZE_GROUP}/prune"),
                          labels.get(f"{KUSTOMIZE_GROUP}/reconcile"), annotations.get(f"{KUSTOMIZE_GROUP}/reconcile")):  # fmt: skip
            continue
        with contextlib.suppress(ApiError):
            c.delete(rt, r.namespace, r.name, {"propagationPolicy": "Background"})
            deleted.append(r)
    return deleted


async def _finalize(flux: FluxControllers, c: VirtualCluster, obj: Obj) -> None:
    """MirrorPrune (the default deletionPolicy): a deleted Kustomization takes its objects along when it prunes."""
    spec = obj.get("spec") or {}
    policy = spec.get("deletionPolicy") or "MirrorPrune"
    entries = ((obj.get("status") or {}).get("inventory") or {}).get("entries") or []
    prune = policy in ("Delete", "WaitForTermination") or (policy == "MirrorPrune" and spec.get("prune"))
    ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    if prune and entries and not spec.get("suspend"):
        deleted = _prune(c, inventory.stale(entries, []), ns, name)
        if deleted:
            revision = (obj.get("status") or {}).get("lastAppliedRevision", "")
            flux.event(c, obj, "Normal", ((st.get(obj.get("status") or {}, st.READY) or {}).get("reason") or "info"),
                       "\n".join(f"{r.subject} deleted" for r in deleted), COMPONENT,
                       {f"{KUSTOMIZE_GROUP}/revision": revision} if revision else None)  # fmt: skip
    finalizers = [f for f in obj["metadata"].get("finalizers") or [] if f != st.FINALIZER]
    if finalizers != (obj["metadata"].get("finalizers") or []):
        flux.set_finalizers(c, KUSTOMIZATION, obj, finalizers, COMPONENT)


# ---- health (kstatus, for the kinds the simulator runs)


def _health(obj: Obj | None) -> str:
    """``Current``, ``InProgress`` or ``Failed`` in kstatus' sense, for the kinds the simulator's controllers run."""
    if obj is None:
        return "NotFound"
    kind, meta, spec, status = obj.get("kind"), obj["metadata"], obj.get("spec") or {}, obj.get("status") or {}
    if "generation" in meta and "observedGeneration" in status and status["observedGeneration"] < meta["generation"]:
        return "InProgress"
    conditions = {c.get("type"): c for c in status.get("conditions") or []}
    if kind == "Deployment":
        replicas = spec.get("replicas", 1)
        ok = (conditions.get("Available", {}).get("status") == "True" and status.get("updatedReplicas", 0) >= replicas
              and status.get("availableReplicas", 0) >= replicas and "observedGeneration" in status)  # fmt: skip
        return "Current" if ok else "InProgress"
    if kind in ("StatefulSet", "ReplicaSet"):
        return "Current" if status.get("readyReplicas", 0) >= spec.get("replicas", 1) else "InProgress"
    if kind == "DaemonSet":
        want = status.get("desiredNumberScheduled")
        return "Current" if want is not None and status.get("numberReady", 0) >= want else "InProgress"
    if kind == "Pod":
        if status.get("phase") == "Succeeded" or conditions.get("Ready", {}).get("status") == "True":
            return "Current"
        return "Failed" if status.get("phase") == "Failed" else "InProgress"
    if kind == "Job":
        if conditions.get("Failed", {}).get("status") == "True":
            return "Failed"
        return "Current" if conditions.get("Complete", {}).get("status") == "True" else "InProgress"
    if "Ready" in conditions:
        return "Current" if conditions["Ready"].get("status") == "True" else "InProgress"
    return "Current"


async def _check_health(flux: FluxControllers, c: VirtualCluster, obj: Obj, applied: list[inventory.Ref],
                        revision: str, timeout: float) -> None:  # fmt: skip
    spec = obj.get("spec") or {}
    ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    if spec.get("wait"):
        targets = [r for r in applied if not (r.kind == "Kustomization" and r.namespace == ns and r.name == name)]
    else:
        targets = []
        for h in spec.get("healthChecks") or []:
            group, _, version = str(h.get("apiVersion") or "apps/v1").rpartition("/")
            targets.append(
                inventory.Ref(group, h.get("kind", ""), h.get("namespace") or "", h.get("name", ""), version)
            )
    if not targets:
        return
    message = f"Running health checks for revision {revision} with a timeout of {st.format_duration(timeout)}"
    current = c.store.get(KUSTOMIZATION, ns, name)
    if current is None:
        return
    status = st.fresh(current)
    was_healthy = st.is_true(status, st.HEALTHY)
    generation = int(current["metadata"].get("generation", 1))
    now = rfc3339(c.clock)
    st.mark(status, st.RECONCILING, "True", st.PROGRESSING, message, generation, now)
    st.mark(status, st.HEALTHY, "Unknown", st.PROGRESSING, message, generation, now)
    flux.write_status(c, KUSTOMIZATION, ns, name, status, STATUS_MANAGER)
    started = time.monotonic()
    while True:
        results = []
        for r in targets:
            rt = c.registry.by_kind(r.api_version, r.kind)
            live = c.store.get(rt.key, r.namespace if rt.namespaced else "", r.name) if rt is not None else None
            results.append((r, _health(live)))
        pending = [(r, s) for r, s in results if s != "Current"]
        failed = [(r, s) for r, s in pending if s == "Failed"]
        if not pending:
            break
        if failed or time.monotonic() - started >= timeout:
            what = ", ".join(f"{r.subject} status: '{s}'" for r, s in pending)
            err = f"{'health check failed' if failed else 'timeout waiting for'}: [{what}]"
            _mark_health(flux, c, obj, "False", st.HEALTH_CHECK_FAILED, err)
            raise Failure(
                st.HEALTH_CHECK_FAILED,
                f"health check failed after {st.format_duration(round(time.monotonic() - started, 3))}: {err}",
            )
        await asyncio.sleep(HEALTH_POLL)
    passed = f"Health check passed in {st.format_duration(round(time.monotonic() - started, 3))}"
    written = _mark_health(flux, c, obj, "True", st.SUCCEEDED, passed)
    if written is not None and not was_healthy:
        flux.event(c, written, "Normal", st.PROGRESSING, passed, COMPONENT, {f"{KUSTOMIZE_GROUP}/revision": revision})


def _mark_health(
    flux: FluxControllers, c: VirtualCluster, obj: Obj, value: str, reason: str, message: str
) -> Obj | None:
    ns, name = obj["metadata"].get("namespace", ""), obj["metadata"]["name"]
    current = c.store.get(KUSTOMIZATION, ns, name)
    if current is None:
        return None
    status = st.fresh(current)
    st.mark(status, st.HEALTHY, value, reason, message, int(current["metadata"].get("generation", 1)), rfc3339(c.clock))
    return flux.write_status(c, KUSTOMIZATION, ns, name, status, STATUS_MANAGER)
