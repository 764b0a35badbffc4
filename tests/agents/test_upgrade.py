"""Agent versions and upgrades: the catalog and target rule (pure), controller-manager's decision and image rewrite
(pure), and end to end: local agents say truthfully that they cannot upgrade themselves, split agents patch the
chart's Deployments."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from lightkube import Client, KubeConfig
from lightkube.resources.apps_v1 import Deployment

import halyard
from halyard.agent.deployments import DeploymentHealth
from halyard.agent.manager import ControllerManager
from halyard.agent.metrics import AgentMetrics
from halyard.agent.upgrade import ANNOTATION, TARGET_POLL, UpgradeCheck, decide, with_tag
from halyard.cli.localagents import running_pid, state_dir_for
from halyard.core.agentversions import AgentCatalog
from halyard.core.clock import ManualClock
from halyard.core.settings import Settings
from tests.agents.conftest import HEARTBEAT, Cli, logged_in_cli, stop_agents
from tests.agents.test_onboarding import _metric, connect, resource_id
from tests.sim.conftest import helm_path
from tests.support.processes import ServerProcess, free_port

RUNNING = halyard.__version__
NEXT = "9.9.9"  # offered by this module's server, never installed: local agents cannot restart onto it
AGENTS = ("controller-manager", "identity-operator", "metadata-operator", "resource-sync")


# --- the catalog and the target rule ------------------------------------------------------------------------------


@pytest.mark.unit
def test_catalog_orders_by_version_and_the_highest_is_latest() -> None:
    catalog = AgentCatalog.parse(" 0.10.0, 0.2.0,0.9.1 ,")
    assert catalog.versions == ("0.10.0", "0.9.1", "0.2.0") and catalog.latest == "0.10.0"
    assert catalog.find("0.2") == "0.2.0" and catalog.find("0.3.0") is None and catalog.find("nonsense") is None


@pytest.mark.unit
@pytest.mark.parametrize("text", ["", " , ", "0.1.0,latest"])
def test_settings_refuse_agent_versions_that_do_not_parse(text: str) -> None:
    with pytest.raises(ValueError, match="agent_versions"):
        Settings(agent_versions=text).check()
    assert Settings().agent_catalog.versions == (RUNNING,)  # default: the server's own version


@pytest.mark.e2e
def test_the_server_refuses_to_start_with_an_agent_version_that_does_not_parse(tmp_path: Path) -> None:
    data = tmp_path / "data"
    proc = subprocess.run(
        [sys.executable, "-m", "halyard", "server", "--data-dir", str(data), "--agent-versions", "0.1.0,latest"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode != 0 and "agent version 'latest' is not a version" in proc.stderr
    assert not data.exists(), sorted(data.rglob("*"))  # nothing at all: no store, keys, TLS or admin.json


@pytest.mark.unit
@pytest.mark.parametrize(
    ("auto_upgrade", "desired", "target"),
    [
        ("Enabled", None, "0.3.0"),
        (None, "0.2.0", "0.3.0"),  # Enabled by default; a pin is ignored while auto-upgrade is on
        ("Disabled", "0.2", "0.2.0"),  # the offered spelling
        ("Disabled", None, None),  # stay put
        ("Disabled", "0.1.5", None),  # a pin no longer offered is not followed
    ],
)
def test_target_follows_auto_upgrade_and_the_pin(auto_upgrade: str | None, desired: str | None, target: str) -> None:
    assert AgentCatalog.parse("0.2.0,0.3.0").target(auto_upgrade, desired) == target


# --- controller-manager's decision ------------------------------------------------------------------------------


@pytest.mark.unit
def test_decision_does_nothing_without_a_different_target() -> None:
    assert decide("0.1.0", None, "local", "0.2.0").action == "none"
    assert decide("0.1.0", "0.1", "in-cluster", None).action == "none"


@pytest.mark.unit
def test_decision_in_cluster_patches_and_locally_restarts_only_onto_the_installed_halyard() -> None:
    assert decide("0.1.0", "0.2.0", "in-cluster", None) == decide("0.1.0", "0.2.0", "in-cluster", "0.1.0")
    assert decide("0.1.0", "0.2.0", "in-cluster", None).action == "patch"
    assert decide("0.1.0", "0.2.0", "local", "0.2.0").action == "restart"
    report = decide("0.1.0", "0.2.0", "local", "0.1.0")
    assert report.action == "report"
    assert report.message and "0.2.0 is wanted" in report.message and "halyard 0.1.0" in report.message
    assert "pip install 'halyard==0.2.0'" in report.message
    # A restart onto 0.2.0 that still runs 0.1.0 (another halyard on the path) is reported, not repeated forever.
    again = decide("0.1.0", "0.2.0", "local", "0.2.0", restarted_for="0.2.0")
    assert again.action == "report" and again.message and "still run 0.1.0" in again.message


@pytest.mark.unit
@pytest.mark.parametrize(
    ("image", "rewritten"),
    [
        ("ghcr.io/halyard/halyard-agent:0.1.0", "ghcr.io/halyard/halyard-agent:0.2.0"),
        ("mirror.example:5000/halyard/halyard-agent:0.1.0", "mirror.example:5000/halyard/halyard-agent:0.2.0"),
        ("mirror.example:5000/halyard/halyard-agent", "mirror.example:5000/halyard/halyard-agent:0.2.0"),
        ("ghcr.io/halyard/halyard-agent:0.1.0@sha256:" + "a" * 64, "ghcr.io/halyard/halyard-agent:0.2.0"),
        ("halyard-agent", "halyard-agent:0.2.0"),
    ],
)
def test_image_tag_rewrite_keeps_registry_and_repository(image: str, rewritten: str) -> None:
    assert with_tag(image, "0.2.0") == rewritten


@pytest.mark.unit
def test_a_version_that_is_no_image_tag_is_refused() -> None:
    with pytest.raises(ValueError, match="image tag"):
        with_tag("ghcr.io/halyard/halyard-agent:0.1.0", "0.2.0+local")


@pytest.mark.unit
def test_a_warning_shows_in_agent_errors_without_failing_the_state() -> None:
    clock = ManualClock(dt.datetime(2026, 6, 1, tzinfo=dt.UTC))
    manager = ControllerManager([], clock, AgentMetrics())
    manager.warn("agent-upgrade", "install halyard 0.2.0")
    state, errors = manager.health()
    assert state == "Succeeded"
    assert [(e.severity, e.component, e.message) for e in errors] == [
        ("Warning", "controller-manager", "install halyard 0.2.0")
    ]
    manager.warn("agent-upgrade", None)
    assert manager.health() == ("Succeeded", [])


class _NoDeployments:
    """Just enough of lightkube's AsyncClient for DeploymentHealth: no Deployments; what is published is kept."""

    def __init__(self) -> None:
        self.applied: list[Any] = []
        self.deployments: list[Any] = []

    async def list(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        for item in self.deployments:
            yield item

    async def apply(self, obj: Any, **kwargs: Any) -> None:
        self.applied.append(obj)


@pytest.mark.unit
async def test_in_cluster_the_pods_own_failures_and_warnings_are_published_with_the_deployments_health() -> None:
    clock = ManualClock()
    manager = ControllerManager([], clock, AgentMetrics())
    kube = _NoDeployments()
    health = DeploymentHealth(kube, clock, own=manager.health)  # type: ignore[arg-type]
    manager.warn("agent-upgrade", "wanted 0.2.0")
    await health.reconcile()
    assert kube.applied[-1].data["state"] == "Succeeded"
    assert json.loads(kube.applied[-1].data["errors"])[0]["severity"] == "Warning"


@pytest.mark.unit
async def test_a_changed_target_is_acted_on_at_once_an_unchanged_one_on_the_interval() -> None:
    target: list[str | None] = [None]
    restarts: list[str] = []
    warnings: dict[str, str | None] = {}
    metrics = AgentMetrics()

    async def wanted() -> str | None:
        return target[0]

    check = UpgradeCheck(
        wanted, metrics, warnings.__setitem__, mode="local", interval=3600, restart=restarts.append,
        installed=lambda: "0.2.0", running="0.1.0",
    )  # fmt: skip
    assert await check.reconcile() == TARGET_POLL
    assert await check.reconcile() == TARGET_POLL  # unchanged and not due: no second check
    assert metrics.registry.get_sample_value("halyard_agent_upgrade_checks_total") == 1
    target[0] = "0.2.0"
    await check.reconcile()
    assert restarts == ["0.2.0"] and metrics.registry.get_sample_value("halyard_agent_upgrades_started_total") == 1
    target[0] = "0.3.0"
    await check.reconcile()
    assert restarts == ["0.2.0"] and "install halyard 0.3.0" in (warnings["agent-upgrade"] or "")


# --- end to end ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def versions_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A control plane offering a version beyond the installed one, and the CLI logged in to it."""
    home = tmp_path_factory.mktemp("upgrade")
    server = ServerProcess(
        home / "data",
        free_port(),
        env={"HALYARD_AGENT_VERSIONS": f"{RUNNING},{NEXT}", "HALYARD_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT)},
    ).start()
    runner = logged_in_cli(server, home)
    try:
        yield runner
    finally:
        stop_agents(runner)
        server.stop()


def _wait(check: Callable[[], Any], timeout: float = 30) -> Any:
    """``check()``'s first true value within ``timeout`` seconds, else None."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(0.5)


@pytest.mark.e2e
def test_local_agents_warn_that_they_cannot_upgrade_and_stay_connected(
    versions_cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    """Auto-upgrade turned on after onboarding reaches the agents with their next beats: this server writes an
    unchanged beat only once a minute, but a user's write to the resource is never answered from that cache."""
    cli = versions_cli
    group = cli.group("upgrade-local")
    env = {"HALYARD_AGENT_UPGRADE_CHECK_SECONDS": "2"}
    proc = connect(cli, group, "local", fresh_cluster(), "--disable-auto-upgrade", env=env)
    assert proc.returncode == 0, proc.stderr

    def warned() -> dict[str, Any] | None:
        shown = cli.show(group, "local")
        errors = shown["arcAgentProfile"].get("agentErrors") or []
        return shown if any(e["severity"] == "Warning" for e in errors) else None

    state_dir = cli.agents_dir / state_dir_for(resource_id(cli, group, "local")).name
    metrics_url = f"http://127.0.0.1:{int((state_dir / 'metrics.port').read_text())}/metrics"

    def counters() -> tuple[float, float]:
        text = httpx.get(metrics_url, timeout=5).text
        return _metric(text, "halyard_agent_heartbeats_sent_total"), _metric(text, "halyard_agent_upgrade_checks_total")

    # An upgrade check, then a beat that would carry its warning: with auto-upgrade off there is no target.
    assert _wait(lambda: counters()[1] >= 1), "the agents made no upgrade check within 30 s"
    beats_at_check = counters()[0]
    assert _wait(lambda: counters()[0] >= beats_at_check + 2), "the agents stopped beating"
    assert warned() is None
    cli.ok("connectedk8s", "update", "-g", group, "-n", "local", "--auto-upgrade", "true")
    beats_at_update = counters()[0]
    shown = _wait(warned)
    # Counted in beats, not seconds: the next beat brings the target, an upgrade check (every 2 beats) finds it,
    # the beat after reports it. From the server's cache of the last reply it would take up to its 60 s (60-beat)
    # write window.
    beats = counters()[0] - beats_at_update
    assert shown, f"no upgrade warning after {beats:.0f} beats: {cli.show(group, 'local')['arcAgentProfile']}"
    assert beats <= 8, f"the upgrade warning took {beats:.0f} beats: the target came from a stale reply"
    (warning,) = shown["arcAgentProfile"]["agentErrors"]
    assert warning["component"] == "controller-manager"
    assert f"agent version {NEXT} is wanted" in warning["message"]
    assert f"pip install 'halyard=={NEXT}'" in warning["message"]
    assert shown["connectivityStatus"] == "Connected"
    assert shown["arcAgentProfile"]["agentState"] == "Succeeded"
    assert shown["agentVersion"] == RUNNING


@pytest.mark.e2e
def test_local_agents_restart_onto_the_installed_halyard_and_never_loop(
    versions_cli: Cli, fresh_cluster: Callable[[], Path], tmp_path: Path
) -> None:
    """The halyard installed here (as its metadata says) is the target: the agents restart onto it in place. This
    "install" is only metadata on PYTHONPATH, so the restarted agents still run the old code: they say so rather
    than restart again."""
    cli = versions_cli
    dist = tmp_path / "site" / f"halyard-{NEXT}.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: halyard\nVersion: {NEXT}\n")
    env = {"HALYARD_AGENT_UPGRADE_CHECK_SECONDS": "2", "PYTHONPATH": str(dist.parent)}
    group = cli.group("upgrade-restart")
    proc = connect(cli, group, "restart", fresh_cluster(), env=env)
    assert proc.returncode == 0, proc.stderr

    def warned() -> dict[str, Any] | None:
        shown = cli.show(group, "restart")
        errors = shown["arcAgentProfile"].get("agentErrors") or []
        return shown if any("still run" in e["message"] for e in errors) else None

    shown = _wait(warned)
    state_dir = cli.agents_dir / state_dir_for(resource_id(cli, group, "restart")).name
    log = (state_dir / "agent.log").read_text()
    assert shown, f"no 'still run' warning within 30 s: {cli.show(group, 'restart')['arcAgentProfile']}\n{log}"
    assert log.count("agents restarting onto the installed halyard") == 1
    assert log.count('msg="agents running"') == 2  # the same process, before and after the restart
    assert running_pid(state_dir) is not None  # the pid file survived the re-execution
    assert shown["connectivityStatus"] == "Connected" and shown["arcAgentProfile"]["agentState"] == "Succeeded"


@pytest.mark.e2e
def test_split_controller_manager_sets_the_chart_deployments_to_the_target(
    versions_cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    """What the chart's pods run (one agent per process), as local processes against the chart installed in the
    simulator (which runs no pods): resource-sync hands the target to controller-manager, which patches."""
    cli = versions_cli
    kubeconfig = fresh_cluster()
    group = cli.group("upgrade-split")
    proc = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "split", "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "in-cluster", "--no-wait", "--yes", "-o", "json", env={"HALYARD_HELM": str(helm_path())},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    logs = cli.agents_dir / "upgrade-split.log"
    logs.parent.mkdir(parents=True, exist_ok=True)
    run = [sys.executable, "-m", "halyard", "agent", "run", "--kubeconfig", str(kubeconfig)]
    with open(logs, "ab") as log:
        processes = [
            subprocess.Popen(
                [*run, "--agents", agent, "--state-dir", str(cli.agents_dir / f"upgrade-split-{agent}")],
                stdout=log,
                stderr=subprocess.STDOUT,
                env={**os.environ, **cli.env},
            )
            for agent in AGENTS
        ]
    try:

        def upgraded() -> list[Any] | None:
            deployments: list[Any] = list(client.list(Deployment, namespace="halyard-system"))
            images = [str(c.image) for d in deployments for c in d.spec.template.spec.containers]
            return deployments if images and all(i.endswith(f":{NEXT}") for i in images) else None

        deployments = _wait(upgraded)
        assert deployments, (
            f"the Deployments do not run {NEXT} within 30 s; the agents' log:\n{logs.read_text()[-3000:]}"
        )
        # Every Deployment of the chart, clusterconnect-agent's too (on by default; its process is not needed here).
        assert {d.metadata.name for d in deployments} == {*AGENTS, "clusterconnect-agent"}
        for deployment in deployments:
            assert deployment.metadata.annotations[ANNOTATION] == NEXT
            (container,) = deployment.spec.template.spec.containers
            assert container.image == f"ghcr.io/halyard/halyard-agent:{NEXT}"
    finally:
        client.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(15)
