"""config-agent: writes the cluster's GitOps configurations as real Flux objects and reports their compliance.

Desired state: the cluster's Flux and source-control configurations, long-polled from ``dp``
(``GET /dp/v1/fluxConfigurations``, answered within a second of a write, decision 009), each in the one engine shape
whose object names the control plane decided. For each one it writes, with server-side apply, the Secret of its
protected settings (``<config>-auth``, never logged), the source and the Kustomizations (``fluxobjects.py``),
labelled with the configuration's name so that what is no longer desired is found even after a restart. Removal
is done with a finalizer's care: the Kustomizations first (Flux's own finalizer prunes what they applied), their
disappearance awaited, then the source and the Secret; only then is the configuration reported removed, which is
what its deletion waits for.

Status: while configurations exist, their objects are read every ``STATUS_SECONDS`` and a report is sent whenever
what it says changes (the Ready conditions, the synced commit), so complianceState follows within seconds.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.generic_resource import create_namespaced_resource
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Secret

from halyard.agent import fluxobjects
from halyard.agent.controlplane import ControlPlaneError
from halyard.agent.endpoints import Url, url_of
from halyard.agent.longpoll import HOLD_SECONDS, Hold, poll_desired
from halyard.agent.resourcesync import TokenSource

log = logging.getLogger("halyard.agent")
FLUX_CONFIGURATIONS_PATH = "/v1/fluxConfigurations"  # under the dp endpoint (which ends in /dp)
FLUX_REPORTS_PATH = "/v1/fluxConfigurations/reports"
STATUS_SECONDS = 1.0
FIELD_MANAGER = "halyard-config-agent"
KINDS = {
    "GitRepository": create_namespaced_resource("source.toolkit.fluxcd.io", "v1", "GitRepository", "gitrepositories"),
    "Bucket": create_namespaced_resource("source.toolkit.fluxcd.io", "v1", "Bucket", "buckets"),
    "OCIRepository": create_namespaced_resource(
        "source.toolkit.fluxcd.io", "v1beta2", "OCIRepository", "ocirepositories"
    ),
    "Kustomization": create_namespaced_resource("kustomize.toolkit.fluxcd.io", "v1", "Kustomization", "kustomizations"),
}
SOURCE_KINDS = ("GitRepository", "Bucket", "OCIRepository")


class FluxNotInstalled(Exception):
    """The cluster has no Flux CRDs (the ``flux`` extension is not installed yet)."""


class ConfigAgent:
    name = "config-agent"

    def __init__(
        self,
        http: httpx.AsyncClient,
        dp_url: Url,
        tokens: TokenSource,
        kube: AsyncClient,
        *,
        hold: float = HOLD_SECONDS,
    ) -> None:
        self._http = http
        self._dp_url = dp_url  # read at each request: private link may move it (endpoints.py)
        self._tokens = tokens
        self._kube = kube
        self._hold = Hold(hold)
        self._since: str | None = None
        self._desired: list[dict[str, Any]] = []
        self._poll: asyncio.Task[dict[str, Any] | None] | None = None
        self._applied: dict[str, str] = {}  # "kind/name" → generation whose objects are written
        self._sent: dict[str, str] = {}  # "kind/name" → digest of the last report sent
        self._public_keys: dict[str, str] = {}  # generated ssh keys' public halves, per configuration
        self._swept: str | None = None  # the desired version orphans were last looked for under

    def _dp(self) -> str:
        return url_of(self._dp_url)

    async def reconcile(self) -> float:
        """Converge on the newest desired configurations, then report; wait for the next change or status tick."""
        if self._poll is None:
            self._poll = asyncio.ensure_future(self._fetch())
        # Between answers of the long poll, a tick every STATUS_SECONDS while there is anything to watch.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(self._poll), STATUS_SECONDS if self._desired else None)
        if self._poll.done():
            poll, self._poll = self._poll, None
            desired = poll.result()  # a failed poll raises here: retried with backoff by the manager
            if desired is not None:  # None: the hold ended with nothing new (304), what we have stands
                self._desired = desired["fluxConfigurations"]
                self._since = desired["version"]
        await self._converge()
        return 0.0

    async def _fetch(self) -> dict[str, Any] | None:
        url = self._dp() + FLUX_CONFIGURATIONS_PATH
        return await poll_desired(self._http, url, self._tokens, self._since, self._hold)

    async def _converge(self) -> None:
        reports: list[dict[str, Any]] = []
        failures: list[str] = []
        for entry in self._desired:
            key = f"{entry['kind']}/{entry['name']}"
            try:
                if entry.get("deleting"):
                    if await self._remove(entry["name"], entry["namespace"]):
                        reports.append({"name": entry["name"], "kind": entry["kind"], "state": "Removed"})
                        self._applied.pop(key, None)
                    continue
                if self._applied.get(key) != entry["generation"]:
                    await self._apply(entry)
                    self._applied[key] = entry["generation"]
                reports.append(await self._observe(entry))
            except FluxNotInstalled as exc:
                reports.append(self._waiting(entry, str(exc)))
            except (ApiError, fluxobjects.InvalidSettings) as exc:
                message = _api_message(exc)
                log.warning("flux configuration not applied", extra={"configuration": entry["name"], "error": message})
                reports.append(
                    {"name": entry["name"], "kind": entry["kind"], "state": "Failed",
                     "appliedGeneration": entry["generation"], "complianceState": "Non-Compliant",
                     "errorMessage": message}
                )  # fmt: skip
                failures.append(f"{entry['name']}: {message}")
        if self._swept != self._since:
            if await self._collect_orphans({e["name"] for e in self._desired}):
                self._swept = self._since
        await self._send(reports)
        if failures:
            raise RuntimeError("; ".join(failures)[:2000])

    def _waiting(self, entry: dict[str, Any], why: str) -> dict[str, Any]:
        return {"name": entry["name"], "kind": entry["kind"], "state": "Waiting", "complianceState": "Pending",
                "errorMessage": why}  # fmt: skip

    async def _apply(self, entry: dict[str, Any]) -> None:
        namespace = entry["namespace"]
        await self._ensure_namespace(namespace)
        generated = None
        if fluxobjects.needs_generated_key(entry):
            generated = await self._generated_key(entry["name"], namespace)
        data = fluxobjects.secret_data(entry, generated)
        name = fluxobjects.secret_name(entry["name"])
        if data:
            secret = Secret(
                metadata=ObjectMeta(
                    name=name,
                    namespace=namespace,
                    labels={fluxobjects.CONFIG_LABEL: entry["name"], **fluxobjects.MANAGED_BY},
                ),
                type="Opaque",
                data={k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
            )
            await self._kube.apply(secret, field_manager=FIELD_MANAGER, force=True)
        else:
            await _delete_quietly(self._kube, Secret, name, namespace)
        manifests = fluxobjects.manifests(entry, has_secret=bool(data))
        for manifest in manifests:
            resource = KINDS[manifest["kind"]]
            try:
                await self._kube.apply(resource.from_dict(manifest), field_manager=FIELD_MANAGER, force=True)
            except ApiError as exc:
                if exc.status.code == 404 and "namespaces" not in (exc.status.message or ""):
                    raise FluxNotInstalled(
                        f"Flux is not installed in the cluster ({manifest['apiVersion']} {manifest['kind']} is not "
                        "served): install the microsoft.flux extension."
                    ) from None
                raise
        # Kustomizations of this configuration no longer in it: removed (their finalizers prune).
        keep = {m["metadata"]["name"] for m in manifests if m["kind"] == "Kustomization"}
        labels: dict[str, Any] = {fluxobjects.CONFIG_LABEL: entry["name"]}
        async for item in self._kube.list(KINDS["Kustomization"], namespace=namespace, labels=labels):
            name, _, _, _ = ident(item)
            if name not in keep:
                await _delete_quietly(self._kube, KINDS["Kustomization"], name, namespace)
        log.info("flux configuration applied", extra={"configuration": entry["name"], "namespace": namespace})

    async def _ensure_namespace(self, name: str) -> None:
        """The configuration's namespace, created when missing and otherwise left as it is: the chart grants
        ``create`` on namespaces and no ``patch`` (a patch could relabel any namespace, its pod-security level
        included)."""
        try:
            await self._kube.create(Namespace(metadata=ObjectMeta(name=name)), field_manager=FIELD_MANAGER)
        except ApiError as exc:
            if exc.status.code != 409:  # AlreadyExists
                raise

    async def _generated_key(self, config: str, namespace: str) -> tuple[str, str]:
        """The configuration's generated ssh key pair: the one already in its Secret, else a new one."""
        try:
            secret = await self._kube.get(Secret, fluxobjects.secret_name(config), namespace=namespace)
            data = secret.data or {}
            if "identity" in data and "identity.pub" in data:
                pair = (base64.b64decode(data["identity"]).decode(), base64.b64decode(data["identity.pub"]).decode())
                self._public_keys[config] = pair[1]
                return pair
        except ApiError as exc:
            if exc.status.code != 404:
                raise
        key = Ed25519PrivateKey.generate()
        private = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()
        ).decode()
        public = key.public_key().public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
        self._public_keys[config] = public.decode()
        return private, public.decode()

    async def _observe(self, entry: dict[str, Any]) -> dict[str, Any]:
        namespace = entry["namespace"]
        wanted = [(entry["sourceKind"], entry["sourceName"])]
        wanted += [("Kustomization", k["objectName"]) for k in entry.get("kustomizations") or []]
        observed = []
        for kind, name in wanted:
            body: dict[str, Any] | None
            try:
                obj = await self._kube.get(KINDS[kind], name, namespace=namespace)
                body = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
                body = None
            observed.append(fluxobjects.Observed(kind, name, namespace, body))
        report = fluxobjects.report(entry, observed)
        report.update(name=entry["name"], kind=entry["kind"], state="Applied", appliedGeneration=entry["generation"])
        if entry["name"] in self._public_keys and fluxobjects.needs_generated_key(entry):
            report["repositoryPublicKey"] = base64.b64encode(self._public_keys[entry["name"]].encode()).decode()
        return report

    async def _remove(self, config: str, namespace: str) -> bool:
        """Kustomizations first, awaited gone; then the sources and the Secret. True once nothing is left."""
        labels: dict[str, Any] = {fluxobjects.CONFIG_LABEL: config}
        remaining = 0
        try:
            async for item in self._kube.list(KINDS["Kustomization"], namespace="*", labels=labels):
                remaining += 1
                name, where, _, deleting = ident(item)
                if not deleting:
                    await _delete_quietly(self._kube, KINDS["Kustomization"], name, where)
        except ApiError as exc:
            if exc.status.code != 404:  # no Flux CRDs: nothing of Flux's to remove
                raise
        if remaining:
            return False  # their finalizers (Flux pruning what they applied) run first
        for kind in SOURCE_KINDS:
            try:
                async for item in self._kube.list(KINDS[kind], namespace="*", labels=labels):
                    name, where, _, _ = ident(item)
                    await _delete_quietly(self._kube, KINDS[kind], name, where)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        # The Secret by its name in the configuration's namespace (which never changes): no right to list Secrets.
        await _delete_quietly(self._kube, Secret, fluxobjects.secret_name(config), namespace)
        self._public_keys.pop(config, None)
        log.info("flux configuration removed", extra={"configuration": config, "namespace": namespace})
        return True

    async def _collect_orphans(self, known: set[str]) -> bool:
        """Objects labelled with a configuration the control plane no longer has at all (force-deleted, or
        deleted while this agent was away): removed the same careful way. Swept once per new desired state."""
        orphans = await self._labelled_configurations()
        complete = True
        for config, namespace in orphans.items():
            if config not in known:
                complete = await self._remove(config, namespace) and complete
                for key in [k for k in self._applied if k.endswith(f"/{config}")]:
                    self._applied.pop(key, None)
        return complete

    async def _labelled_configurations(self) -> dict[str, str]:
        found: dict[str, str] = {}
        for kind in ("Kustomization", *SOURCE_KINDS):
            try:
                async for item in self._kube.list(KINDS[kind], namespace="*", labels={fluxobjects.CONFIG_LABEL: None}):
                    _, where, labels, _ = ident(item)
                    found.setdefault(labels.get(fluxobjects.CONFIG_LABEL, ""), where)
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        found.pop("", None)
        return found

    async def _send(self, reports: list[dict[str, Any]]) -> None:
        changed = []
        for report in reports:
            key = f"{report['kind']}/{report['name']}"
            digest = _digest(report)
            if self._sent.get(key) != digest:
                changed.append((key, digest, report))
        if not changed:
            return
        token = await self._tokens.token()
        response = await self._http.post(
            self._dp() + FLUX_REPORTS_PATH,
            json={"configurations": [r for _, _, r in changed]},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 204:
            raise ControlPlaneError(f"reports refused: {response.status_code} {response.text[:300]}")
        for key, digest, _ in changed:
            self._sent[key] = digest


def ident(obj: Any) -> tuple[str, str, dict[str, str], bool]:
    """An object's name, namespace, labels and whether it is being deleted (lightkube's metadata is optional)."""
    meta = obj.metadata
    if meta is None:
        return "", "", {}, False
    return meta.name or "", meta.namespace or "", dict(meta.labels or {}), bool(meta.deletionTimestamp)


def _digest(report: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(report, sort_keys=True, default=str).encode()).hexdigest()


def _api_message(exc: Exception) -> str:
    if isinstance(exc, ApiError):
        return f"{exc.status.code} {exc.status.reason}: {exc.status.message}"[:2000]
    return str(exc)[:2000]


async def _delete_quietly(kube: AsyncClient, resource: Any, name: str, namespace: str | None) -> None:
    try:
        await kube.delete(resource, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code != 404:
            raise
