"""The official Azure SDK clients against a running control plane, with the credential of docs/azure-cli.md."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.api.helpers import AGENT_PUBLIC_KEY, group_path, unique
from tests.compat.recipes import LRO_BUDGET_SECONDS, recipe
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("sdk_flow.py")


@pytest.fixture(scope="session")
def sdk12_python() -> Path:
    """The Python of .cache/sdk12, where azure-mgmt-hybridkubernetes 1.2.0 lives (installed on first use)."""
    venv = REPO / ".cache" / "sdk12"
    installed = subprocess.run(
        [str(REPO / "scripts" / "install-sdk12.sh"), str(venv)], capture_output=True, text=True, timeout=600
    )
    if installed.returncode != 0:
        pytest.fail(
            f"scripts/install-sdk12.sh could not install azure-mgmt-hybridkubernetes==1.2.0 into {venv} "
            f"(it needs the package index):\n{installed.stderr[-3000:]}",
            pytrace=False,
        )
    return venv / "bin" / "python"


def test_documented_clients_manage_resource_groups(server: ServerProcess) -> None:
    clients: dict[str, Any] = {"admin": server.admin}
    exec(recipe("python"), clients)
    try:
        groups = clients["resources"].resource_groups
        name = unique("sdk-rg")

        created = groups.create_or_update(name, {"location": "westus", "tags": {"by": "sdk"}})
        assert (created.id, created.location, created.tags) == (group_path(server, name), "westus", {"by": "sdk"})
        assert created.properties.provisioning_state == "Succeeded"
        assert name in {g.name for g in groups.list()}
        assert groups.get(name).tags == {"by": "sdk"}
        assert groups.check_existence(name) is True

        started = time.monotonic()
        groups.begin_delete(name).result()
        assert time.monotonic() - started < LRO_BUDGET_SECONDS
        assert groups.check_existence(name) is False
        with pytest.raises(ResourceNotFoundError) as missing:
            groups.get(name)
        assert missing.value.error is not None and missing.value.error.code == "ResourceGroupNotFound"

        # The documented kubernetes client shares the credential and reaches its provider.
        operations = {op.name for op in clients["kubernetes"].operations.get()}
        assert "Microsoft.Kubernetes/connectedClusters/write" in operations
    finally:
        for opened in ("resources", "kubernetes", "credential"):
            clients[opened].close()  # pooled connections would otherwise outlive the test


@pytest.mark.parametrize(("sdk", "api_version"), [("2.0.0", "2026-05-01"), ("1.2.0", "2021-10-01")])
def test_connected_cluster_lifecycle(
    server: ServerProcess, group: str, request: pytest.FixtureRequest, sdk: str, api_version: str
) -> None:
    # SDK 2.0.0 is in the test venv; 1.2.0 cannot share it and runs the same driver from its own.
    python = sys.executable if sdk == "2.0.0" else str(request.getfixturevalue("sdk12_python"))
    name = unique("sdk")
    spec = {"admin": server.admin, "group": group, "cluster": name, "key": AGENT_PUBLIC_KEY}
    ran = subprocess.run(
        [python, str(DRIVER)], input=json.dumps(spec), capture_output=True, text=True, timeout=180, cwd=REPO
    )
    assert ran.returncode == 0, f"{DRIVER.name} with SDK {sdk} failed:\n{ran.stderr[-4000:]}"
    out = json.loads(ran.stdout)

    assert (out["sdk"], out["apiVersion"]) == (sdk, api_version)
    assert {r["apiVersion"] for r in out["requests"]} == {api_version}
    cluster_id = f"{group_path(server, group)}/providers/Microsoft.Kubernetes/connectedClusters/{name}"
    created = out["created"]
    assert created == {
        "id": cluster_id,
        "name": name,
        "type": "Microsoft.Kubernetes/connectedClusters",
        "location": "westus",
        "tags": {"owner": "sdk"},
        "identityType": "SystemAssigned",
        "principalId": created["principalId"],
        "provisioningState": "Succeeded",
        "connectivityStatus": "Connecting",
        "distribution": "k3s",
    }
    assert created["principalId"]
    assert out["fetched"] == created
    assert out["byGroup"] == [name]
    assert cluster_id in out["bySubscription"]
    # PATCH replaces the tags and leaves everything else alone.
    assert out["updated"] == out["afterUpdate"] == {**created, "tags": {"env": "sdk"}}
    assert out["afterDelete"] == out["missingCluster"] == "ResourceNotFound"

    # Create and delete are long-running operations the SDK polled, and Retry-After kept the polls short.
    polls = [r for r in out["requests"] if r["method"] == "GET" and "/operationStatuses/" in r["path"]]
    assert len(polls) >= 2
    assert max(out["seconds"].values()) < LRO_BUDGET_SECONDS, out["seconds"]
