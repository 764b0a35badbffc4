"""Region move end to end (issue 15): a simulated cluster with an extension holding protected settings is moved to
another location and resource group with ``halyard connectedk8s move``; the first run is killed half-way (the old
resource gone, the new not yet connected) and the second continues: everything is back under the new resource, the
protected settings still reach the cluster though no client ever held them, and the comparison is empty."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Secret

from tests.agents.conftest import Cli
from tests.configuration.charts import tiny_chart_b64

pytestmark = pytest.mark.e2e
EXT_API = {"api-version": "2025-03-01"}
CC_API = {"api-version": "2024-01-01"}
MOVE_API = {"api-version": "2026-01-01"}
TYPES = "/providers/Halyard.Extensions/extensionTypes"
SECRET = "moved-" + uuid.uuid4().hex


def _status(cli: Cli, path: str, params: dict[str, str]) -> int:
    with cli.server.client() as c:
        return c.get(path, params=params).status_code


def test_a_cluster_moves_with_its_extension_and_protected_settings_and_a_rerun_continues(
    cli: Cli, fresh_cluster: Callable[[], Path]
) -> None:
    server = cli.server
    kubeconfig = fresh_cluster()
    old_group, new_group = cli.group("move-from"), cli.group("move-to")
    proc = cli.run("connectedk8s", "connect", "-g", old_group, "-n", "mover", "-l", "eastus", "--kube-config",
                   str(kubeconfig), "--agent-mode", "local", "--yes", "--tags", "team=blue", "-o", "json")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    cli.wait_status(old_group, "mover", "Connected")
    old_id = cli.show(old_group, "mover")["id"]
    type_name = f"contoso.mover-{uuid.uuid4().hex[:6]}"
    with server.client() as c:
        r = c.put(f"{TYPES}/{type_name}/versions/1.0.0", params={"api-version": "2026-01-01"},
                  json={"chart": tiny_chart_b64("1.0.0")})  # fmt: skip
        assert r.status_code == 200, r.text
    cli.ok("k8s-extension", "create", "-g", old_group, "-c", "mover", "-t", "connectedClusters", "-n", "hello",
           "--extension-type", type_name, "--release-namespace", "mover-ns", "--config", "greeting=hi",
           "--config-protected", f"password={SECRET}")  # fmt: skip
    before = cli.ok("k8s-extension", "list", "-g", old_group, "-c", "mover")

    # Refused before anything changes: nowhere to move, or a location not offered.
    same = cli.run("connectedk8s", "move", "-g", old_group, "-n", "mover", "-l", "eastus", "--yes")
    assert same.returncode == 2 and "nothing to move" in same.stderr, same.stderr
    nowhere = cli.run("connectedk8s", "move", "-g", old_group, "-n", "mover", "-l", "mars", "--yes")
    assert nowhere.returncode == 1 and "InvalidLocation" in nowhere.stderr, nowhere.stderr
    assert cli.show(old_group, "mover")["connectivityStatus"] == "Connected"

    # The first run, killed once the old resource is gone (while the cluster connects again).
    args = [
        sys.executable,
        "-m",
        "halyard",
        "connectedk8s",
        "move",
        "-g",
        old_group,
        "-n",
        "mover",
        "--location",
        "westeurope",
        "--new-resource-group",
        new_group,
        "--kube-config",
        str(kubeconfig),
        "--yes",
        "-o",
        "json",
    ]
    first = subprocess.Popen(args, env={**os.environ, **cli.env}, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while _status(cli, old_id, CC_API) != 404:
            assert first.poll() is None, first.communicate()[1].decode()
            assert time.monotonic() < deadline, "the old resource was not deleted"
            time.sleep(0.05)
        assert first.poll() is None, "the move ended before it could be interrupted"
    finally:
        first.send_signal(signal.SIGKILL)
        first.communicate()

    # Run again: it continues from the snapshot the control plane kept.
    second = cli.run(*args[3:])
    assert second.returncode == 0, second.stderr
    moved = json.loads(second.stdout)
    assert moved["differences"] == [] and moved["configuration"] == ["extensions/hello"], moved
    assert moved["location"] == "westeurope" and "the old resource is already gone" in " ".join(moved["steps"])
    assert SECRET not in second.stdout + second.stderr

    shown = cli.wait_status(new_group, "mover", "Connected")
    assert shown["location"] == "westeurope" and shown["tags"] == {"team": "blue"}
    assert _status(cli, old_id, CC_API) == 404
    after = cli.ok("k8s-extension", "list", "-g", new_group, "-c", "mover")
    assert [(e["name"], e["properties"]["provisioningState"], e["properties"]["installState"]) for e in after] == [
        ("hello", "Succeeded", "Installed")
    ]
    assert after[0]["properties"]["configurationSettings"] == before[0]["properties"]["configurationSettings"]
    # The protected settings reached the cluster again, from the control plane's sealed snapshot.
    kube = Client(config=KubeConfig.from_file(str(kubeconfig)))
    secret = kube.get(Secret, "hello-protected-settings", namespace="mover-ns")
    assert base64.b64decode((secret.data or {})["password"]).decode() == SECRET
    # The snapshot is discarded once the move is complete.
    with server.client() as c:
        r = c.post(f"{shown['id']}/restoreConfiguration", params=MOVE_API, json={"sourceClusterId": old_id})
        assert r.status_code == 404 and r.json()["error"]["code"] == "SnapshotNotFound", r.text
    assert SECRET not in server.whole_log()
    cli.ok("connectedk8s", "delete", "-g", new_group, "-n", "mover", "--yes")
