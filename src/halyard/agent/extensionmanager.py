"""extension-manager: installs, upgrades and removes the cluster's extensions with the real ``helm``.

Desired state: the cluster's desired configuration, long-polled from ``dp`` (``GET /dp/v1/configurations``,
answered within a second of a change, decision 009). Each extension is a helm release of the extension's name in
its release namespace, labelled ``halyard.io/extension=true`` so that releases no longer desired are found (even
after a restart) and uninstalled. Its chart is the control plane's own package; its values are the configuration
settings and protected settings (dotted keys nest, as Arc's do); the protected settings are also kept in the
Secret ``<name>-protected-settings`` beside the release and never logged. What was done is reported back
(``POST /dp/v1/configurations/reports``), with the digest of the entry acted on, and shows on the extension resource;
the resource's operation completes on it. An extension that left the desired configuration (it is being deleted) is
uninstalled and reported ``Uninstalled``, which lets its deletion complete.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import os
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Namespace, Secret

from halyard.agent.controlplane import ControlPlaneError
from halyard.agent.endpoints import Url, url_of
from halyard.agent.longpoll import HOLD_SECONDS, Hold, poll_desired
from halyard.agent.resourcesync import TokenSource
from halyard.api import cluster as names
from halyard.api.extensions import FAILED, INSTALLED, UNINSTALLED, entry_digest
from halyard.kube.helm import Helm

log = logging.getLogger("halyard.agent")
CONFIGURATIONS_PATH = "/v1/configurations"  # under the dp endpoint (which ends in /dp)
REPORTS_PATH = "/v1/configurations/reports"
RELEASE_LABEL = "halyard.io/extension"
HELM_TIMEOUT = 300.0


class ExtensionError(Exception):
    """One extension could not be installed, upgraded or removed (helm's own words)."""


@dataclass(frozen=True)
class HelmCli:
    """The few helm commands extension-manager needs, in any namespace (``kube/helm.py`` is the agents' own)."""

    helm: Helm

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        cmd = [self.helm.binary, *args]
        if self.helm.kubeconfig is not None:
            cmd += ["--kubeconfig", str(self.helm.kubeconfig)]
        if self.helm.context:
            cmd += ["--kube-context", self.helm.context]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=HELM_TIMEOUT)

    def releases(self) -> dict[str, str]:
        """Extension releases installed: release name → namespace."""
        proc = self._run("list", "--all-namespaces", "--all", "--selector", f"{RELEASE_LABEL}=true", "-o", "json")
        if proc.returncode != 0:
            raise ExtensionError(f"helm list failed: {proc.stderr.strip()[-500:]}")
        return {r["name"]: r["namespace"] for r in json.loads(proc.stdout or "[]")}

    def install(self, name: str, namespace: str, chart: Path, values: Path) -> None:
        proc = self._run(
            "upgrade", "--install", name, str(chart), "--namespace", namespace, "--create-namespace",
            "--reset-values", "-f", str(values), "--labels", f"{RELEASE_LABEL}=true", "--wait", "--timeout", "240s",
        )  # fmt: skip
        if proc.returncode != 0:
            raise ExtensionError(f"helm upgrade --install {name} failed: {proc.stderr.strip()[-1000:]}")

    def uninstall(self, name: str, namespace: str) -> None:
        proc = self._run("uninstall", name, "--namespace", namespace, "--ignore-not-found")
        if proc.returncode != 0:
            raise ExtensionError(f"helm uninstall {name} failed: {proc.stderr.strip()[-1000:]}")


def helm_values(settings: dict[str, str], protected: dict[str, str]) -> dict[str, Any]:
    """Settings as helm values: ``a.b=c`` is ``{a: {b: c}}``, as ``--set`` reads it; protected ones win."""
    values: dict[str, Any] = {}
    for key, value in [*settings.items(), *protected.items()]:
        node = values
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = node[part] = {}
            node = child
        node[parts[-1]] = value
    return values


def release_namespace(extension: dict[str, Any]) -> str:
    scope = extension.get("scope") or {}
    if "namespace" in scope:
        return str(scope["namespace"]["targetNamespace"])
    return str((scope.get("cluster") or {}).get("releaseNamespace") or extension["name"])


