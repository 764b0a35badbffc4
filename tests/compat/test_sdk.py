"""The official Azure SDK clients against a running control plane, with the credential of docs/azure-cli.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from azure.core.exceptions import ResourceNotFoundError

from tests.api.helpers import AGENT_PUBLIC_KEY, group_path, unique
from tests.compat.recipes import recipe
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("sdk_flow.py")


@pytest.fixture(scope="session")
def sdk12_python() -> Path:
    """The Python of .cache/sdk12, where `make sdk12` (scripts/install-sdk12.sh) installed
    azure-mgmt-hybridkubernetes 1.2.0; installing is the setup's job, not the test's."""
    python = REPO / ".cache" / "sdk12" / "bin" / "python"
    probe = "import importlib.metadata as m; print(m.version('azure-mgmt-hybridkubernetes'))"
    found = subprocess.run([str(python), "-c", probe], capture_output=True, text=True) if python.exists() else None
    if found is None or found.stdout.strip() != "1.2.0":
        pytest.fail(
            f"{python} with azure-mgmt-hybridkubernetes 1.2.0 is missing: run `make sdk12` "
            f"(scripts/install-sdk12.sh .cache/sdk12); make test does.",
            pytrace=False,
        )
    return python


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

        answers: list[Any] = []
        groups.begin_delete(name, raw_response_hook=lambda r: answers.append(r.http_response)).result()
        # The delete is accepted as an operation to poll, with how soon to poll it: the SDK's 30 s default otherwise.
        accepted = answers[0]
        assert accepted.status_code == 202 and accepted.headers["Retry-After"] == "1", accepted.headers
        assert "/operationResults/" in accepted.headers["Location"]
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

    # Create and delete are long-running operations: the server says where to poll and how soon (Retry-After: 1,
    # where azure-core would otherwise wait 30 s a poll), and the SDK polled exactly there until they succeeded.
    lros = _long_running(out["requests"])
    assert {method for method, _, _ in lros} >= {"PUT", "DELETE"}, lros
    for method, retry_after, polls in lros:
        assert retry_after == "1", (method, retry_after)
        assert polls and polls[-1] == ("Succeeded", 200), (method, polls)
        assert all(retry == "1" for status, retry in polls[:-1]), (method, polls)  # InProgress polls say when again


def _long_running(requests: list[dict[str, Any]]) -> list[tuple[str, str | None, list[tuple[str, Any]]]]:
    """Each request answered with an Azure-AsyncOperation: (method, its Retry-After, the polls of that operation as
    (status in the body, then the poll's Retry-After or its HTTP status for the last))."""
    found = []
    for i, request in enumerate(requests):
        if "Azure-AsyncOperation" not in request or "/operationStatuses/" in request["path"]:
            continue
        operation = urlsplit(request["Azure-AsyncOperation"]).path
        polls = [r for r in requests[i + 1 :] if r["method"] == "GET" and r["path"] == operation]
        shown = [(p["operationStatus"], p.get("Retry-After")) for p in polls[:-1]]
        shown += [(p["operationStatus"], p["status"]) for p in polls[-1:]]
        found.append((request["method"], request.get("Retry-After"), shown))
    return found


def test_the_monitor_client_reads_the_activity_log(server: ServerProcess) -> None:
    """azure-mgmt-monitor's ``activity_logs.list`` (api-version 2015-04-01, the documented credential): a group's
    creation and tagging, newest first, as EventData models, with ``select`` and a filter by correlation id."""
    import datetime as dt

    from azure.mgmt.monitor import MonitorManagementClient

    clients: dict[str, Any] = {"admin": server.admin}
    exec(recipe("python"), clients)
    monitor = MonitorManagementClient(
        clients["credential"],
        server.admin["subscription"],
        base_url=server.admin["server"],
        credential_scopes=[server.admin["audience"] + ".default"],
        connection_verify=server.admin["caCert"],
    )
    try:
        name = unique("sdk-log")
        clients["resources"].resource_groups.create_or_update(name, {"location": "westus"})
        clients["resources"].resource_groups.update(name, {"tags": {"step": "2"}})
        start = (dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)).isoformat()
        events = list(
            monitor.activity_logs.list(filter=f"eventTimestamp ge '{start}' and resourceGroupName eq '{name}'")
        )
        assert [(e.http_request.method, e.status.value) for e in events] == [
            ("PATCH", "Succeeded"), ("PATCH", "Started"), ("PUT", "Succeeded"), ("PUT", "Started"),
        ]  # fmt: skip
        first = events[-1]
        assert first.caller == server.admin["clientId"] and first.resource_group_name == name
        assert first.operation_name.value == "Microsoft.Resources/subscriptions/resourceGroups/write"
        assert first.category.value == "Administrative" and first.event_timestamp.tzinfo is not None
        assert first.authorization.scope == group_path(server, name)
        only = list(
            monitor.activity_logs.list(
                filter=f"eventTimestamp ge '{start}' and correlationId eq '{first.correlation_id}'",
                select="caller,status",
            )
        )
        assert [e.status.value for e in only] == ["Succeeded", "Started"]
        assert only[0].caller == server.admin["clientId"] and only[0].operation_name is None
    finally:
        monitor.close()
        for opened in ("resources", "kubernetes", "credential"):
            clients[opened].close()
