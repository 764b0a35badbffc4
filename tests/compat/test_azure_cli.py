"""The real Azure CLI against a running control plane over TLS, set up exactly as docs/azure-cli.md says."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.api.helpers import AGENT_PUBLIC_KEY, cluster_body, cluster_path, group_path, unique
from tests.compat.azcli import AzureCli, Exchange, az_environment, az_executable
from tests.compat.recipes import recipe
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

CLUSTERS = "Microsoft.Kubernetes/connectedClusters"


def polled_as_told(traced: list[Exchange], method: str, resource_id: str) -> None:
    """The long-running ``method`` on ``resource_id`` was answered with where to poll and ``Retry-After: 1`` (az
    would otherwise wait 30 s a poll), and az polled exactly there, as told, until the operation ended."""
    (started,) = [e for e in traced if e.method == method and e.path.lower() == resource_id.lower()]
    assert started.status in (201, 202), (started.status, started.headers)
    assert started.headers.get("retry-after") == "1", started.headers
    where = started.headers.get("azure-asyncoperation") or started.headers["location"]
    polls = [
        e
        for e in traced[traced.index(started) + 1 :]
        if e.method == "GET" and e.url.split("?")[0] == where.split("?")[0]
    ]
    assert polls, f"az did not poll {where}: {[(e.method, e.path) for e in traced]}"
    assert all(p.headers.get("retry-after") == "1" for p in polls if p.status == 202), [p.headers for p in polls]
    assert polls[-1].status == 200, (polls[-1].status, polls[-1].headers)


def documented_login(server: ServerProcess, home: Path) -> tuple[AzureCli, Any]:
    """An az logged in as the bootstrap admin by the recipe of docs/azure-cli.md, and the login's JSON output."""
    executable = az_executable()
    cli = AzureCli(executable, az_environment(executable, home, server.ca))
    admin = server.admin
    login = cli.script(
        recipe("bash"),
        {
            "HALYARD_URL": admin["server"],
            "HALYARD_CA": admin["caCert"],
            "TENANT": admin["tenant"],
            "CLIENT_ID": admin["clientId"],
            "CLIENT_SECRET": admin["clientSecret"],
        },
    )
    return cli, json.loads(login.stdout)


