"""Runs the simulated Flux controllers of every attached cluster: which object to reconcile when (the watches and
predicates of the real controllers), one reconcile at a time per object, requeues, and the bound on concurrent work.

Reconciles are coroutines on the simulator's event loop; what is slow in them (git, kustomize, archives) runs in
subprocesses or threads, so the API keeps answering while a repository is fetched. Between awaits a reconcile reads
and writes the cluster directly, as the other simulated controllers do (the loop is the lock).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from halyard.sim.cluster import VirtualCluster, WriteContext
from halyard.sim.controllers import record_event
from halyard.sim.flux import status as st
from halyard.sim.store import Event, Obj

log = logging.getLogger(__name__)

SOURCE_GROUP = "source.toolkit.fluxcd.io"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
GIT = f"{SOURCE_GROUP}/gitrepositories"
BUCKET = f"{SOURCE_GROUP}/buckets"
OCI = f"{SOURCE_GROUP}/ocirepositories"
KUSTOMIZATION = f"{KUSTOMIZE_GROUP}/kustomizations"
SOURCE_KEYS = {"GitRepository": GIT, "Bucket": BUCKET, "OCIRepository": OCI}
Key = tuple[str, str, str, str]  # cluster, storage key, namespace, name


def find_kubectl() -> str:
    """The kubectl that builds kustomizations: ``$HALYARD_KUBECTL``, ``kubectl`` on PATH, else the newest of the
    checkout's ``.cache/kubectl`` (or ``$HALYARD_KUBECTL_DIR``), where ``scripts/install-kubectl.sh`` puts them."""
    if os.environ.get("HALYARD_KUBECTL"):
        return os.environ["HALYARD_KUBECTL"]
    on_path = shutil.which("kubectl")
    if on_path:
        return on_path
    directory = Path(os.environ.get("HALYARD_KUBECTL_DIR", Path(__file__).resolve().parents[4] / ".cache" / "kubectl"))

    def version(p: Path) -> tuple[int, ...]:
        try:
            return tuple(int(x) for x in p.name.removeprefix("kubectl.").split("."))
        except ValueError:
            return (0,)

    found = sorted(directory.glob("kubectl.*"), key=version)
    return str(found[-1]) if found else ""


@dataclass
class FluxSettings:
    storage: Path  # artifacts: <storage>/<cluster>/<kind>/<namespace>/<name>/<sha>.tar.gz
    git: str = field(default_factory=lambda: shutil.which("git") or "git")
    kubectl: str = field(default_factory=find_kubectl)
    max_artifact_bytes: int = 50 * 1024 * 1024
    requeue_dependency: float = 30.0  # kustomize-controller's --requeue-dependency
    concurrency: int = 4  # reconciles doing git/kustomize work at once, all clusters together
    min_retry: float = 0.75  # the controllers' --min-retry-delay / --max-retry-delay (exponential back-off)
    max_retry: float = 900.0


Reconciler = Callable[["FluxControllers", VirtualCluster, str, str], Awaitable[float | None]]


