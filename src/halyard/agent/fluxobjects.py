"""What config-agent writes for a configuration, and what it reports of it: pure, no I/O.

``manifests`` turns one configuration (the engine shape ``dp`` delivers, object names already decided there) into the
real Flux objects: a source (``source.toolkit.fluxcd.io/v1`` GitRepository or Bucket, ``v1beta2`` OCIRepository)
named as the configuration, a ``kustomize.toolkit.fluxcd.io/v1`` Kustomization per kustomization named
``<config>-<kustomization>``, and the Secret ``<config>-auth`` holding the protected settings as Flux reads them.
``report`` reads those objects' status conditions back into Arc's shapes: each object's complianceState, the
configuration's roll-up, the synced commit.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

SOURCE_GROUP = "source.toolkit.fluxcd.io"
KUSTOMIZE_GROUP = "kustomize.toolkit.fluxcd.io"
API_VERSIONS = {
    "GitRepository": f"{SOURCE_GROUP}/v1",
    "Bucket": f"{SOURCE_GROUP}/v1",
    "OCIRepository": f"{SOURCE_GROUP}/v1beta2",
    "Kustomization": f"{KUSTOMIZE_GROUP}/v1",
}
CONFIG_LABEL = "halyard.io/flux-configuration"  # the configuration's name, on every object config-agent writes
KIND_LABEL = "halyard.io/configuration-kind"  # fluxConfiguration or sourceControlConfiguration
GENERATION_ANNOTATION = "halyard.io/generation"
MANAGED_BY = {"app.kubernetes.io/managed-by": "halyard"}
MAX_STATUSES = 200
MAX_MESSAGE = 4000


class InvalidSettings(ValueError):
    """A protected setting could not be decoded (checked at the API too; this guards a changed control plane)."""


def secret_name(config: str) -> str:
    return f"{config}-auth"


def _decoded(settings: Mapping[str, str], key: str) -> str | None:
    value = settings.get(key)
    if value is None:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise InvalidSettings(f"protected setting {key} is not base64-encoded text") from None


def secret_data(entry: Mapping[str, Any], generated_key: tuple[str, str] | None = None) -> dict[str, str]:
    """The Secret's data (values as Flux reads them, before the Secret's own base64), empty when none is needed.
    ``generated_key`` (private, public) is the ssh key config-agent generated when an ssh URL came with none."""
    protected: Mapping[str, str] = entry.get("configurationProtectedSettings") or {}
    source = entry.get("source") or {}
    data: dict[str, str] = {}
    if entry["sourceKind"] == "GitRepository":
        ssh = _decoded(protected, "sshPrivateKey")
        if ssh is None and generated_key is not None:
            ssh = generated_key[0]
            data["identity.pub"] = generated_key[1]
        if ssh is not None:
            data["identity"] = ssh
        known = _decoded(protected, "sshKnownHosts") or _b64_or_plain(source.get("sshKnownHosts"))
        if known:
            data["known_hosts"] = known
        https = _decoded(protected, "httpsKey")
        if https is not None:
            data["username"] = source.get("httpsUser") or ""
            data["password"] = https
        ca = _b64_or_plain(source.get("httpsCACert"))
        if ca:
            data["ca.crt"] = ca
    elif entry["sourceKind"] == "Bucket":
        secret = _decoded(protected, "bucketSecretKey")
        if secret is not None:
            data["accesskey"] = source.get("accessKey") or ""
            data["secretkey"] = secret
    return data


def _b64_or_plain(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return base64.b64decode(value, validate=True).decode()
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return value


def needs_generated_key(entry: Mapping[str, Any]) -> bool:
    """An ssh URL with no key and no Secret of the cluster's own: Arc generates a key pair in the cluster and shows
    its public half as ``repositoryPublicKey`` (to be added as the repository's deploy key)."""
    if entry["sourceKind"] != "GitRepository":
        return False
    source = entry.get("source") or {}
    protected = entry.get("configurationProtectedSettings") or {}
    return _is_ssh(source.get("url") or "") and not source.get("localAuthRef") and "sshPrivateKey" not in protected


def _is_ssh(url: str) -> bool:
    return url.startswith("ssh://") or ("@" in url and "://" not in url)


def _duration(seconds: int | None) -> str | None:
    return f"{int(seconds)}s" if seconds else None


def _meta(entry: Mapping[str, Any], name: str) -> dict[str, Any]:
    return {
        "name": name,
        "namespace": entry["namespace"],
        "labels": {CONFIG_LABEL: entry["name"], KIND_LABEL: entry["kind"], **MANAGED_BY},
        "annotations": {GENERATION_ANNOTATION: entry["generation"]},
    }


def _compact(spec: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in spec.items() if v is not None and v != {}}


def manifests(entry: Mapping[str, Any], *, has_secret: bool) -> list[dict[str, Any]]:
    """The source first, then the Kustomizations (in the order given); the Secret is written apart."""
    source = entry.get("source") or {}
    kind = entry["sourceKind"]
    secret_ref = {"name": source["localAuthRef"]} if source.get("localAuthRef") else None
    if secret_ref is None and has_secret:
        secret_ref = {"name": secret_name(entry["name"])}
    common = {
        "interval": _duration(source.get("syncIntervalInSeconds")),
        "timeout": _duration(source.get("timeoutInSeconds")),
        "suspend": bool(entry.get("suspend")),
        "secretRef": secret_ref,
    }
    if kind == "GitRepository":
        ref = source.get("repositoryRef") or {}
        spec = {"url": source["url"], "ref": {k: ref[k] for k in ("branch", "tag", "semver", "commit") if ref.get(k)}}
        if source.get("provider") in ("azure", "github", "Azure", "GitHub"):
            spec["provider"] = str(source["provider"]).lower()
    elif kind == "Bucket":
        parts = urlsplit(source["url"])
        spec = {
            "provider": "generic",
            "bucketName": source["bucketName"],
            "endpoint": parts.netloc,
            "insecure": bool(source.get("insecure")) or parts.scheme == "http",
        }
    else:
        ref = source.get("repositoryRef") or {}
        spec = {
            "url": source["url"],
            "ref": {k: ref[k] for k in ("tag", "semver", "digest") if ref.get(k)},
            "insecure": source.get("insecure"),
            "serviceAccountName": source.get("serviceAccountName"),
        }
    objects = [
        {
            "apiVersion": API_VERSIONS[kind],
            "kind": kind,
            "metadata": _meta(entry, entry["sourceName"]),
            "spec": _compact({**spec, **common}),
        }
    ]
    names = {k["name"]: k["objectName"] for k in entry.get("kustomizations") or []}
    for k in entry.get("kustomizations") or []:
        post_build = (k.get("postBuild") or {}).get("substitute")
        spec = {
            "sourceRef": {"kind": kind, "name": entry["sourceName"], "namespace": entry["namespace"]},
            "path": "./" + (k.get("path") or "").lstrip("./").lstrip("/") if k.get("path") else "./",
            "interval": _duration(k.get("syncIntervalInSeconds")),
            "timeout": _duration(k.get("timeoutInSeconds")),
            "retryInterval": _duration(k.get("retryIntervalInSeconds")),
            "prune": bool(k.get("prune")),
            "force": bool(k.get("force")),
            "wait": bool(k.get("wait")),
            "suspend": bool(entry.get("suspend")),
            "dependsOn": [{"name": names[d]} for d in k.get("dependsOn") or [] if d in names] or None,
            "postBuild": {"substitute": post_build} if post_build else None,
            "targetNamespace": entry["namespace"] if entry.get("scope") == "namespace" else None,
        }
        objects.append(
            {
                "apiVersion": API_VERSIONS["Kustomization"],
                "kind": "Kustomization",
                "metadata": _meta(entry, k["objectName"]),
                "spec": _compact(spec),
            }
        )
    return objects


# ---- compliance ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Observed:
    """A Flux object as read from the cluster (None: not there)."""

    kind: str
    name: str
    namespace: str
    body: Mapping[str, Any] | None


def _conditions(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    result = []
    for c in ((body.get("status") or {}).get("conditions") or [])[:8]:
        result.append(
            {
                "type": str(c.get("type") or "")[:256],
                "status": str(c.get("status") or "")[:256],
                "reason": (str(c["reason"])[:256] if c.get("reason") else None),
                "message": (str(c["message"])[:MAX_MESSAGE] if c.get("message") else None),
                "lastTransitionTime": (str(c["lastTransitionTime"])[:256] if c.get("lastTransitionTime") else None),
            }
        )
    return result


def object_compliance(body: Mapping[str, Any] | None) -> str:
    """Arc's complianceState of one Flux object, from its Ready condition (and whether Flux has seen its spec)."""
    if body is None:
        return "Pending"
    if (body.get("spec") or {}).get("suspend"):
        return "Suspended"
    status = body.get("status") or {}
    generation = (body.get("metadata") or {}).get("generation")
    observed = status.get("observedGeneration")
    if generation is not None and observed is not None and observed < generation:
        return "Pending"  # the controller has not reconciled this spec yet
    ready = next((c for c in status.get("conditions") or [] if c.get("type") == "Ready"), None)
    if ready is None:
        return "Pending"
    if ready.get("status") == "True":
        return "Compliant"
    if ready.get("status") == "False":
        return "Non-Compliant"
    return "Pending"


def rollup(states: Sequence[str], suspended: bool) -> str:
    if suspended:
        return "Suspended"
    if not states:
        return "Unknown"
    for state in ("Non-Compliant", "Pending", "Unknown"):
        if state in states:
            return state
    if all(s == "Suspended" for s in states):
        return "Suspended"
    return "Compliant"


def _inventory(body: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """A Kustomization's applied objects (namespace, name, kind) from ``status.inventory`` (``ns_name_group_Kind``)."""
    result = []
    for item in ((body.get("status") or {}).get("inventory") or {}).get("entries") or []:
        parts = str(item.get("id") or "").split("_")
        if len(parts) >= 4:
            result.append((parts[0], "_".join(parts[1:-2]), parts[-1]))
    return result


def report(entry: Mapping[str, Any], observed: Sequence[Observed]) -> dict[str, Any]:
    """What config-agent tells ``dp`` of a configuration whose objects it wrote: statuses, roll-up, commit."""
    statuses: list[dict[str, Any]] = []
    errors: list[str] = []
    source_body: Mapping[str, Any] | None = None
    for item in observed:
        state = object_compliance(item.body)
        statuses.append(
            {
                "name": item.name,
                "namespace": item.namespace,
                "kind": item.kind,
                "complianceState": state,
                "appliedBy": None,
                "statusConditions": _conditions(item.body) if item.body is not None else [],
                "helmReleaseProperties": None,
            }
        )
        if item.kind == entry["sourceKind"]:
            source_body = item.body
        if state == "Non-Compliant" and item.body is not None:
            ready = next((c for c in _conditions(item.body) if c["type"] == "Ready"), None)
            if ready and ready.get("message"):
                errors.append(f"{item.kind} {item.name}: {ready['message']}")
        if item.kind == "Kustomization" and item.body is not None:
            for namespace, name, kind in _inventory(item.body):
                if len(statuses) >= MAX_STATUSES:
                    break
                statuses.append(
                    {
                        "name": name,
                        "namespace": namespace or None,
                        "kind": kind,
                        "complianceState": state,
                        "appliedBy": {"name": item.name, "namespace": item.namespace, "kind": "Kustomization"},
                        "statusConditions": [],
                        "helmReleaseProperties": None,
                    }
                )
    flux_states = [s["complianceState"] for s in statuses if s["appliedBy"] is None]
    artifact = ((source_body or {}).get("status") or {}).get("artifact") or {}
    result: dict[str, Any] = {
        "complianceState": rollup(flux_states, bool(entry.get("suspend"))),
        "statuses": statuses[:MAX_STATUSES],
    }
    if artifact.get("revision"):
        result["sourceSyncedCommitId"] = str(artifact["revision"])[:256]
    if artifact.get("lastUpdateTime"):
        result["sourceUpdatedAt"] = str(artifact["lastUpdateTime"])[:256]
    if errors:
        result["errorMessage"] = "; ".join(errors)[:MAX_MESSAGE]
    return result