@pytest.fixture(scope="module")
def az_login(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> tuple[AzureCli, Any]:
    return documented_login(server, tmp_path_factory.mktemp("az-home"))


@pytest.fixture(scope="module")
def cli(az_login: tuple[AzureCli, Any]) -> AzureCli:
    return az_login[0]


def test_cloud_register_discovers_endpoints_and_service_principal_logs_in(
    az_login: tuple[AzureCli, Any], server: ServerProcess
) -> None:
    cli, login = az_login
    admin = server.admin
    expected = {
        "cloudName": "halyard",
        "id": admin["subscription"],
        "tenantId": admin["tenant"],
        "homeTenantId": admin["tenant"],
        "state": "Enabled",
        "isDefault": True,
        "user": {"name": admin["clientId"], "type": "servicePrincipal"},
    }
    # Other subscriptions the principal can see would be listed too; the bootstrap one must be the default.
    assert [{k: s[k] for k in expected} for s in login if s["id"] == admin["subscription"]] == [expected]

    cloud = cli.json("cloud", "show", "-n", "halyard")
    assert cloud["isActive"] is True
    endpoints = cloud["endpoints"]
    # Everything but the resource manager came from GET /metadata/endpoints.
    assert endpoints["resourceManager"] == admin["server"] + "/"
    assert endpoints["activeDirectory"].rstrip("/") == admin["server"]
    assert endpoints["activeDirectoryResourceId"] == admin["audience"]

    subscriptions = {s["id"]: s for s in cli.json("account", "list")}
    listed = subscriptions[admin["subscription"]]
    assert (listed["tenantId"], listed["cloudName"], listed["isDefault"]) == (admin["tenant"], "halyard", True)
    account = cli.json("account", "show")
    assert {k: account[k] for k in ("id", "tenantId", "homeTenantId", "environmentName", "user")} == {
        "id": admin["subscription"],
        "tenantId": admin["tenant"],
        "homeTenantId": admin["tenant"],
        "environmentName": "halyard",
        "user": {"name": admin["clientId"], "type": "servicePrincipal"},
    }
    # The token az holds is a management token Halyard accepts (as for curl or any HTTP client).
    token = cli.json("account", "get-access-token")
    assert (token["subscription"], token["tenant"], token["tokenType"]) == (
        admin["subscription"],
        admin["tenant"],
        "Bearer",
    )
    with server.client(token["accessToken"]) as client:
        assert client.get("/subscriptions", params={"api-version": "2022-12-01"}).status_code == 200


def test_group_create_list_show_exists_delete(cli: AzureCli, server: ServerProcess) -> None:
    name = unique("az-rg")
    created = cli.json("group", "create", "-n", name, "-l", "westus", "--tags", "team=infra")
    assert {k: created[k] for k in ("id", "name", "location", "tags", "type")} == {
        "id": group_path(server, name),
        "name": name,
        "location": "westus",
        "tags": {"team": "infra"},
        "type": "Microsoft.Resources/resourceGroups",
    }
    assert created["properties"]["provisioningState"] == "Succeeded"
    listed = {g["name"]: g for g in cli.json("group", "list")}
    assert listed[name]["tags"] == {"team": "infra"}
    assert cli.json("group", "show", "-n", name) == created
    assert cli.json("group", "exists", "-n", name) is True

    polled_as_told(cli.traced("group", "delete", "-n", name, "--yes")[1], "DELETE", group_path(server, name))
    assert cli.json("group", "exists", "-n", name) is False
    missing = cli.run("group", "show", "-n", name, ok=False)
    assert f"(ResourceGroupNotFound) Resource group '{name}' could not be found." in missing.stderr


def test_group_delete_no_wait_completes_server_side_with_its_resources(cli: AzureCli, server: ServerProcess) -> None:
    name = unique("az-nowait")
    cli.run("group", "create", "-n", name, "-l", "westus", "-o", "none")
    cluster = cluster_path(server, name, "doomed")
    cli.run(
        "rest", "--method", "put", "--url", f"{cluster}?api-version=2024-01-01", "--body", json.dumps(cluster_body())
    )

    cli.run("group", "delete", "-n", name, "--yes", "--no-wait")
    # Nobody polls: the server must finish the deletion by itself.
    deadline = time.monotonic() + 30
    while cli.json("group", "exists", "-n", name):
        assert time.monotonic() < deadline, f"group {name} still exists 30 s after az group delete --no-wait"
        time.sleep(0.5)
    gone = cli.run("rest", "--method", "get", "--url", f"{cluster}?api-version=2024-01-01", ok=False)
    assert "ResourceGroupNotFound" in gone.stderr
    assert cluster not in {r["id"] for r in cli.json("resource", "list")}


def test_resource_commands_on_connected_clusters(cli: AzureCli, server: ServerProcess, group: str) -> None:
    by_rest, by_create = cluster_path(server, group, "by-rest"), cluster_path(server, group, "by-create")
    body = cluster_body(location="westus")

    put = cli.json("rest", "--method", "put", "--url", f"{by_rest}?api-version=2024-01-01", "--body", json.dumps(body))
    assert (put["id"], put["type"], put["properties"]["connectivityStatus"]) == (by_rest, CLUSTERS, "Connecting")
    # az resource create asks the provider for its newest stable api-version, PUTs, then polls the operation.
    created, traced = cli.traced("resource", "create", "--id", by_create, "--is-full-object", "--properties",
                                 json.dumps(body))  # fmt: skip
    polled_as_told(traced, "PUT", by_create)
    assert (created["id"], created["properties"]["provisioningState"]) == (by_create, "Succeeded")
    assert created["identity"]["type"] == "SystemAssigned" and created["identity"]["principalId"]

    # -g and --resource-type become one $filter.
    listed = {r["name"]: r for r in cli.json("resource", "list", "-g", group, "--resource-type", CLUSTERS)}
    assert set(listed) == {"by-rest", "by-create"}
    assert {(r["type"], r["location"], r["provisioningState"]) for r in listed.values()} == {
        (CLUSTERS, "westus", "Succeeded")
    }

    shown = cli.json("resource", "show", "--ids", by_rest)
    assert {k: shown[k] for k in ("id", "name", "type", "location")} == {
        "id": by_rest,
        "name": "by-rest",
        "type": CLUSTERS,
        "location": "westus",
    }
    assert shown["properties"]["agentPublicKeyCertificate"] == AGENT_PUBLIC_KEY
    # resource tag GETs the resource and PUTs it back whole, read-only fields included.
    tagged = cli.json("resource", "tag", "--ids", by_create, "--tags", f"owner={group}")
    assert (tagged["id"], tagged["tags"]) == (by_create, {"owner": group})
    assert [r["id"] for r in cli.json("resource", "list", "--tag", f"owner={group}")] == [by_create]

    polled_as_told(cli.traced("resource", "delete", "--ids", by_rest)[1], "DELETE", by_rest)
    remaining = cli.json("resource", "list", "-g", group)
    assert [(r["id"], r["tags"]) for r in remaining] == [(by_create, {"owner": group})]
    gone = cli.run("rest", "--method", "get", "--url", f"{by_rest}?api-version=2026-05-01", ok=False)
    assert '"code":"ResourceNotFound"' in gone.stderr.replace(" ", "")


def test_rest_reaches_the_api_with_the_login_token(cli: AzureCli, server: ServerProcess) -> None:
    subscription = server.admin["subscription"]
    # A relative URL goes to the registered resource manager, with the logged-in token attached.
    provider = cli.json(
        "rest", "--url", f"/subscriptions/{subscription}/providers/Microsoft.Kubernetes?api-version=2024-11-01"
    )
    assert (provider["namespace"], provider["registrationState"]) == ("Microsoft.Kubernetes", "Registered")
    clusters = next(t for t in provider["resourceTypes"] if t["resourceType"] == "connectedClusters")
    # az picks the first non-preview entry for resource show/create/delete: it must be the newest stable.
    stable = [v for v in clusters["apiVersions"] if "preview" not in v]
    assert stable[0] == max(stable) == "2026-05-01"
    # An absolute URL on the same origin gets the token too.
    listed = cli.json("rest", "--url", f"{server.url}/subscriptions?api-version=2022-12-01")
    assert subscription in [s["subscriptionId"] for s in listed["value"]]


def test_logout_forgets_the_login_and_a_wrong_secret_is_refused(server: ServerProcess, tmp_path: Path) -> None:
    cli, _ = documented_login(server, tmp_path)
    # logout builds az's MSAL app on the "organizations" authority before it finds the cached account.
    cli.run("logout")
    assert "az login" in cli.run("account", "show", ok=False).stderr
    admin = server.admin
    refused = cli.run(
        "login", "--service-principal", "-u", admin["clientId"], "-p", "wrong", "--tenant", admin["tenant"], ok=False
    )
    assert "AADSTS7000215" in refused.stderr
    assert cli.json("account", "list") == []
    # A tenant's domain name works too: az finds the tenant GUID as the first path segment of the issuer.
    with server.client() as client:
        tenants = client.get("/tenants", params={"api-version": "2022-12-01"}).json()["value"]
    domain = next(t["defaultDomain"] for t in tenants if t["tenantId"] == admin["tenant"])
    again = cli.json(
        "login", "--service-principal", "-u", admin["clientId"], "-p", admin["clientSecret"], "--tenant", domain
    )
    assert [(s["id"], s["tenantId"]) for s in again if s["id"] == admin["subscription"]] == [
        (admin["subscription"], admin["tenant"])
    ]


def test_monitor_activity_log_list(cli: AzureCli, server: ServerProcess) -> None:
    """The real ``az monitor activity-log list`` (its bare, zone-less timestamps, ``resourceId eq``, ``--select``):
    a cluster's write, by resource, group and correlation id, in the caller's name."""
    name = unique("az-log")
    cli.run("group", "create", "-n", name, "-l", "westus", "-o", "none")
    cluster = cluster_path(server, name, "logged")
    cli.run(
        "rest", "--method", "put", "--url", f"{cluster}?api-version=2024-01-01", "--body", json.dumps(cluster_body())
    )
    deadline = time.monotonic() + 30
    while len(events := cli.json("monitor", "activity-log", "list", "--resource-id", cluster)) < 3:
        assert time.monotonic() < deadline, f"the write of {cluster} never ended in the activity log: {events}"
        time.sleep(0.5)
    assert [e["status"]["value"] for e in events] == ["Succeeded", "Accepted", "Started"]
    assert {e["caller"] for e in events} == {server.admin["clientId"]}
    assert {e["operationName"]["value"] for e in events} == {"Microsoft.Kubernetes/connectedClusters/write"}

    in_group = cli.json("monitor", "activity-log", "list", "-g", name, "--offset", "1h")
    assert {e["resourceId"] for e in in_group} == {group_path(server, name), cluster}
    selected = cli.json(
        "monitor",
        "activity-log",
        "list",
        "--correlation-id",
        events[0]["correlationId"],
        "--select",
        "caller",
        "status",
    )
    assert [e["status"]["value"] for e in selected] == ["Succeeded", "Accepted", "Started"]
    assert all(e.get("operationName") is None for e in selected)
