"""The real ``helm`` binary, for the in-cluster agents: install, uninstall and ask about the agent release."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from halyard.api import cluster as names

RELEASE = "halyard-agent"
_SOURCE_ROOT = Path(__file__).resolve().parents[3]
# The chart ships in the source tree (charts/halyard-agent); HALYARD_AGENT_CHART points elsewhere (an OCI ref too).
_SOURCE_CHART = _SOURCE_ROOT / "charts" / "halyard-agent"
# Where the source tree's scripts/install-helm.sh (run by `make system-deps`) puts helm: found without a PATH change.
INSTALL_SCRIPT = _SOURCE_ROOT / "scripts" / "install-helm.sh"
PROJECT_HELM = _SOURCE_ROOT / ".cache" / "bin" / "helm"


class HelmError(Exception):
    """helm is missing, or a helm command failed (its stderr is the message)."""


@dataclass(frozen=True)
class Helm:
    binary: str
    kubeconfig: Path | None = None
    context: str | None = None

    @classmethod
    def find(cls, kubeconfig: Path | None, context: str | None) -> Helm:
        """``$HALYARD_HELM`` when set (and then only it), else ``helm`` on PATH, else the helm the source tree's
        ``scripts/install-helm.sh`` installed (``.cache/bin/helm``)."""
        explicit = os.environ.get("HALYARD_HELM")
        if explicit:
            if not Path(explicit).exists():
                raise HelmError(f"HALYARD_HELM is {explicit}, which does not exist: point it at a helm 3 binary")
            return cls(explicit, kubeconfig, context)
        binary = shutil.which("helm") or (str(PROJECT_HELM) if os.access(PROJECT_HELM, os.X_OK) else None)
        if binary is None:
            raise HelmError(f"helm is not installed: {how_to_install_helm()}")
        return cls(binary, kubeconfig, context)

    def _run(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        cmd = [self.binary, *args, "--namespace", names.NAMESPACE]
        if self.kubeconfig is not None:
            cmd += ["--kubeconfig", str(self.kubeconfig)]
        if self.context:
            cmd += ["--kube-context", self.context]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)

    def install(self, chart: str, values: dict[str, str], switches: dict[str, bool] | None = None) -> None:
        """Install the release, or make an installed one exactly ``chart`` with ``values``: ``--reset-values``,
        because helm otherwise reuses the previous values whenever none are given, so a value dropped from a re-run
        (``--agent-registry``, say) would silently stay."""
        args = ("upgrade", "--install", RELEASE, chart, "--reset-values", *_set_strings(values), *_set_bools(switches))
        _check(self._run(*args), "helm install failed")

    def upgrade(
        self,
        chart: str,
        values: dict[str, str],
        *,
        switches: dict[str, bool] | None = None,
        wait_seconds: int | None = None,
    ) -> None:
        """Upgrade the installed release to ``chart``, keeping the values it was given but ``values`` (strings) and
        ``switches`` (booleans); with
        ``wait_seconds``, until its Deployments have rolled out (``--wait``).

        ``--reset-then-reuse-values`` rather than ``--reuse-values``: the latter reuses the whole old value set, so
        a value the new chart adds stays unset (it rendered ``--upgrade-check-seconds=`` and no agent started).
        """
        args = ["upgrade", RELEASE, chart, "--reset-then-reuse-values", *_set_strings(values), *_set_bools(switches)]
        if wait_seconds is not None:
            args += ["--wait", "--timeout", f"{wait_seconds}s"]
        # helm enforces --timeout itself; the process limit only guards against a helm that hangs beyond it.
        proc = self._run(*args, timeout=(wait_seconds or 0) + 300)
        if "unknown flag: --reset-then-reuse-values" in proc.stderr:
            raise HelmError(f"helm 3.14 or newer is needed to upgrade the agents ({self.binary} is older)")
        _check(proc, "helm upgrade failed")

    def installed(self) -> bool:
        return self._run("status", RELEASE).returncode == 0

    def uninstall(self) -> bool:
        """Remove the release (its Deployments, RBAC, NetworkPolicy); False if there was none."""
        if not self.installed():
            return False
        proc = self._run("uninstall", RELEASE, "--wait")
        if proc.returncode != 0:
            raise HelmError(proc.stderr.strip() or "helm uninstall failed")
        return True


def _set_strings(values: dict[str, str]) -> list[str]:
    # --set-string: a tag such as 1.10 must stay the string "1.10", never become the number 1.1.
    return [arg for key, value in values.items() for arg in ("--set-string", f"{key}={_escape(value)}")]


def _escape(value: str) -> str:
    """A comma separates assignments in ``--set``: one inside a value (FEATURES) is escaped, as the escape itself."""
    return value.replace("\\", "\\\\").replace(",", "\\,")


def _set_bools(switches: dict[str, bool] | None) -> list[str]:
    # --set, not --set-string: the string "false" is true to the chart's `if`.
    return [a for key, on in (switches or {}).items() for a in ("--set", f"{key}={'true' if on else 'false'}")]


def _check(proc: subprocess.CompletedProcess[str], fallback: str) -> None:
    if proc.returncode != 0:
        raise HelmError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else fallback)


def how_to_install_helm() -> str:
    """The way to get helm from here: the project's script in a source tree, else helm's own instructions."""
    if INSTALL_SCRIPT.exists():
        return (
            f"run {INSTALL_SCRIPT} (make system-deps runs it; it installs {PROJECT_HELM}, which halyard finds), "
            "put helm 3 on PATH, or set HALYARD_HELM"
        )
    return "install Helm 3 (https://helm.sh/docs/intro/install/) or set HALYARD_HELM to its path"


def agent_chart() -> str:
    chart = os.environ.get("HALYARD_AGENT_CHART") or str(_SOURCE_CHART)
    if "://" not in chart and not Path(chart, "Chart.yaml").exists():
        raise HelmError(f"the agent chart is not at {chart}: set HALYARD_AGENT_CHART to the chart directory or OCI ref")
    return chart