class FluxControllers:
    """The simulated source-controller and kustomize-controller for every attached cluster."""

    def __init__(self, settings: FluxSettings) -> None:
        from halyard.sim.flux import kustomize, source  # the reconcilers import this module's helpers

        self.settings = settings
        self.clusters: dict[str, VirtualCluster] = {}
        self.reconcilers: dict[str, Reconciler] = {
            GIT: source.reconcile_git,
            BUCKET: source.reconcile_unsupported(BUCKET),
            OCI: source.reconcile_unsupported(OCI),
            KUSTOMIZATION: kustomize.reconcile,
        }
        self.work = asyncio.Semaphore(settings.concurrency)
        self._running: dict[Key, asyncio.Task[None]] = {}
        self._again: set[Key] = set()
        self._timers: dict[Key, asyncio.TimerHandle] = {}
        self._seen: dict[Key, tuple[Any, ...]] = {}
        self._revisions: dict[Key, str] = {}  # each source's last artifact revision seen
        self._failures: dict[Key, int] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._last_event_ns = 0
        self._stopped = False

    # ---- lifecycle
    def attach(self, cluster: VirtualCluster) -> None:
        self.clusters[cluster.name] = cluster
        cluster.store.listeners.append(lambda ev, c=cluster: self._on_event(c, ev))  # type: ignore[misc]
        if self._loop is not None:
            self._resync(cluster)

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for c in self.clusters.values():
            self._resync(c)

    def _resync(self, c: VirtualCluster) -> None:
        """Reconcile every Flux object a cluster already holds (restored with --persist, or attached late)."""
        for key in self.reconcilers:
            for obj in c.store.list(key):
                self.kick((c.name, key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"]))

    async def stop(self) -> None:
        self._stopped = True
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        tasks = list(self._running.values())
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t

    # ---- scheduling
    def kick(self, key: Key) -> None:
        """Reconcile ``key`` now, or right after the reconcile of it that is running."""
        if self._loop is None or self._stopped:
            return
        if key in self._running:
            self._again.add(key)
            return
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._running[key] = self._loop.create_task(self._run(key), name=f"flux-{key[1]}-{key[2]}/{key[3]}")

    def later(self, key: Key, delay: float) -> None:
        if self._loop is None or self._stopped:
            return
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        self._timers[key] = self._loop.call_later(max(delay, 0.0), self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.kick(key)

    async def _run(self, key: Key) -> None:
        requeue: float | None = None
        try:
            c = self.clusters.get(key[0])
            if c is not None:
                requeue = await self.reconcilers[key[1]](self, c, key[2], key[3])
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("sim flux reconcile %s crashed", key)
            requeue = self.backoff(key)
        finally:
            self._running.pop(key, None)
        if key in self._again:
            self._again.discard(key)
            self.kick(key)
        elif requeue is not None:
            self.later(key, requeue)

    def backoff(self, key: Key) -> float:
        """The next retry of a failed object: exponential from --min-retry-delay to --max-retry-delay."""
        n = self._failures.get(key, 0)
        self._failures[key] = n + 1
        return float(min(self.settings.min_retry * (2**n), self.settings.max_retry))

    def succeeded(self, key: Key) -> None:
        self._failures.pop(key, None)

    # ---- watches and predicates
    def _on_event(self, c: VirtualCluster, ev: Event) -> None:
        if ev.key not in self.reconcilers:
            return
        meta = ev.obj["metadata"]
        key: Key = (c.name, ev.key, meta.get("namespace", ""), meta["name"])
        if ev.type == "DELETED":
            self._seen.pop(key, None)
            self._revisions.pop(key, None)
            self._failures.pop(key, None)
            timer = self._timers.pop(key, None)
            if timer is not None:
                timer.cancel()
            return
        # GenerationChanged or ReconcileRequested, plus deletion and the finalizer being taken away.
        seen = (meta.get("generation"), st.requested_at(ev.obj), bool(meta.get("deletionTimestamp")),
                st.FINALIZER in (meta.get("finalizers") or ()))  # fmt: skip
        previous = self._seen.get(key)
        self._seen[key] = seen
        if previous is None or previous[:3] != seen[:3] or (previous[3] and not seen[3]):
            self.kick(key)
        if ev.key in (GIT, BUCKET, OCI):
            self._source_changed(c, key, ev)

    def _source_changed(self, c: VirtualCluster, key: Key, ev: Event) -> None:
        """kustomize-controller's SourceRevisionChangePredicate: a source's artifact revision changed → the
        Kustomizations referencing it that have not yet attempted that revision."""
        artifact = (ev.obj.get("status") or {}).get("artifact") or {}
        revision = artifact.get("revision")
        if not revision or self._revisions.get(key) == revision:
            return
        self._revisions[key] = revision
        meta = ev.obj["metadata"]
        ns, name, kind = meta.get("namespace", ""), meta["name"], ev.obj.get("kind")
        for k in c.store.list(KUSTOMIZATION):
            ref = (k.get("spec") or {}).get("sourceRef") or {}
            k_ns = k["metadata"].get("namespace", "")
            if ref.get("kind") != kind or ref.get("name") != name or (ref.get("namespace") or k_ns) != ns:
                continue
            ks = k.get("status") or {}
            if st.is_true(ks, st.READY) and ks.get("lastAttemptedRevision") == revision:
                continue
            self.kick((c.name, KUSTOMIZATION, k_ns, k["metadata"]["name"]))

    # ---- helpers for the reconcilers
    def event(self, c: VirtualCluster, obj: Obj, kind: str, reason: str, message: str, component: str,
              annotations: dict[str, str] | None = None) -> None:  # fmt: skip
        """A core/v1 Event as client-go's recorder names it (``<object>.<unix nanos in hex>``)."""
        now_ns = max(time.time_ns(), self._last_event_ns + 1)
        self._last_event_ns = now_ns
        record_event(c, obj, reason, message, component, kind, name=f"{obj['metadata']['name']}.{now_ns:x}",
                     annotations=annotations)  # fmt: skip

    def write_status(self, c: VirtualCluster, key: str, ns: str, name: str, status: dict[str, Any],
                     manager: str) -> Obj | None:  # fmt: skip
        """Write ``status`` over the object's current one (None if the object is gone)."""
        rt = c.registry.by_key(key)
        current = c.store.get(key, ns, name)
        if rt is None or current is None:
            return None
        if current.get("status") == status:
            return current
        new = dict(current)
        new["status"] = status
        return c.update(rt, ns, name, new, WriteContext(field_manager=manager, field_validation="Ignore"),
                        subresource="status")  # fmt: skip

    def set_finalizers(self, c: VirtualCluster, key: str, obj: Obj, finalizers: list[str], manager: str) -> Obj | None:
        rt = c.registry.by_key(key)
        current = c.store.get(key, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        if rt is None or current is None:
            return None
        new = dict(current)
        new["metadata"] = {**current["metadata"], "finalizers": finalizers}
        if not finalizers:
            del new["metadata"]["finalizers"]
        return c.update(rt, current["metadata"].get("namespace", ""), current["metadata"]["name"], new,
                        WriteContext(field_manager=manager, field_validation="Ignore"))  # fmt: skip

    def artifact_dir(self, c: VirtualCluster, kind: str, ns: str, name: str) -> Path:
        return self.settings.storage / c.name / kind.lower() / ns / name
