"""Flux's status vocabulary, free of I/O: condition types and reasons (``fluxcd/pkg/apis/meta`` and the controllers'
own), setting a condition the way ``fluxcd/pkg/runtime/conditions`` does, and Go's duration syntax (``1m30s``),
which Flux's ``interval``/``timeout`` fields use and its messages print.
"""

from __future__ import annotations

import copy
import re
from typing import Any

# Condition types.
READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
FETCH_FAILED = "FetchFailed"
ARTIFACT_IN_STORAGE = "ArtifactInStorage"
ARTIFACT_OUTDATED = "ArtifactOutdated"
STORAGE_OPERATION_FAILED = "StorageOperationFailed"
HEALTHY = "Healthy"

# Reasons (fluxcd/pkg/apis/meta, source-controller's api/v1/condition_types.go, kustomize-controller).
SUCCEEDED = "Succeeded"
PROGRESSING = "Progressing"
PROGRESSING_WITH_RETRY = "ProgressingWithRetry"
GIT_OPERATION_FAILED = "GitOperationFailed"
GIT_OPERATION_SUCCEEDED = "GitOperationSucceeded"
AUTHENTICATION_FAILED = "AuthenticationFailed"
URL_INVALID = "URLInvalid"
RECONCILIATION_SUCCEEDED = "ReconciliationSucceeded"
RECONCILIATION_FAILED = "ReconciliationFailed"
BUILD_FAILED = "BuildFailed"
ARTIFACT_FAILED = "ArtifactFailed"
DEPENDENCY_NOT_READY = "DependencyNotReady"
HEALTH_CHECK_FAILED = "HealthCheckFailed"
PRUNE_FAILED = "PruneFailed"
# The simulator's own: a kind it accepts but cannot fetch (Bucket, OCIRepository, ssh:// URLs).
NOT_SUPPORTED = "NotSupportedBySimulator"

FINALIZER = "finalizers.fluxcd.io"
MAX_MESSAGE = 32768  # conditions.Set trims longer messages
RECONCILE_REQUESTED_AT = "reconcile.fluxcd.io/requestedAt"

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Seconds in a Go duration (``1m30s``, ``500ms``, ``2h``); ValueError if it is not one."""
    text = (text or "").strip()
    if text in ("0", ""):
        if text == "":
            raise ValueError("empty duration")
        return 0.0
    pos, total = 0, 0.0
    for m in _DURATION_PART.finditer(text):
        if m.start() != pos:
            break
        total += float(m.group(1)) * _UNITS[m.group(2)]
        pos = m.end()
    if pos != len(text):
        raise ValueError(f'time: invalid duration "{text}"')
    return total


def format_duration(seconds: float) -> str:
    """Go's ``time.Duration.String()``: ``30s``, ``1m0s``, ``1h2m3s``, ``500ms``."""
    if seconds == 0:
        return "0s"
    if seconds < 1:
        ms = seconds * 1000
        return f"{ms:g}ms" if ms >= 1 else f"{seconds * 1e6:g}µs"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    secs_text = f"{secs:.9f}".rstrip("0").rstrip(".")
    if hours:
        return f"{int(hours)}h{int(minutes)}m{secs_text}s"
    if minutes:
        return f"{int(minutes)}m{secs_text}s"
    return f"{secs_text}s"


def get(status: dict[str, Any], kind: str) -> dict[str, Any] | None:
    return next((c for c in status.get("conditions") or [] if c.get("type") == kind), None)


def is_true(status: dict[str, Any], kind: str) -> bool:
    c = get(status, kind)
    return c is not None and c.get("status") == "True"


def mark(status: dict[str, Any], kind: str, value: str, reason: str, message: str, generation: int, now: str) -> None:
    """Set a condition in ``status`` (in place) as ``fluxcd/pkg/runtime/conditions.Set`` does: ``lastTransitionTime``
    moves when the status, reason or message changes; Stalled, Reconciling and Ready first, then the others by
    highest observedGeneration and type."""
    conditions = [dict(c) for c in status.get("conditions") or []]
    message = message[:MAX_MESSAGE]
    old = next((c for c in conditions if c.get("type") == kind), None)
    same = old is not None and (old.get("status"), old.get("reason"), old.get("message")) == (value, reason, message)
    since = old["lastTransitionTime"] if same and old is not None else now
    new = {"type": kind, "status": value, "observedGeneration": generation, "lastTransitionTime": since,
           "reason": reason, "message": message}  # fmt: skip
    if old is not None:
        conditions[conditions.index(old)] = new
    else:
        conditions.append(new)
    weights = {STALLED: 0, RECONCILING: 1, READY: 2}
    conditions.sort(key=lambda c: (weights.get(c["type"], 3), -int(c.get("observedGeneration") or 0), c["type"]))
    status["conditions"] = conditions


def delete(status: dict[str, Any], kind: str) -> None:
    conditions = [c for c in status.get("conditions") or [] if c.get("type") != kind]
    if conditions:
        status["conditions"] = conditions
    else:
        status.pop("conditions", None)


def with_retry(status: dict[str, Any]) -> None:
    """After a failed attempt a present Reconciling condition says ``ProgressingWithRetry``, as both controllers do."""
    c = get(status, RECONCILING)
    if c is not None:
        c["reason"] = PROGRESSING_WITH_RETRY


def fresh(obj: dict[str, Any]) -> dict[str, Any]:
    """A working copy of the object's status."""
    return copy.deepcopy(obj.get("status") or {})


def requested_at(obj: dict[str, Any]) -> str:
    """The ``reconcile.fluxcd.io/requestedAt`` annotation (what ``flux reconcile`` sets), or ""."""
    return str(((obj.get("metadata") or {}).get("annotations") or {}).get(RECONCILE_REQUESTED_AT, ""))
