"""``halyard connectedk8s upgrade`` end to end: a server offering two agent versions, the simulator, the CLI and
the agents as separate processes. Local agents are restarted onto this machine's halyard; in-cluster agents are
upgraded with the real helm."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from lightkube import Client, KubeConfig
from lightkube.resources.apps_v1 import Deployment

from halyard.cli.agentplacement import local_agent_version
from halyard.cli.localagents import running_pid, state_dir_for
from tests.agents.conftest import HEARTBEAT, OFFLINE_THRESHOLD, Cli, logged_in_cli, stop_agents
from tests.agents.test_chart import CHART
from tests.agents.test_onboarding import connect, resource_id
from tests.api.helpers import CC_API, cluster_body
from tests.sim.conftest import helm_path
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e
INSTALLED = local_agent_version()
_major, _minor, *_ = INSTALLED.split(".")
NEXT = f"{_major}.{int(_minor) + 1}.0"  # offered by the server, not installed here
NEW_ARG = "--upgrade-check-seconds="  # rendered from a value the chart gained after its first release
NEW_DEFAULT = yaml.safe_load((CHART / "values.yaml").read_text())["upgradeCheckSeconds"]


@pytest.fixture(scope="module")
def upgrade_cli(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """A CLI logged in to a server of its own, which offers the installed version and the next one."""
    server = ServerProcess(
        tmp_path_factory.mktemp("upgrade-server") / "data",
        free_port(),
        extra_args=["--offline-threshold", str(OFFLINE_THRESHOLD)],
        env={"HALYARD_HEARTBEAT_INTERVAL_SECONDS": str(HEARTBEAT), "HALYARD_AGENT_VERSIONS": f"{INSTALLED},{NEXT}"},
    ).start()
    runner = logged_in_cli(server, tmp_path_factory.mktemp("upgrade-cli"))
    try:
        yield runner
    finally:
        stop_agents(runner)
        server.stop()


def _error(proc: subprocess.CompletedProcess[str]) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("ERROR: ("), proc.stderr
    return lines[0]


def _profile(cli: Cli, group: str, name: str) -> dict[str, Any]:
    return cli.show(group, name).get("arcAgentProfile") or {}


def test_local_agents_restart_onto_the_installed_version(upgrade_cli: Cli, fresh_cluster: Callable[[], Path]) -> None:
    cli, kubeconfig = upgrade_cli, fresh_cluster()
    group = cli.group("upgrade-local")
    assert connect(cli, group, "local", kubeconfig, "--disable-auto-upgrade").returncode == 0
    state = cli.agents_dir / state_dir_for(resource_id(cli, group, "local")).name
    before = running_pid(state)
    assert before is not None

    # A version the server offers but this machine does not have: refused before anything changes.
    refused = cli.run("connectedk8s", "upgrade", "-g", group, "-n", "local", "--agent-version", NEXT)
    assert _error(refused) == (
        f"ERROR: (AgentVersionNotInstalled) The local agents run this machine's halyard {INSTALLED}; install halyard "
        f"{NEXT} (pip install 'halyard=={NEXT}') and run upgrade again."
    )
    assert "desiredAgentVersion" not in _profile(cli, group, "local")
    assert running_pid(state) == before

    upgraded = cli.ok("connectedk8s", "upgrade", "-g", group, "-n", "local", "--agent-version", INSTALLED)
    assert upgraded["agentVersion"] == INSTALLED and upgraded["connectivityStatus"] == "Connected"
    assert upgraded["arcAgentProfile"]["desiredAgentVersion"] == INSTALLED
    after = running_pid(state)
    assert after is not None and after != before  # restarted, so it runs the installed code
    assert _profile(cli, group, "local")["desiredAgentVersion"] == INSTALLED


def test_in_cluster_agents_are_upgraded_with_helm(
    upgrade_cli: Cli, fresh_cluster: Callable[[], Path], tmp_path: Path
) -> None:
    cli, kubeconfig = upgrade_cli, fresh_cluster()
    group = cli.group("upgrade-incluster")
    env = {"HALYARD_HELM": str(helm_path())}
    connected = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "chart", "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "in-cluster", "--disable-auto-upgrade", "--no-wait", "--yes",
        env={**env, "HALYARD_AGENT_CHART": str(_older_chart(tmp_path))},
    )  # fmt: skip
    assert connected.returncode == 0, connected.stderr
    assert not any(a.startswith(NEW_ARG) for a in _args(kubeconfig))
    upgrade = ("connectedk8s", "upgrade", "-g", group, "-n", "chart", "--kube-config", str(kubeconfig))

    # The server decides which versions exist.
    unknown = cli.run(*upgrade, "--agent-version", "9.9.9", env=env)
    line = _error(unknown)
    assert line.startswith("ERROR: (InvalidAgentVersion) ") and NEXT in line and INSTALLED in line
    assert [r["revision"] for r in _history(kubeconfig)] == [1]

    upgraded = cli.run(*upgrade, "--agent-version", NEXT, "--no-wait", "-o", "json", env=env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout)["arcAgentProfile"]["desiredAgentVersion"] == NEXT
    history = _history(kubeconfig)
    assert [(r["revision"], r["status"]) for r in history] == [(1, "superseded"), (2, "deployed")]
    assert _images(kubeconfig) == {f"ghcr.io/halyard/halyard-agent:{NEXT}"}
    # The chart's new value took its default (a reuse of the old value set would render it empty).
    assert {a for a in _args(kubeconfig) if a.startswith(NEW_ARG)} == {f"{NEW_ARG}{NEW_DEFAULT}"}
    assert _profile(cli, group, "chart")["desiredAgentVersion"] == NEXT

    # Waiting: helm waits for the rollout (the simulator runs the pods), then the resource must report the version;
    # no agent runs in the simulator, so the upgrade times out, saying what the cluster last reported.
    waited = cli.run(*upgrade, "--agent-version", NEXT, "--upgrade-timeout", "6", env=env)
    assert _error(waited) == (
        f"ERROR: (UpgradeTimeout) The agents did not report version {NEXT} within 6 s: the cluster last reported "
        "agentVersion (none), connectivityStatus Connecting."
    )
    assert [r["revision"] for r in _history(kubeconfig)] == [1, 2, 3]

    # Connecting again, as first done, is idempotent: the pin stays and so does the version the agents run.
    again = cli.run(
        "connectedk8s", "connect", "-g", group, "-n", "chart", "-l", "eastus", "--kube-config", str(kubeconfig),
        "--agent-mode", "in-cluster", "--disable-auto-upgrade", "--no-wait", "--yes", env=env,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
    assert _profile(cli, group, "chart")["desiredAgentVersion"] == NEXT
    assert _images(kubeconfig) == {f"ghcr.io/halyard/halyard-agent:{NEXT}"}


def _older_chart(tmp_path: Path) -> Path:
    """The agent chart as released before it had ``upgradeCheckSeconds``: the upgrade brings a value it lacked."""
    chart = tmp_path / "halyard-agent"
    shutil.copytree(CHART, chart)
    for name, marker in (("values.yaml", "upgradeCheckSeconds:"), ("templates/deployments.yaml", NEW_ARG)):
        lines = (chart / name).read_text().splitlines(keepends=True)
        kept = [line for line in lines if marker not in line]
        assert len(kept) == len(lines) - 1, f"{name} has not one {marker!r} line: choose another value the chart added"
        (chart / name).write_text("".join(kept))
    return chart


def _history(kubeconfig: Path) -> list[dict[str, Any]]:
    proc = subprocess.run(
        [str(helm_path()), "history", "halyard-agent", "-n", "halyard-system", "--kubeconfig", str(kubeconfig),
         "-o", "json"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    history: list[dict[str, Any]] = json.loads(proc.stdout)
    return history


def _containers(kubeconfig: Path) -> list[Any]:
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        return [
            container
            for deployment in client.list(Deployment, namespace="halyard-system")
            for container in deployment.spec.template.spec.containers  # type: ignore[union-attr]
        ]
    finally:
        client.close()


def _images(kubeconfig: Path) -> set[str]:
    return {c.image for c in _containers(kubeconfig)}


def _args(kubeconfig: Path) -> list[str]:
    return [arg for c in _containers(kubeconfig) for arg in c.args or []]


def test_upgrade_of_a_cluster_whose_agents_are_nowhere_is_refused_and_changes_nothing(
    upgrade_cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    cli = upgrade_cli
    group = cli.group("upgrade-nowhere")
    with cli.server.client() as c:  # a resource whose agents were never installed (or were removed by hand)
        r = c.put(
            resource_id(cli, group, "bare"),
            params=CC_API,
            json=cluster_body(arcAgentProfile={"agentAutoUpgrade": "Disabled"}),
        )
        assert r.status_code == 201, r.text
    refused = cli.run(
        "connectedk8s", "upgrade", "-g", group, "-n", "bare", "--agent-version", NEXT, "--kube-config",
        str(fresh_cluster()),
    )  # fmt: skip
    assert _error(refused) == (
        "ERROR: (AgentsNotFound) No local agents of this connected cluster run on this machine, and the cluster of the "
        "kubeconfig carries no Halyard agents. Give the cluster's kubeconfig with --kube-config (and --kube-context)."
    )
    assert "desiredAgentVersion" not in _profile(cli, group, "bare")
