"""The simulated control loops: deployments, replica sets, pods (scheduler and kubelet), jobs, daemon sets,
stateful sets, namespace deletion and garbage collection.

One task serves every virtual cluster: stores report their events, reconcile keys go into one de-duplicating
queue, and each reconcile is level-triggered and idempotent (a write that changes nothing makes no event, so the
loops settle). Delays (a pod becoming Ready) are timers that requeue a key.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import hashlib
import json
import logging
from dataclasses import dataclass
from typing import Any

from halyard.sim import cron
from halyard.sim.cluster import FOREGROUND, SYSTEM, VirtualCluster, rfc3339
from halyard.sim.errors import ApiError
from halyard.sim.resources import ResourceType
from halyard.sim.selectors import labels_match, selector_from_label_selector
from halyard.sim.store import Event, Obj

log = logging.getLogger(__name__)
MAX_EVENTS = 100  # per namespace

Key = tuple[str, str, str, str]  # cluster, task, namespace, name (or uid for "gc")


@dataclass(frozen=True)
class Timing:
    """Simulated delays, in seconds."""

    pod_start: float = 0.5  # scheduled -> Running and Ready
    job_pod_run: float = 1.0  # Running -> Succeeded for pods of Jobs and run-to-completion pods


def _owner_uid(obj: Obj, kind: str) -> str | None:
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("kind") == kind and ref.get("controller"):
            return str(ref.get("uid"))
    return None


def _owner_ref(owner: Obj) -> dict[str, Any]:
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _pruned(value: Any) -> Any:
    """``value`` without zero values (empty strings, maps, lists, false, 0): a protobuf body's zero-valued fields
    and the JSON form that omits them describe the same template."""
    if isinstance(value, dict):
        out = {k: _pruned(v) for k, v in value.items()}
        return {k: v for k, v in out.items() if v not in ("", {}, [], None) and v is not False and v != 0}
    if isinstance(value, list):
        return [_pruned(v) for v in value]
    return value


def template_hash(template: Any) -> str:
    """The ``pod-template-hash`` of a pod template: equal templates, equal hashes (a rollback reuses its set)."""
    labels = ((template or {}).get("metadata") or {}).get("labels") or {}
    if "pod-template-hash" in labels:
        template = copy.deepcopy(template)
        del template["metadata"]["labels"]["pod-template-hash"]
    digest = hashlib.sha256(json.dumps(_pruned(template), sort_keys=True).encode()).hexdigest()
    return str(int(digest[:12], 16) % (36**10))[:10]


def _cond(kind: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }


def _tolerated(taint: dict[str, Any], toleration: dict[str, Any]) -> bool:
    if toleration.get("effect") and toleration["effect"] != taint.get("effect"):
        return False
    if toleration.get("operator") == "Exists":
        return not toleration.get("key") or toleration["key"] == taint.get("key")
    return toleration.get("key") == taint.get("key") and toleration.get("value", "") == taint.get("value", "")


def tolerates(pod: Obj, node: Obj) -> bool:
    """Whether the pod tolerates every NoSchedule/NoExecute taint of the node (what the scheduler checks)."""
    tolerations = (pod.get("spec") or {}).get("tolerations") or []
    for taint in (node.get("spec") or {}).get("taints") or []:
        if taint.get("effect") in ("NoSchedule", "NoExecute") and not any(_tolerated(taint, t) for t in tolerations):
            return False
    return True


def _parse_time(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _job_finished(job: Obj) -> bool:
    return any(
        c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
        for c in (job.get("status") or {}).get("conditions") or []
    )


def _revision(rs: Obj) -> int:
    return int((rs["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", 0))


def registry_host(image: str) -> str:
    """The registry an image reference names (``docker.io`` when its first part is no host, as the runtimes read it)."""
    first, _, rest = image.partition("/")
    return first if rest and ("." in first or ":" in first or first == "localhost") else "docker.io"


def pullable(image: str) -> bool:
    """Whether the simulated kubelet can pull ``image``: every registry is reachable except those under the reserved
    ``.invalid`` domain (RFC 2606), which stand for a registry the cluster cannot reach."""
    return not registry_host(image).split(":", 1)[0].endswith(".invalid")


def _pod_ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


class ControllerManager:
    """Runs the simulated controllers of every attached cluster on one asyncio task."""

    def __init__(self, timing: Timing | None = None) -> None:
        self.timing = timing or Timing()
        self.clusters: dict[str, VirtualCluster] = {}
        self._queue: asyncio.Queue[Key] = asyncio.Queue()
        self._pending: set[Key] = set()
        self._task: asyncio.Task[None] | None = None
        self._node_cursor: dict[str, int] = {}
        self._event_seq = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timers: dict[Key, asyncio.TimerHandle] = {}

    def attach(self, cluster: VirtualCluster) -> None:
        self.clusters[cluster.name] = cluster
        cluster.store.listeners.append(lambda ev, c=cluster: self._on_event(c, ev))  # type: ignore[misc]

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = asyncio.create_task(self._run(), name="sim-controllers")

    async def stop(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def enqueue(self, key: Key) -> None:
        if key not in self._pending:
            self._pending.add(key)
            self._queue.put_nowait(key)

    def later(self, delay: float, key: Key) -> None:
        """Reconcile ``key`` after ``delay`` seconds; a key has at most one timer (the latest request wins)."""
        if self._loop is None:
            return
        previous = self._timers.pop(key, None)
        if previous is not None:
            previous.cancel()
        self._timers[key] = self._loop.call_later(delay, self._fire, key)

    def _fire(self, key: Key) -> None:
        self._timers.pop(key, None)
        self.enqueue(key)

    # ---- event routing
    def _on_event(self, c: VirtualCluster, ev: Event) -> None:
        meta = ev.obj["metadata"]
        ns, name = meta.get("namespace", ""), meta["name"]
        cn = c.name
        if ev.type == "DELETED":
            self.enqueue((cn, "gc", "", meta["uid"]))
        elif meta.get("deletionTimestamp") and FOREGROUND in (meta.get("finalizers") or ()):
            self.enqueue((cn, "foreground", ns, f"{ev.key}\x00{name}"))
        if ev.key == "apps/deployments":
            self.enqueue((cn, "deployment", ns, name))
        elif ev.key == "apps/replicasets":
            self.enqueue((cn, "replicaset", ns, name))
            self._enqueue_owner(c, ev.obj, "Deployment", "deployment")
        elif ev.key == "/pods":
            if ev.type == "ADDED":
                if (ev.obj.get("spec") or {}).get("nodeName"):  # placed already (daemon sets): the kubelet starts it
                    self.later(self.timing.pod_start, (cn, "podstart", ns, name))
                else:
                    self.enqueue((cn, "bind", ns, name))
            for kind, task in (("ReplicaSet", "replicaset"), ("Job", "job"), ("DaemonSet", "daemonset"),
                               ("StatefulSet", "statefulset")):  # fmt: skip
                self._enqueue_owner(c, ev.obj, kind, task)
        elif ev.key == "batch/jobs":
            self.enqueue((cn, "job", ns, name))
            self._enqueue_owner(c, ev.obj, "CronJob", "cronjob")
        elif ev.key == "batch/cronjobs" and ev.type != "DELETED":
            self.enqueue((cn, "cronjob", ns, name))
        elif ev.key == "apps/daemonsets":
            self.enqueue((cn, "daemonset", ns, name))
        elif ev.key == "apps/statefulsets":
            self.enqueue((cn, "statefulset", ns, name))
        elif ev.key == "/namespaces":
            if meta.get("deletionTimestamp"):
                self.enqueue((cn, "namespace", "", name))
            elif ev.type == "ADDED":
                self.enqueue((cn, "serviceaccount", name, "default"))
        if ev.key in ("/pods", "/services") and ns:
            self.enqueue((cn, "endpoints", ns, ""))

    def _enqueue_owner(self, c: VirtualCluster, obj: Obj, kind: str, task: str) -> None:
        for ref in obj["metadata"].get("ownerReferences") or []:
            if ref.get("kind") == kind:
                self.enqueue((c.name, task, obj["metadata"].get("namespace", ""), ref.get("name", "")))

    async def _run(self) -> None:
        handlers = {
            "deployment": self._deployment,
            "replicaset": self._replicaset,
            "bind": self._bind,
            "podstart": self._pod_start,
            "podfinish": self._pod_finish,
            "job": self._job,
            "cronjob": self._cronjob,
            "daemonset": self._daemonset,
            "statefulset": self._statefulset,
            "namespace": self._namespace,
            "serviceaccount": self._service_account,
            "endpoints": self._endpoints,
            "gc": self._gc,
            "foreground": self._foreground,
        }
        processed = 0
        while True:
            key = await self._queue.get()
            self._pending.discard(key)
            cluster = self.clusters.get(key[0])
            if cluster is None:
                continue
            try:
                handlers[key[1]](cluster, key[2], key[3])
            except ApiError as e:
                # A write raced with a client (409) or an object vanished: level-triggered, so try again.
                if e.code in (409, 404):
                    self.later(0.2, key)
                else:
                    log.warning("sim controller %s failed: %s", key, e.message)
            except Exception:
                log.exception("sim controller %s crashed", key)
            processed += 1
            if processed % 200 == 0:
                await asyncio.sleep(0)  # let requests through during bursts

    # ---- helpers
    def _rt(self, c: VirtualCluster, key: str) -> ResourceType:
        rt = c.registry.by_key(key)
        assert rt is not None
        return rt

    def _owned(self, c: VirtualCluster, key: str, ns: str, owner: Obj, kind: str) -> list[Obj]:
        uid = owner["metadata"]["uid"]
        return [o for o in c.store.list(key, ns) if _owner_uid(o, kind) == uid]

    def _set_status(self, c: VirtualCluster, rt: ResourceType, obj: Obj, status: dict[str, Any]) -> None:
        if obj.get("status") == status:
            return
        new = copy.deepcopy(obj)
        new["status"] = status
        c.update(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], new, SYSTEM,
                 subresource="status", managed_already=True)  # fmt: skip

    def _new_pod(self, c: VirtualCluster, owner: Obj, template: dict[str, Any], name: str = "",
                 extra_labels: dict[str, str] | None = None, node: str = "") -> None:  # fmt: skip
        tmeta = copy.deepcopy(template.get("metadata") or {})
        labels = {**(tmeta.get("labels") or {}), **(extra_labels or {})}
        meta: dict[str, Any] = {
            "namespace": owner["metadata"]["namespace"],
            "labels": labels,
            "ownerReferences": [_owner_ref(owner)],
        }
        if tmeta.get("annotations"):
            meta["annotations"] = tmeta["annotations"]
        if name:
            meta["name"] = name
        else:
            meta["generateName"] = owner["metadata"]["name"] + "-"
        spec = copy.deepcopy(template.get("spec") or {})
        if node:
            spec["nodeName"] = node
        pod = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}
        created = c.create(self._rt(c, "/pods"), meta["namespace"], pod, SYSTEM)
        component = "job-controller" if owner["kind"] == "Job" else f"{owner['kind'].lower()}-controller"
        self._event(c, owner, "SuccessfulCreate", f"Created pod: {created['metadata']['name']}", component)

    def _event(
        self, c: VirtualCluster, obj: Obj, reason: str, message: str, component: str, kind: str = "Normal"
    ) -> None:
        """Record an Event (``kind`` Normal or Warning) about ``obj`` (what ``kubectl describe`` shows)."""
        self._event_seq += 1
        record_event(c, obj, reason, message, component, kind, name=f"{obj['metadata']['name']}.{self._event_seq:016x}")

    def _delete(self, c: VirtualCluster, key: str, obj: Obj) -> None:
        if obj["metadata"].get("deletionTimestamp"):
            return
        try:
            c.delete(self._rt(c, key), obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        except ApiError as e:
            if e.code != 404:
                raise

    # ---- deployments and replica sets
    def _deployment(self, c: VirtualCluster, ns: str, name: str) -> None:
        d = c.store.get("apps/deployments", ns, name)
        if d is None or d["metadata"].get("deletionTimestamp"):
            return
        spec = d.get("spec") or {}
        replicas = int(spec.get("replicas", 1))
        template = spec.get("template") or {}
        h = template_hash(template)
        rs_rt = self._rt(c, "apps/replicasets")
        owned = self._owned(c, "apps/replicasets", ns, d, "Deployment")
        current = next((r for r in owned if (r["metadata"].get("labels") or {}).get("pod-template-hash") == h), None)
        revision = 1 + max((_revision(r) for r in owned), default=0)
        if current is None:
            labels = {**((template.get("metadata") or {}).get("labels") or {}), "pod-template-hash": h}
            tmpl = copy.deepcopy(template)
            tmpl.setdefault("metadata", {})["labels"] = labels
            selector = copy.deepcopy(spec.get("selector") or {})
            selector.setdefault("matchLabels", {})["pod-template-hash"] = h
            rs = {
                "apiVersion": "apps/v1",
                "kind": "ReplicaSet",
                "metadata": {
                    "name": f"{name}-{h}",
                    "namespace": ns,
                    "labels": labels,
                    "annotations": {"deployment.kubernetes.io/revision": str(revision)},
                    "ownerReferences": [_owner_ref(d)],
                },
                "spec": {"replicas": replicas, "selector": selector, "template": tmpl},
            }
            current = c.create(rs_rt, ns, rs, SYSTEM)
            owned.append(current)
            self._event(c, d, "ScalingReplicaSet", f"Scaled up replica set {current['metadata']['name']} from 0 "
                        f"to {replicas}", "deployment-controller")  # fmt: skip
        elif current is not max(owned, key=_revision):
            # Rolling back to an older template: that replica set becomes the newest revision again.
            new = copy.deepcopy(current)
            new["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = str(revision)
            new["spec"]["replicas"] = replicas
            current = c.update(rs_rt, ns, new["metadata"]["name"], new, SYSTEM)
        elif int((current.get("spec") or {}).get("replicas", 0)) != replicas:
            before = int((current.get("spec") or {}).get("replicas", 0))
            new = copy.deepcopy(current)
            new["spec"]["replicas"] = replicas
            current = c.update(rs_rt, ns, new["metadata"]["name"], new, SYSTEM)
            self._event(c, d, "ScalingReplicaSet", f"Scaled {'up' if replicas > before else 'down'} replica set "
                        f"{current['metadata']['name']} from {before} to {replicas}", "deployment-controller")  # fmt: skip
        for r in owned:
            if r is not current and (r["metadata"]["name"] != current["metadata"]["name"]):
                if int((r.get("spec") or {}).get("replicas", 0)) != 0:
                    before = int(r["spec"]["replicas"])
                    new = copy.deepcopy(r)
                    new["spec"]["replicas"] = 0
                    c.update(rs_rt, ns, new["metadata"]["name"], new, SYSTEM)
                    self._event(c, d, "ScalingReplicaSet", f"Scaled down replica set {r['metadata']['name']} from "
                                f"{before} to 0", "deployment-controller")  # fmt: skip
        owned = self._owned(c, "apps/replicasets", ns, d, "Deployment")
        cur = next((r for r in owned if r["metadata"]["name"] == current["metadata"]["name"]), current)
        revision_now = (cur["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision", "1")
        if (d["metadata"].get("annotations") or {}).get("deployment.kubernetes.io/revision") != revision_now:
            # The Deployment carries its current revision too (kubectl rollout undo patches these annotations).
            marked = copy.deepcopy(d)
            marked["metadata"].setdefault("annotations", {})["deployment.kubernetes.io/revision"] = revision_now
            d = c.update(self._rt(c, "apps/deployments"), ns, name, marked, SYSTEM, managed_already=True)

        def st(r: Obj, k: str) -> int:
            return int((r.get("status") or {}).get(k, 0))

        total = sum(st(r, "replicas") for r in owned)
        ready = sum(st(r, "readyReplicas") for r in owned)
        available = sum(st(r, "availableReplicas") for r in owned)
        updated = st(cur, "replicas")
        now = rfc3339(c.clock)
        complete = updated >= replicas and total == updated and available >= updated
        old_status = d.get("status") or {}
        old_conds = {x["type"]: x for x in old_status.get("conditions") or []}
        conds = []
        for kind, ok, reason, message in (
            ("Available", available >= replicas, "MinimumReplicasAvailable" if available >= replicas
             else "MinimumReplicasUnavailable", "Deployment has minimum availability." if available >= replicas
             else "Deployment does not have minimum availability."),
            ("Progressing", True, "NewReplicaSetAvailable" if complete else "ReplicaSetUpdated",
             f'ReplicaSet "{cur["metadata"]["name"]}" has successfully progressed.' if complete
             else f'ReplicaSet "{cur["metadata"]["name"]}" is progressing.'),
        ):  # fmt: skip
            prev = old_conds.get(kind)
            value = "True" if ok else "False"
            if prev and prev.get("status") == value and prev.get("reason") == reason:
                conds.append(prev)
            else:
                conds.append(_cond(kind, value, reason, message, now))
        status: dict[str, Any] = {
            "observedGeneration": d["metadata"].get("generation", 1),
            "replicas": total,
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": available,
            "conditions": conds,
        }
        if total - available > 0:
            status["unavailableReplicas"] = total - available
        status = {k: v for k, v in status.items() if v != 0 or k == "observedGeneration"}
        self._set_status(c, self._rt(c, "apps/deployments"), d, status)

    def _replicaset(self, c: VirtualCluster, ns: str, name: str) -> None:
        rs = c.store.get("apps/replicasets", ns, name)
        if rs is None or rs["metadata"].get("deletionTimestamp"):
            return
        want = int((rs.get("spec") or {}).get("replicas", 1))
        pods = [p for p in self._owned(c, "/pods", ns, rs, "ReplicaSet") if not p["metadata"].get("deletionTimestamp")]
        template = (rs.get("spec") or {}).get("template") or {}
        for _ in range(want - len(pods)):
            self._new_pod(c, rs, template)
        if len(pods) > want:
            by_age = sorted(pods, key=lambda p: (_pod_ready(p), p["metadata"]["creationTimestamp"]))
            for p in by_age[: len(pods) - want]:
                self._delete(c, "/pods", p)
        pods = [p for p in self._owned(c, "/pods", ns, rs, "ReplicaSet") if not p["metadata"].get("deletionTimestamp")]
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {
            "replicas": len(pods),
            "fullyLabeledReplicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "observedGeneration": rs["metadata"].get("generation", 1),
        }
        status = {k: v for k, v in status.items() if v != 0 or k in ("replicas", "observedGeneration")}
        self._set_status(c, self._rt(c, "apps/replicasets"), rs, status)

    # ---- pods: the scheduler and the kubelet
    def _bind(self, c: VirtualCluster, ns: str, name: str) -> None:
        pod = c.store.get("/pods", ns, name)
        if pod is None or (pod.get("spec") or {}).get("nodeName") or pod["metadata"].get("deletionTimestamp"):
            return
        nodes = [
            n
            for n in c.store.list("/nodes")
            if not (n.get("spec") or {}).get("unschedulable")
            and labels_match(
                selector_from_label_selector({"matchLabels": (pod.get("spec") or {}).get("nodeSelector") or {}}),
                n,
            )
            and tolerates(pod, n)
        ]
        now = rfc3339(c.clock)
        new = copy.deepcopy(pod)
        if not nodes:
            new["status"] = {
                **(pod.get("status") or {}),
                "conditions": [{"type": "PodScheduled", "status": "False", "reason": "Unschedulable",
                                "message": "0/0 nodes are available", "lastTransitionTime": now}],
            }  # fmt: skip
            c.update(self._rt(c, "/pods"), ns, name, new, SYSTEM, subresource="status", managed_already=True)
            return
        cursor = self._node_cursor.get(c.name, 0)
        self._node_cursor[c.name] = cursor + 1
        new["spec"]["nodeName"] = nodes[cursor % len(nodes)]["metadata"]["name"]
        new["status"] = {
            **(pod.get("status") or {}),
            "conditions": [{"type": "PodScheduled", "status": "True", "lastTransitionTime": now}],
        }
        c.update(self._rt(c, "/pods"), ns, name, new, SYSTEM, managed_already=True)
        self._event(c, pod, "Scheduled", f"Successfully assigned {ns}/{name} to {new['spec']['nodeName']}",
                    "default-scheduler")  # fmt: skip
        pod = c.store.get("/pods", ns, name)
        if pod is not None:
            new = copy.deepcopy(pod)
            new["status"] = {**(pod.get("status") or {}), "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now}]}  # fmt: skip
            c.update(self._rt(c, "/pods"), ns, name, new, SYSTEM, subresource="status", managed_already=True)
        self.later(self.timing.pod_start, (c.name, "podstart", ns, name))

    def _pod_start(self, c: VirtualCluster, ns: str, name: str) -> None:
        pod = c.store.get("/pods", ns, name)
        if pod is None or pod["metadata"].get("deletionTimestamp") or not (pod.get("spec") or {}).get("nodeName"):
            return
        if (pod.get("status") or {}).get("phase") != "Pending":
            return
        now = rfc3339(c.clock)
        node = c.store.get("/nodes", "", pod["spec"]["nodeName"])
        host_ip = next(
            (
                a["address"]
                for a in ((node or {}).get("status") or {}).get("addresses") or []
                if a.get("type") == "InternalIP"
            ),
            "10.0.0.1",
        )
        unpullable = [ct for ct in pod["spec"].get("containers") or [] if not pullable(str(ct.get("image") or ""))]
        if unpullable:
            self._pull_failed(c, pod, host_ip, unpullable, now)
            return
        conds = [
            {"type": t, "status": "True", "lastTransitionTime": now}
            for t in ("PodReadyToStartContainers", "Initialized", "Ready", "ContainersReady", "PodScheduled")
        ]
        status = {
            "phase": "Running",
            "conditions": conds,
            "hostIP": host_ip,
            "hostIPs": [{"ip": host_ip}],
            "podIP": c.allocate_ip("10.244.0.0"),
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {
                    "name": ct.get("name"),
                    "image": ct.get("image"),
                    "imageID": f"sim://{ct.get('image')}",
                    "containerID": "containerd://"
                    + hashlib.sha256(f"{pod['metadata']['uid']}/{ct.get('name')}".encode()).hexdigest(),
                    "ready": True,
                    "started": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": now}},
                }
                for ct in pod["spec"].get("containers") or []
            ],
        }
        status["podIPs"] = [{"ip": status["podIP"]}]
        self._set_status(c, self._rt(c, "/pods"), pod, status)
        for ct in pod["spec"].get("containers") or []:
            self._event(c, pod, "Pulled", f'Container image "{ct.get("image")}" already present on machine', "kubelet")
            self._event(c, pod, "Created", f"Created container: {ct.get('name')}", "kubelet")
            self._event(c, pod, "Started", f"Started container {ct.get('name')}", "kubelet")
        if pod["spec"].get("restartPolicy") in ("Never", "OnFailure"):
            self.later(self.timing.job_pod_run, (c.name, "podfinish", ns, name))

    def _pull_failed(
        self, c: VirtualCluster, pod: Obj, host_ip: str, unpullable: list[dict[str, Any]], now: str
    ) -> None:
        """The pod stays Pending, its containers waiting in ImagePullBackOff, as a kubelet leaves it when the
        registry cannot be reached."""
        names = " ".join(sorted(str(ct.get("name")) for ct in unpullable))
        status = {
            "phase": "Pending",
            "conditions": [
                {"type": "PodScheduled", "status": "True", "lastTransitionTime": now},
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady", "lastTransitionTime": now,
                 "message": f"containers with unready status: [{names}]"},
            ],
            "hostIP": host_ip,
            "startTime": now,
            "qosClass": "BestEffort",
            "containerStatuses": [
                {"name": ct.get("name"), "image": ct.get("image"), "imageID": "", "ready": False, "started": False,
                 "restartCount": 0,
                 "state": {"waiting": {"reason": "ImagePullBackOff",
                                       "message": f'Back-off pulling image "{ct.get("image")}"'}}}
                for ct in unpullable
            ],
        }  # fmt: skip
        self._set_status(c, self._rt(c, "/pods"), pod, status)
        for ct in unpullable:
            image = str(ct.get("image"))
            message = f'Failed to pull image "{image}": dial tcp: lookup {registry_host(image)}: no such host'
            self._event(c, pod, "Failed", message, "kubelet", kind="Warning")

    def _pod_finish(self, c: VirtualCluster, ns: str, name: str) -> None:
        pod = c.store.get("/pods", ns, name)
        if pod is None or (pod.get("status") or {}).get("phase") != "Running":
            return
        now = rfc3339(c.clock)
        status = copy.deepcopy(pod["status"])
        status["phase"] = "Succeeded"
        for cond in status.get("conditions") or []:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond.update(status="False", reason="PodCompleted", lastTransitionTime=now)
        for cs in status.get("containerStatuses") or []:
            started = (cs.get("state") or {}).get("running", {}).get("startedAt", now)
            cs.update(ready=False, started=False, state={"terminated": {
                "exitCode": 0, "reason": "Completed", "startedAt": started, "finishedAt": now}})  # fmt: skip
        self._set_status(c, self._rt(c, "/pods"), pod, status)

    # ---- cron jobs
    def _cronjob(self, c: VirtualCluster, ns: str, name: str) -> None:
        """Create the Job a CronJob's schedule calls for (the latest missed run only, as with no deadline), keep
        its history limits, and come back when the next run is due."""
        cj = c.store.get("batch/cronjobs", ns, name)
        if cj is None or cj["metadata"].get("deletionTimestamp"):
            return
        spec = cj.get("spec") or {}
        status = copy.deepcopy(cj.get("status") or {})
        now = c.clock.now()
        last = _parse_time(status.get("lastScheduleTime") or cj["metadata"]["creationTimestamp"])
        try:
            due = cron.next_after(spec.get("schedule", ""), last)
        except ValueError:
            return  # refused at create; an old object with a bad schedule simply never runs
        jobs_rt = self._rt(c, "batch/jobs")
        jobs = self._owned(c, "batch/jobs", ns, cj, "CronJob")
        active = [j for j in jobs if not _job_finished(j)]
        if due <= now and not spec.get("suspend"):
            latest = due
            for _ in range(10_000):
                following = cron.next_after(spec["schedule"], latest)
                if following > now:
                    break
                latest = following
            policy = spec.get("concurrencyPolicy", "Allow")
            if policy == "Replace":
                for j in active:
                    self._delete(c, "batch/jobs", j)
            if policy != "Forbid" or not active:
                job_name = f"{name}-{int(latest.timestamp()) // 60}"
                if c.store.get("batch/jobs", ns, job_name) is None:
                    template = copy.deepcopy(spec.get("jobTemplate") or {})
                    meta = template.get("metadata") or {}
                    job = {"apiVersion": "batch/v1", "kind": "Job", "spec": template.get("spec") or {},
                           "metadata": {"name": job_name, "namespace": ns, "labels": meta.get("labels") or {},
                                        "annotations": {**(meta.get("annotations") or {}),
                                                        "batch.kubernetes.io/cronjob-scheduled-timestamp":
                                                            latest.strftime("%Y-%m-%dT%H:%M:%SZ")},
                                        "ownerReferences": [_owner_ref(cj)]}}  # fmt: skip
                    c.create(jobs_rt, ns, job, SYSTEM)
                    self._event(c, cj, "SuccessfulCreate", f"Created job {job_name}", "cronjob-controller")
            status["lastScheduleTime"] = latest.strftime("%Y-%m-%dT%H:%M:%SZ")
        jobs = self._owned(c, "batch/jobs", ns, cj, "CronJob")
        finished = sorted((j for j in jobs if _job_finished(j)), key=lambda j: j["metadata"]["creationTimestamp"])
        keep = int(spec.get("successfulJobsHistoryLimit", 3))
        for old in finished[: max(0, len(finished) - keep)]:
            self._delete(c, "batch/jobs", old)
        if finished:
            done = max((j.get("status") or {}).get("completionTime") or "" for j in finished)
            if done:
                status["lastSuccessfulTime"] = done
        refs = [{"apiVersion": "batch/v1", "kind": "Job", "name": j["metadata"]["name"], "namespace": ns,
                 "uid": j["metadata"]["uid"]} for j in jobs if not _job_finished(j)]  # fmt: skip
        if refs:
            status["active"] = refs
        else:
            status.pop("active", None)
        self._set_status(c, self._rt(c, "batch/cronjobs"), cj, status)
        following = cron.next_after(spec["schedule"], max(now, _parse_time(status.get("lastScheduleTime") or
                                                                             cj["metadata"]["creationTimestamp"])))  # fmt: skip
        self.later(min(60.0, max(0.05, (following - now).total_seconds() + 0.05)), (c.name, "cronjob", ns, name))

    # ---- jobs, daemon sets, stateful sets
    def _job(self, c: VirtualCluster, ns: str, name: str) -> None:
        job = c.store.get("batch/jobs", ns, name)
        if job is None or job["metadata"].get("deletionTimestamp"):
            return
        spec = job.get("spec") or {}
        completions = int(spec.get("completions", 1))
        parallelism = int(spec.get("parallelism", 1))
        pods = self._owned(c, "/pods", ns, job, "Job")
        succeeded = sum(1 for p in pods if (p.get("status") or {}).get("phase") == "Succeeded")
        active = [p for p in pods if (p.get("status") or {}).get("phase") in ("Pending", "Running")]
        status = copy.deepcopy(job.get("status") or {})
        now = rfc3339(c.clock)
        status.setdefault("startTime", now)
        if succeeded >= completions:
            if not any(x.get("type") == "Complete" for x in status.get("conditions") or []):
                status["conditions"] = [
                    {"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                     "reason": "CompletionsReached", "message": "Reached expected number of succeeded pods"}
                    for t in ("SuccessCriteriaMet", "Complete")
                ]  # fmt: skip
                status["completionTime"] = now
                self._event(c, job, "Completed", "Job completed", "job-controller")
        elif not spec.get("suspend"):
            for _ in range(min(parallelism - len(active), completions - succeeded - len(active))):
                self._new_pod(c, job, spec.get("template") or {})
            active = [p for p in self._owned(c, "/pods", ns, job, "Job")
                      if (p.get("status") or {}).get("phase") in ("Pending", "Running")]  # fmt: skip
        status["active"] = len(active)
        status["succeeded"] = succeeded
        status["ready"] = sum(1 for p in active if _pod_ready(p))
        status["terminating"] = 0
        status = {k: v for k, v in status.items() if v != 0 or k in ("ready", "terminating")}
        self._set_status(c, self._rt(c, "batch/jobs"), job, status)

    def _daemonset(self, c: VirtualCluster, ns: str, name: str) -> None:
        ds = c.store.get("apps/daemonsets", ns, name)
        if ds is None or ds["metadata"].get("deletionTimestamp"):
            return
        pods = self._owned(c, "/pods", ns, ds, "DaemonSet")
        on_node = {(p.get("spec") or {}).get("nodeName") for p in pods}
        template = (ds.get("spec") or {}).get("template") or {}
        nodes = [n["metadata"]["name"] for n in c.store.list("/nodes") if tolerates(template, n)]
        for node in nodes:
            if node not in on_node:
                self._new_pod(c, ds, (ds.get("spec") or {}).get("template") or {}, node=node)
        pods = self._owned(c, "/pods", ns, ds, "DaemonSet")
        ready = sum(1 for p in pods if _pod_ready(p))
        status = {
            "currentNumberScheduled": len(pods),
            "desiredNumberScheduled": len(nodes),
            "numberMisscheduled": 0,
            "numberReady": ready,
            "numberAvailable": ready,
            "updatedNumberScheduled": len(pods),
            "observedGeneration": ds["metadata"].get("generation", 1),
        }
        if len(nodes) - ready > 0:
            status["numberUnavailable"] = len(nodes) - ready
        self._set_status(c, self._rt(c, "apps/daemonsets"), ds, status)

    def _statefulset(self, c: VirtualCluster, ns: str, name: str) -> None:
        sts = c.store.get("apps/statefulsets", ns, name)
        if sts is None or sts["metadata"].get("deletionTimestamp"):
            return
        spec = sts.get("spec") or {}
        want = int(spec.get("replicas", 1))
        pods = {p["metadata"]["name"]: p for p in self._owned(c, "/pods", ns, sts, "StatefulSet")}
        revision = f"{name}-{template_hash(spec.get('template'))}"
        for i in range(want):
            pod_name = f"{name}-{i}"
            if pod_name not in pods:
                labels = {"statefulset.kubernetes.io/pod-name": pod_name, "controller-revision-hash": revision,
                          "apps.kubernetes.io/pod-index": str(i)}  # fmt: skip
                self._new_pod(c, sts, spec.get("template") or {}, name=pod_name, extra_labels=labels)
                break  # OrderedReady: one pod at a time
            if not _pod_ready(pods[pod_name]):
                break
        for pod_name, p in pods.items():
            if int(pod_name.rsplit("-", 1)[-1]) >= want:
                self._delete(c, "/pods", p)
        pods = {p["metadata"]["name"]: p for p in self._owned(c, "/pods", ns, sts, "StatefulSet")}
        ready = sum(1 for p in pods.values() if _pod_ready(p))
        status = {
            "replicas": len(pods),
            "readyReplicas": ready,
            "availableReplicas": ready,
            "currentReplicas": len(pods),
            "updatedReplicas": len(pods),
            "currentRevision": revision,
            "updateRevision": revision,
            "collisionCount": 0,
            "observedGeneration": sts["metadata"].get("generation", 1),
        }
        self._set_status(c, self._rt(c, "apps/statefulsets"), sts, status)

    # ---- service accounts and endpoints
    def _service_account(self, c: VirtualCluster, ns: str, name: str) -> None:
        """Every namespace gets its ``default`` service account, as the real service account controller does."""
        namespace = c.store.get("/namespaces", "", ns)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        if c.store.get("/serviceaccounts", ns, name) is None:
            c.create(self._rt(c, "/serviceaccounts"), ns, {"metadata": {"name": name}}, SYSTEM)

    def _endpoints(self, c: VirtualCluster, ns: str, _: str) -> None:
        """Endpoints of every Service with a selector in ``ns``: the Ready pods it selects."""
        services = [s for s in c.store.list("/services", ns) if (s.get("spec") or {}).get("selector")]
        if not services:
            return
        namespace = c.store.get("/namespaces", "", ns)
        if namespace is None or namespace["metadata"].get("deletionTimestamp"):
            return
        pods = [p for p in c.store.list("/pods", ns) if (p.get("status") or {}).get("podIP")]
        ep_rt = self._rt(c, "/endpoints")
        for svc in services:
            reqs = selector_from_label_selector({"matchLabels": svc["spec"]["selector"]})
            chosen = [p for p in pods if labels_match(reqs, p) and not p["metadata"].get("deletionTimestamp")]
            ready = [p for p in chosen if _pod_ready(p)]
            not_ready = [p for p in chosen if not _pod_ready(p)]

            def address(p: Obj) -> dict[str, Any]:
                return {"ip": p["status"]["podIP"], "nodeName": p["spec"].get("nodeName"),
                        "targetRef": {"kind": "Pod", "namespace": ns, "name": p["metadata"]["name"],
                                      "uid": p["metadata"]["uid"]}}  # fmt: skip

            subset: dict[str, Any] = {}
            if ready:
                subset["addresses"] = [address(p) for p in ready]
            if not_ready:
                subset["notReadyAddresses"] = [address(p) for p in not_ready]
            ports = [{k: v for k, v in (("name", sp.get("name")), ("port", sp.get("targetPort", sp.get("port"))),
                                        ("protocol", sp.get("protocol", "TCP"))) if v is not None}
                     for sp in svc["spec"].get("ports") or []]  # fmt: skip
            if subset and ports:
                subset["ports"] = [p if isinstance(p.get("port"), int) else {**p, "port": 0} for p in ports]
            name = svc["metadata"]["name"]
            body = {"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": ns, "labels": dict(svc["metadata"].get("labels") or {})},
                    "subsets": [subset] if subset else []}  # fmt: skip
            current = c.store.get("/endpoints", ns, name)
            if current is None:
                c.create(ep_rt, ns, body, SYSTEM)
            elif current.get("subsets") != body["subsets"]:
                new = copy.deepcopy(current)
                new["subsets"] = body["subsets"]
                c.update(ep_rt, ns, name, new, SYSTEM, managed_already=True)

    # ---- namespace deletion and garbage collection
    def _namespace(self, c: VirtualCluster, _: str, name: str) -> None:
        ns = c.store.get("/namespaces", "", name)
        if ns is None or not ns["metadata"].get("deletionTimestamp"):
            return
        remaining = 0
        for rt in c.registry.all_types():
            if not rt.namespaced or not rt.persisted:
                continue
            for obj in c.store.list(rt.key, name):
                remaining += 1
                self._delete(c, rt.key, obj)
        if remaining and any(c.store.list(rt.key, name) for rt in c.registry.all_types() if rt.namespaced):
            self.later(0.2, (c.name, "namespace", "", name))
            return
        ns = c.store.get("/namespaces", "", name)
        if ns is None:
            return
        new = copy.deepcopy(ns)
        new["spec"]["finalizers"] = [f for f in new["spec"].get("finalizers") or [] if f != "kubernetes"]
        c.update(self._rt(c, "/namespaces"), "", name, new, SYSTEM, subresource="finalize", managed_already=True)

    def _foreground(self, c: VirtualCluster, ns: str, ref: str) -> None:
        """Foreground deletion: delete the dependents, then let the owner go by dropping its finalizer."""
        key, _, name = ref.partition("\x00")
        owner = c.store.get(key, ns, name)
        if owner is None or FOREGROUND not in (owner["metadata"].get("finalizers") or ()):
            return
        uid = owner["metadata"]["uid"]
        for rt in c.registry.all_types():
            if not rt.persisted:
                continue
            for obj in c.store.list(rt.key):
                if any(r.get("uid") == uid for r in obj["metadata"].get("ownerReferences") or ()):
                    self._delete(c, rt.key, obj)
        if any(
            any(r.get("uid") == uid for r in o["metadata"].get("ownerReferences") or ())
            for rt in c.registry.all_types()
            if rt.persisted
            for o in c.store.list(rt.key)
        ):
            self.later(0.2, (c.name, "foreground", ns, ref))
            return
        done = copy.deepcopy(owner)
        done["metadata"]["finalizers"] = [f for f in owner["metadata"]["finalizers"] if f != FOREGROUND]
        owner_rt = c.registry.by_key(key)
        assert owner_rt is not None
        c.update(owner_rt, ns, name, done, SYSTEM, managed_already=True)

    def _gc(self, c: VirtualCluster, _: str, uid: str) -> None:
        orphan = uid in c.orphan_uids
        c.orphan_uids.discard(uid)
        for rt in c.registry.all_types():
            if not rt.persisted:
                continue
            for obj in c.store.list(rt.key):
                refs = obj["metadata"].get("ownerReferences") or []
                if not any(r.get("uid") == uid for r in refs):
                    continue
                if orphan:
                    new = copy.deepcopy(obj)
                    new["metadata"]["ownerReferences"] = [r for r in refs if r.get("uid") != uid]
                    if not new["metadata"]["ownerReferences"]:
                        del new["metadata"]["ownerReferences"]
                    c.update(rt, obj["metadata"].get("namespace", ""), obj["metadata"]["name"], new, SYSTEM,
                             managed_already=True)  # fmt: skip
                else:
                    self._delete(c, rt.key, obj)


def record_event(
    c: VirtualCluster,
    obj: Obj,
    reason: str,
    message: str,
    component: str,
    kind: str = "Normal",
    *,
    name: str,
    annotations: dict[str, str] | None = None,
) -> None:
    """Record an Event (``kind`` Normal or Warning) about ``obj``, keeping at most ``MAX_EVENTS`` per namespace as the
    real server's event TTL would. Nothing is recorded in a missing or terminating namespace."""
    meta = obj["metadata"]
    ns = meta.get("namespace") or "default"
    namespace = c.store.get("/namespaces", "", ns)
    if namespace is None or namespace["metadata"].get("deletionTimestamp"):
        return
    events_rt = c.registry.by_key("/events")
    assert events_rt is not None
    existing = c.store.list("/events", ns)
    for old in sorted(existing, key=lambda e: int(e["metadata"]["resourceVersion"]))[: len(existing) - MAX_EVENTS + 1]:
        c.delete(events_rt, ns, old["metadata"]["name"])
    now = rfc3339(c.clock)
    event_meta: dict[str, Any] = {"name": name, "namespace": ns}
    if annotations:
        event_meta["annotations"] = dict(annotations)
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": event_meta,
        "involvedObject": {"apiVersion": obj["apiVersion"], "kind": obj["kind"], "name": meta["name"],
                           "namespace": ns, "uid": meta["uid"], "resourceVersion": meta.get("resourceVersion")},
        "reason": reason,
        "message": message,
        "source": {"component": component},
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
        "type": kind,
        "reportingComponent": component,
        "reportingInstance": "",
    }  # fmt: skip
    c.create(events_rt, ns, event, SYSTEM)