class ExtensionManager:
    name = "extension-manager"

    def __init__(
        self,
        http: httpx.AsyncClient,
        dp_url: Url,
        tokens: TokenSource,
        kube: AsyncClient,
        helm: Callable[[], Helm],
        work_dir: Path,
        *,
        hold: float = HOLD_SECONDS,
    ) -> None:
        self._http = http
        self._dp_url = dp_url  # read at each request: private link may move it (endpoints.py)
        self._tokens = tokens
        self._kube = kube
        self._helm_factory = helm
        self._helm: HelmCli | None = None
        self._work_dir = work_dir
        self._hold = Hold(hold)
        self._since: str | None = None
        self._desired: dict[str, Any] = {}  # the last answer: converged on again when a hold ends unchanged (304)
        self._applied: dict[str, str] = {}  # extension name → digest of what helm last installed
        self._known: set[str] = set()  # names desired at some point in this process: reported when they leave
        self._reported: dict[str, str] = {}  # extension name → digest of the entry its last delivered report named
        self._now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)

    def _dp(self) -> str:
        return url_of(self._dp_url)

    async def reconcile(self) -> float:
        """Wait for the desired configuration to change (or the hold to end), then converge on it."""
        desired = await self._poll()
        if desired is None:  # still at our version: converge on what we have (a release removed meanwhile)
            desired = self._desired
        else:
            self._desired = desired
        failures = await self._converge(desired["extensions"], desired.get("removing") or [])
        if failures:
            raise ExtensionError("; ".join(failures))  # retried with backoff, from the same configuration
        self._since = desired["version"]
        return 0.0

    async def _poll(self) -> dict[str, Any] | None:
        return await poll_desired(self._http, self._dp() + CONFIGURATIONS_PATH, self._tokens, self._since, self._hold)

    async def _converge(self, extensions: list[dict[str, Any]], removing: list[str]) -> list[str]:
        wanted = {e["name"]: e for e in extensions}
        leaving = (self._known | set(removing)) - set(wanted)
        if not wanted and not self._applied and not leaving and self._since is not None:
            return []  # nothing desired, nothing of ours known: no helm call on an idle cluster
        helm = self._cli()
        installed = await asyncio.to_thread(helm.releases) if helm is not None else {}
        reports: dict[str, dict[str, Any]] = {}
        failures = []
        for name, extension in wanted.items():
            self._known.add(name)
            if helm is None:
                reports[name] = self._report(extension, FAILED, "HelmNotFound", "helm is not installed", None)
                failures.append(f"{name}: helm is not installed")
                continue
            if self._applied.get(name) == entry_digest(extension) and name in installed:
                if self._reported.get(name) != entry_digest(extension):  # installed, its report lost: again
                    reports[name] = self._installed(extension)
                continue
            try:
                await self._install(helm, extension)
            except (ExtensionError, ControlPlaneError, ApiError, OSError) as exc:
                log.warning("extension not installed", extra={"extension": name, "error": str(exc)[:500]})
                reports[name] = self._report(extension, FAILED, "InstallFailed", str(exc), None)
                failures.append(f"{name}: {exc}")
                continue
            self._applied[name] = entry_digest(extension)
            reports[name] = self._installed(extension)
        if helm is not None:
            for name in sorted((set(installed) | leaving) - set(wanted)):
                try:
                    if name in installed:
                        await asyncio.to_thread(helm.uninstall, name, installed[name])
                        await self._delete_secret(name, installed[name])
                        log.info("extension uninstalled", extra={"extension": name})
                except (ExtensionError, ApiError) as exc:
                    failures.append(f"{name}: {exc}")
                    continue
                self._applied.pop(name, None)
                reports[name] = self._gone(name)
        if reports:
            await self._send_reports(reports)
        # Remembered only once reported: a report that did not reach the control plane is sent again on the retry.
        for name, report in reports.items():
            if report["installState"] == UNINSTALLED:
                self._known.discard(name)
                self._reported.pop(name, None)
            else:
                self._reported[name] = report.get("digest", "")
        return failures

    def _cli(self) -> HelmCli | None:
        if self._helm is None:
            try:
                self._helm = HelmCli(self._helm_factory())
            except Exception as exc:
                log.warning("helm unavailable", extra={"error": str(exc)[:300]})
                return None
        return self._helm

    async def _install(self, helm: HelmCli, extension: dict[str, Any]) -> None:
        name = extension["name"]
        if not extension.get("chart"):
            raise ExtensionError(
                f"extension type {extension.get('extensionType')!r} has no chart this control plane serves"
            )
        namespace = release_namespace(extension)
        chart = await self._fetch_chart(extension)
        protected: dict[str, str] = extension.get("configurationProtectedSettings") or {}
        await self._kube.apply(Namespace(metadata=ObjectMeta(name=namespace)), field_manager="halyard-extensions")
        secret = Secret(
            metadata=ObjectMeta(
                name=f"{name}-protected-settings", namespace=namespace, labels={**names.MANAGED_BY_LABEL}
            ),
            type="Opaque",
            data={k: base64.b64encode(v.encode()).decode() for k, v in protected.items()},
        )
        await self._kube.apply(secret, field_manager="halyard-extensions", force=True)
        values = helm_values(extension.get("configurationSettings") or {}, protected)
        await asyncio.to_thread(_install_in, helm, self._work_dir, name, namespace, chart, values)
        log.info("extension installed", extra={"extension": name, "version": extension["version"]})

    async def _fetch_chart(self, extension: dict[str, Any]) -> bytes:
        token = await self._tokens.token()
        response = await self._http.get(
            self._dp() + extension["chart"].removeprefix("/dp"), headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code != 200:
            raise ExtensionError(f"the chart of {extension['name']} could not be fetched: {response.status_code}")
        return response.content

    async def _delete_secret(self, name: str, namespace: str) -> None:
        try:
            await self._kube.delete(Secret, f"{name}-protected-settings", namespace=namespace)
        except ApiError as exc:
            if exc.status.code != 404:
                raise

    def _installed(self, extension: dict[str, Any]) -> dict[str, Any]:
        name = extension["name"]
        return self._report(extension, INSTALLED, "InstallSucceeded", f"Release {name} deployed.", extension["version"])

    def _gone(self, name: str) -> dict[str, Any]:
        """The report that lets a deletion complete: no release of this extension is left on the cluster."""
        status = {
            "code": "UninstallSucceeded",
            "displayStatus": UNINSTALLED,
            "level": "Information",
            "message": f"Release {name} uninstalled.",
            "time": self._now().isoformat(),
        }
        return {"installState": UNINSTALLED, "statuses": [status]}

    def _report(
        self, extension: dict[str, Any], state: str, code: str, message: str, version: str | None
    ) -> dict[str, Any]:
        level = "Information" if state == INSTALLED else "Error"
        report: dict[str, Any] = {
            "installState": state,
            "digest": entry_digest(extension),
            "statuses": [
                {
                    "code": code,
                    "displayStatus": state,
                    "level": level,
                    "message": message[:4000],
                    "time": self._now().isoformat(),
                }
            ],
        }
        if version is not None:
            report["currentVersion"] = version
        return report

    async def _send_reports(self, reports: dict[str, dict[str, Any]]) -> None:
        token = await self._tokens.token()
        response = await self._http.post(
            self._dp() + REPORTS_PATH, json={"extensions": reports}, headers={"Authorization": f"Bearer {token}"}
        )
        if response.status_code != 204:
            raise ControlPlaneError(f"reports refused: {response.status_code} {response.text[:300]}")


def _install_in(helm: HelmCli, work_dir: Path, name: str, namespace: str, chart: bytes, values: dict[str, Any]) -> None:
    """helm upgrade --install from a private directory holding the chart and the values (secrets among them),
    removed afterwards."""
    work_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(dir=work_dir) as tmp:  # 0700: only this user reads the values
        chart_path = Path(tmp) / "chart.tgz"
        chart_path.write_bytes(chart)
        values_path = Path(tmp) / "values.json"
        with os.fdopen(os.open(values_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "w") as out:
            json.dump(values, out)
        helm.install(name, namespace, chart_path, values_path)
