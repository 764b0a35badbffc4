"""Region move end to end (issue 15): a simulated cluster with an extension and a Flux configuration, both holding
protected settings, is moved to another location and resource group with ``halyard connectedk8s move``; the first
run is killed half-way (the old resource gone, the new not yet connected) and the second continues: everything is
back under the new resource, the protected settings still reach the cluster though no client ever held them, and the
comparison is empty."""

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
from typing import Any

import pytest
from lightkube import Client, KubeConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Secret

from tests.agents.conftest import Cli
from tests.agents.test_flux import API as FLUX_API
from tests.agents.test_flux import GitRepository, Kustomization, install_flux_crds
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


def _flux_state(cli: Cli, path: str) -> dict[str, Any]:
    with cli.server.client() as c:
        props: dict[str, Any] = c.get(path, params=FLUX_API).json()["properties"]
        return props


def test_a_cluster_moves_with_its_configuration_and_protected_settings_and_a_rerun_continues(
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
    # A Flux configuration with an https key (through the API: the CLI would first install the flux extension, whose
    # controllers the simulator does not need here; Flux's CRDs are installed as that extension would).
    kube = Client(config=KubeConfig.from_file(str(kubeconfig)))
    install_flux_crds(kube)
    flux_path = f"{old_id}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/apps"
    flux_body = {"properties": {
        "scope": "cluster", "namespace": "mover-flux", "sourceKind": "GitRepository",
        "gitRepository": {"url": "https://git.invalid/fleet.git", "repositoryRef": {"branch": "main"},
                          "httpsUser": "fleet"},
        "kustomizations": {"web": {"path": "./web", "prune": True}},
        "configurationProtectedSettings": {"httpsKey": base64.b64encode(SECRET.encode()).decode()},
    }}  # fmt: skip
    with server.client() as c:
        assert c.put(flux_path, params=FLUX_API, json=flux_body).status_code == 201
    deadline = time.monotonic() + 30
    while not (flux := _flux_state(cli, flux_path)).get("statuses") or flux["provisioningState"] != "Succeeded":
        assert time.monotonic() < deadline, f"the Flux configuration was not applied: {flux}"
        time.sleep(0.1)

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
    # The agents are gone with the old resource: the Secret of the Flux configuration's key is removed here, so that
    # finding it again proves the key was delivered anew, from the sealed snapshot.
    kube.delete(Secret, "apps-auth", namespace="mover-flux")

    # Run again: it continues from the snapshot the control plane kept.
    second = cli.run(*args[3:])
    assert second.returncode == 0, second.stderr
    moved = json.loads(second.stdout)
    assert moved["differences"] == [], moved
    assert moved["configuration"] == ["extensions/hello", "fluxConfigurations/apps"], moved
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
    new_flux = _flux_state(cli, f"{shown['id']}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/apps")
    assert new_flux["provisioningState"] == "Succeeded" and new_flux["gitRepository"] == flux["gitRepository"]
    assert new_flux["kustomizations"] == flux["kustomizations"] and new_flux["statuses"] == flux["statuses"]
    assert kube.get(GitRepository, "apps", namespace="mover-flux") and kube.get(Kustomization, "apps-web",
                                                                                 namespace="mover-flux")  # fmt: skip
    # The protected settings reached the cluster again, from the control plane's sealed snapshot.
    secret = kube.get(Secret, "hello-protected-settings", namespace="mover-ns")
    assert base64.b64decode((secret.data or {})["password"]).decode() == SECRET
    deadline = time.monotonic() + 10
    while not (flux_secret := _secret_or_none(kube, "apps-auth", "mover-flux")):
        assert time.monotonic() < deadline, "the Flux configuration's Secret was not written again"
        time.sleep(0.1)
    assert base64.b64decode((flux_secret.data or {})["password"]).decode() == SECRET
    # The snapshot is discarded once the move is complete.
    with server.client() as c:
        r = c.post(f"{shown['id']}/restoreConfiguration", params=MOVE_API, json={"sourceClusterId": old_id})
        assert r.status_code == 404 and r.json()["error"]["code"] == "SnapshotNotFound", r.text
    assert SECRET not in server.whole_log()
    cli.ok("connectedk8s", "delete", "-g", new_group, "-n", "mover", "--yes")
    kube.close()


def _secret_or_none(kube: Client, name: str, namespace: str) -> Secret | None:
    try:
        return kube.get(Secret, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
