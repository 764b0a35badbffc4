"""What a new user trips over with ``connectedk8s connect/delete`` against a simulated cluster: in-cluster agents
forced where nothing runs, a timeout that names its cause, a delete that says what it left, and helm found where
``scripts/install-helm.sh`` put it."""

from __future__ import annotations

import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents.conftest import Cli
from tests.agents.test_onboarding import namespace_exists

pytestmark = pytest.mark.e2e
PLACEHOLDER = "<the cluster's kubeconfig>"
# No HALYARD_HELM and no helm on PATH: the CLI must find the helm scripts/install-helm.sh put in .cache/bin.
PROJECT_HELM_ONLY = {
    "HALYARD_HELM": "",
    "PATH": os.pathsep.join([str(Path(sys.executable).parent), "/usr/bin", "/bin"]),
}


def test_in_cluster_forced_on_a_simulator_is_refused_at_once_without_a_terminal(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-forced")
    started = time.monotonic()
    # The default --onboarding-timeout is 1200 s; the process limit of 60 s fails the test if connect waits.
    proc = cli.run("connectedk8s", "connect", "-g", group, "-n", "forced", "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "in-cluster", env=PROJECT_HELM_ONLY, timeout=60)  # fmt: skip
    print(f"refused after {time.monotonic() - started:.2f} s")
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("ERROR: (AgentsCannotConnect) The cluster is a Halyard simulator: its pods run nothing")
    assert lines[0].endswith(
        "Connect with --agent-mode local, or add --yes to install the agents in the cluster anyway."
    )
    assert cli.ok("connectedk8s", "list", "-g", group) == []
    assert not namespace_exists(kubeconfig)


def test_timeout_names_the_simulator_and_delete_without_kubeconfig_names_what_it_left(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    kubeconfig = fresh_cluster()
    group = cli.group("agents-leftover")
    # --yes: install anyway (the tests run such agents' processes themselves); nothing does here, so it times out.
    waited = cli.run("connectedk8s", "connect", "-g", group, "-n", "leftover", "-l", "eastus", "--kube-config",
                     str(kubeconfig), "--agent-mode", "in-cluster", "--yes", "--onboarding-timeout", "3",
                     env=PROJECT_HELM_ONLY)  # fmt: skip
    assert waited.returncode == 1, waited.stderr
    assert waited.stderr.startswith("ERROR: (OnboardingTimeout) The agents did not connect within 3 s (status "), (
        waited.stderr
    )
    assert "Likely cause: The cluster is a Halyard simulator: its pods run nothing" in waited.stderr
    assert namespace_exists(kubeconfig)  # kept, as a timeout keeps the resource: a re-run completes it

    deleted = cli.run("connectedk8s", "delete", "-g", group, "-n", "leftover", "--yes", env=PROJECT_HELM_ONLY)
    assert deleted.returncode == 0 and deleted.stdout == "", deleted.stderr
    warning = deleted.stderr.strip()
    assert warning.startswith("WARNING: The connected cluster is deleted and its identity revoked, but nothing was ")
    assert "the Helm release halyard-agent and the namespace halyard-system" in warning
    assert namespace_exists(kubeconfig)

    # The command it names, with the kubeconfig filled in, removes what was left (the resource is already gone).
    command = warning.split("remove them with: ", 1)[1]
    assert command == f"halyard connectedk8s delete -g {group} -n leftover --kube-config {PLACEHOLDER} --yes"
    args = shlex.split(command.replace(PLACEHOLDER, shlex.quote(str(kubeconfig))))
    finished = cli.run(*args[1:], env=PROJECT_HELM_ONLY)
    assert finished.returncode == 0, finished.stderr
    assert "Removed: agent chart, namespace halyard-system." in finished.stderr
    assert not namespace_exists(kubeconfig)
