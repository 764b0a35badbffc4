"""The simulated source-controller: GitRepository fetched with the real git into an artifact (a .tar.gz of the
commit's tree in the simulator's storage), with the status, conditions, reasons and events of source-controller v1.
Bucket and OCIRepository objects are accepted (their CRDs validate them) but not fetched: Ready=False with the reason
``NotSupportedBySimulator``.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import urllib.parse
from typing import TYPE_CHECKING

from halyard.sim.cluster import VirtualCluster, rfc3339
from halyard.sim.flux import git
from halyard.sim.flux import status as st
from halyard.sim.flux.runner import GIT, SOURCE_GROUP
from halyard.sim.store import Obj

if TYPE_CHECKING:
    from halyard.sim.flux.runner import FluxControllers, Reconciler

COMPONENT = "source-controller"
STORAGE_HOST = "source-controller.flux-system.svc.cluster.local."


def _interval(obj: Obj) -> float:
    try:
        return st.parse_duration(str((obj.get("spec") or {}).get("interval") or "10m"))
    except ValueError:
        return 600.0


def _secret_auth(c: VirtualCluster, ns: str, name: str) -> git.Auth:
    secret = c.store.get("/secrets", ns, name)
    if secret is None:
        raise git.GitError(st.AUTHENTICATION_FAILED,
                           f"failed to get secret '{ns}/{name}': secrets \"{name}\" not found")  # fmt: skip
    data = {k: base64.b64decode(v) for k, v in (secret.get("data") or {}).items()}
    if "identity" in data:
        raise git.GitError(st.NOT_SUPPORTED, "ssh authentication (identity) is not supported by the simulator")
    return git.Auth(
        username=data.get("username", b"").decode(errors="replace"),
        password=data.get("password", b"").decode(errors="replace"),
        bearer_token=data.get("bearerToken", b"").decode(errors="replace"),
        ca_pem=data.get("ca.crt", b""),
    )


async def reconcile_git(flux: FluxControllers, c: VirtualCluster, ns: str, name: str) -> float | None:
    obj = c.store.get(GIT, ns, name)
    if obj is None:
        return None
    key = (c.name, GIT, ns, name)
    meta = obj["metadata"]
    if meta.get("deletionTimestamp"):
        await asyncio.to_thread(shutil.rmtree, flux.artifact_dir(c, "GitRepository", ns, name), True)
        if st.FINALIZER in (meta.get("finalizers") or ()):
            flux.set_finalizers(c, GIT, obj, [f for f in meta["finalizers"] if f != st.FINALIZER], COMPONENT)
        return None
    if st.FINALIZER not in (meta.get("finalizers") or ()):
        obj = flux.set_finalizers(c, GIT, obj, [*(meta.get("finalizers") or ()), st.FINALIZER], COMPONENT)
        if obj is None:
            return None
    spec = obj.get("spec") or {}
    if spec.get("suspend"):
        return None
    generation = int(obj["metadata"].get("generation", 1))
    status = st.fresh(obj)
    now = rfc3339(c.clock)
    old_artifact = status.get("artifact") or {}
    # The last of the messages source-controller's progressive status goes through before it fetches.
    if not old_artifact:
        message = "building artifact"
    elif status.get("observedGeneration", -1) != generation:
        message = f"processing object: new generation {status.get('observedGeneration', -1)} -> {generation}"
    else:
        message = "reconciliation in progress"
    # Persisted only for a new generation, a requested reconcile or a first artifact, as source-controller does: a
    # periodic no-op fetch leaves the object untouched.
    requested = st.requested_at(obj) and st.requested_at(obj) != status.get("lastHandledReconcileAt")
    if not old_artifact or status.get("observedGeneration", -1) != generation or requested:
        st.mark(status, st.RECONCILING, "True", st.PROGRESSING, message, generation, now)
        st.mark(status, st.READY, "Unknown", st.PROGRESSING, message, generation, now)
        flux.write_status(c, GIT, ns, name, status, COMPONENT)

    url = str(spec.get("url") or "")
    directory = flux.artifact_dir(c, "GitRepository", ns, name)
    had_failure = st.get(status, st.FETCH_FAILED) is not None
    try:
        scheme = urllib.parse.urlsplit(url).scheme
        if scheme in ("ssh",) or (not scheme and "@" in url.split("/")[0]):
            raise git.GitError(st.NOT_SUPPORTED, f"ssh URLs are not supported by the simulator: '{url}'")
        if scheme not in ("", "file", "http", "https"):
            raise git.GitError(st.URL_INVALID, f"failed to parse url '{url}': unsupported scheme '{scheme}'")
        secret_ref = (spec.get("secretRef") or {}).get("name")
        auth = _secret_auth(c, ns, secret_ref) if secret_ref else git.Auth()
        timeout = st.parse_duration(str(spec.get("timeout") or "60s"))
        limits = git.Limits(flux.settings.max_artifact_bytes, timeout)
        last_sha = ""
        if old_artifact.get("revision") and (directory / f"{_sha(old_artifact['revision'])}.tar.gz").exists():
            last_sha = _sha(old_artifact["revision"])
        async with flux.work:
            result = await git.fetch(flux.settings.git, url, spec.get("ref"), auth, limits, directory, last_sha)
    except git.GitError as e:
        message = f"failed to checkout and determine revision: {e}" if e.reason == st.GIT_OPERATION_FAILED else str(e)
        return _failed(flux, c, ns, name, e.reason, message)
    except ValueError as e:  # a bad timeout
        return _failed(flux, c, ns, name, st.URL_INVALID, str(e))

    obj = c.store.get(GIT, ns, name)
    if obj is None:
        return None
    status = st.fresh(obj)
    now = rfc3339(c.clock)
    generation = int(obj["metadata"].get("generation", 1))
    new_artifact = isinstance(result, git.Fetched)
    if isinstance(result, git.Fetched):
        path = f"gitrepository/{ns}/{name}/{result.sha}.tar.gz"
        size = result.archive.stat().st_size
        status["artifact"] = {
            "digest": await asyncio.to_thread(git.digest, result.archive),
            "lastUpdateTime": now,
            "path": path,
            "revision": result.revision,
            "size": size,
            "url": f"http://{STORAGE_HOST}/{path}",
        }
        for old in directory.glob("*.tar.gz"):
            if old != result.archive:
                old.unlink(missing_ok=True)
        revision, commit_message = result.revision, result.message
    else:
        revision, commit_message = result, ""
        artifact = status.get("artifact") or {}
        if artifact and artifact.get("revision") != revision:
            # The same commit under another name (the ref changed to one pointing at it): same archive, new revision.
            status["artifact"] = {**artifact, "revision": revision, "lastUpdateTime": now}
            new_artifact = True
    for kind in (st.FETCH_FAILED, st.ARTIFACT_OUTDATED, st.STORAGE_OPERATION_FAILED, st.RECONCILING):
        st.delete(status, kind)
    stored = f"stored artifact for revision '{revision}'"
    st.mark(status, st.READY, "True", st.SUCCEEDED, stored, generation, now)
    st.mark(status, st.ARTIFACT_IN_STORAGE, "True", st.SUCCEEDED, stored, generation, now)
    status["observedGeneration"] = generation
    if st.requested_at(obj):
        status["lastHandledReconcileAt"] = st.requested_at(obj)
    written = flux.write_status(c, GIT, ns, name, status, COMPONENT)
    annotations = {f"{SOURCE_GROUP}/revision": revision, f"{SOURCE_GROUP}/digest": status["artifact"]["digest"]}
    if written is not None and (new_artifact or had_failure):
        reason = "NewArtifact" if new_artifact else st.SUCCEEDED
        message = f"stored artifact for commit '{commit_message or revision}'"
        flux.event(c, written, "Normal", reason, message, COMPONENT, annotations)
    flux.succeeded(key)
    return _interval(obj)


def _sha(revision: str) -> str:
    return revision.rpartition("sha1:")[2]


def _failed(flux: FluxControllers, c: VirtualCluster, ns: str, name: str, reason: str, message: str) -> float | None:
    obj = c.store.get(GIT, ns, name)
    if obj is None:
        return None
    status = st.fresh(obj)
    now = rfc3339(c.clock)
    generation = int(obj["metadata"].get("generation", 1))
    st.mark(status, st.FETCH_FAILED, "True", reason, message, generation, now)
    st.mark(status, st.READY, "False", reason, message, generation, now)
    if st.get(status, st.RECONCILING) is None:
        st.mark(status, st.RECONCILING, "True", st.PROGRESSING, "reconciliation in progress", generation, now)
    st.with_retry(status)
    if st.requested_at(obj):
        status["lastHandledReconcileAt"] = st.requested_at(obj)
    written = flux.write_status(c, GIT, ns, name, status, COMPONENT)
    if written is not None:
        flux.event(c, written, "Warning", reason, message, COMPONENT)
    if reason == st.NOT_SUPPORTED:
        return None  # nothing a retry could change: the spec must change (which reconciles again)
    return flux.backoff((c.name, GIT, ns, name))


def reconcile_unsupported(key: str) -> Reconciler:
    """Bucket and OCIRepository: accepted and validated by their CRDs, never fetched."""

    async def reconcile(flux: FluxControllers, c: VirtualCluster, ns: str, name: str) -> float | None:
        obj = c.store.get(key, ns, name)
        if obj is None:
            return None
        meta = obj["metadata"]
        if meta.get("deletionTimestamp"):
            if st.FINALIZER in (meta.get("finalizers") or ()):
                flux.set_finalizers(c, key, obj, [f for f in meta["finalizers"] if f != st.FINALIZER], COMPONENT)
            return None
        if st.FINALIZER not in (meta.get("finalizers") or ()):
            obj = flux.set_finalizers(c, key, obj, [*(meta.get("finalizers") or ()), st.FINALIZER], COMPONENT)
            if obj is None:
                return None
        if (obj.get("spec") or {}).get("suspend"):
            return None
        generation = int(obj["metadata"].get("generation", 1))
        status = st.fresh(obj)
        message = f"{obj['kind']} sources are not supported by the simulator (halyard sim): nothing is fetched"
        now = rfc3339(c.clock)
        st.mark(status, st.FETCH_FAILED, "True", st.NOT_SUPPORTED, message, generation, now)
        st.mark(status, st.READY, "False", st.NOT_SUPPORTED, message, generation, now)
        st.delete(status, st.RECONCILING)
        status["observedGeneration"] = generation
        before = obj.get("status")
        written = flux.write_status(c, key, ns, name, status, COMPONENT)
        if written is not None and before != written.get("status"):
            flux.event(c, written, "Warning", st.NOT_SUPPORTED, message, COMPONENT)
        return None

    return reconcile
