"""``halyard connectedk8s show/list/delete/update`` (and ``upgrade``'s first refusal), ``resource list`` and
``provider`` on clusters created over REST."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.helpers import AGENT_PUBLIC_KEY, CC_API, cluster_body, cluster_path, make_group, unique
from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
CLUSTERS = "Microsoft.Kubernetes/connectedClusters"


def test_cluster_created_over_rest_is_shown_listed_and_deleted(admin: Cli, server: ServerProcess) -> None:
    group, name = make_group(server), unique("cc")
    with server.client() as client:
        created = client.put(cluster_path(server, group, name), params=CC_API, json=cluster_body(tags={"a": "b"}))
        assert created.status_code in (200, 201), created.text

    shown = admin.json("connectedk8s", "show", "-g", group, "-n", name)
    # Flattened as az prints it: properties at the top, plus the resource group.
    assert shown["name"] == name and shown["resourceGroup"] == group and shown["type"] == CLUSTERS
    assert shown["connectivityStatus"] == "Connecting" and "properties" not in shown
    assert admin.json("connectedk8s", "list", "-g", group, "--query", "[].name") == [name]
    assert name in admin.json("connectedk8s", "list", "--query", "[].name")
    table = admin.ok("connectedk8s", "list", "-g", group, "-o", "table").splitlines()
    assert table[0].split()[:4] == ["Name", "ResourceGroup", "Location", "ConnectivityStatus"]
    assert table[2].split()[:4] == [name, group, "eastus", "Connecting"]

    resources = admin.json("resource", "list", "-g", group, "--resource-type", CLUSTERS)
    assert [(r["name"], r["resourceGroup"], r["type"]) for r in resources] == [(name, group, CLUSTERS)]
    assert admin.json("resource", "list", "-g", group, "--resource-type", "Microsoft.Nope/things") == []

    assert admin.ok("connectedk8s", "delete", "-g", group, "-n", name, "--yes") == ""
    gone = admin.run("connectedk8s", "show", "-g", group, "-n", name)
    assert gone.error.startswith("ERROR: (ResourceNotFound)")
    assert admin.json("connectedk8s", "list", "-g", group) == []


def test_delete_no_wait_and_unknown_group(admin: Cli, server: ServerProcess) -> None:
    group, name = make_group(server), unique("cc")
    with server.client() as client:
        assert client.put(cluster_path(server, group, name), params=CC_API, json=cluster_body()).status_code in (
            200,
            201,
        )
    assert admin.ok("connectedk8s", "delete", "-g", group, "-n", name, "--yes", "--no-wait") == ""
    unknown = admin.run("connectedk8s", "list", "-g", unique("nogroup"))
    assert unknown.error.startswith("ERROR: (ResourceGroupNotFound)")


def test_delete_whose_cluster_cannot_be_cleaned_fails_loudly_unless_forced(
    admin: Cli, server: ServerProcess, tmp_path: Path
) -> None:
    group = make_group(server)
    missing = tmp_path / "no-such-kubeconfig"
    for name, extra in ((unique("cc"), []), (unique("cc"), ["--force"])):
        with server.client() as client:
            client.put(cluster_path(server, group, name), params=CC_API, json=cluster_body()).raise_for_status()
        result = admin.run(
            "connectedk8s", "delete", "-g", group, "-n", name, "--yes", "--kube-config", str(missing), *extra
        )
        if extra:
            assert result.code == 0 and result.stderr.startswith("WARNING: The resource is deleted, but the cluster")
        else:
            assert result.code == 1 and result.error.startswith("ERROR: (ClusterCleanupFailed) The resource is deleted")
        # Either way the resource (and with it the cluster's identity) is gone; a rerun can finish the clean-up.
        assert admin.run("connectedk8s", "show", "-g", group, "-n", name).error.startswith("ERROR: (ResourceNotFound)")


def test_providers(admin: Cli) -> None:
    providers = admin.json("provider", "list", "--query", "[].namespace")
    assert "Microsoft.Kubernetes" in providers
    shown = admin.json("provider", "show", "-n", "Microsoft.Kubernetes")
    assert shown["registrationState"] == "Registered"
    assert "connectedClusters" in [t["resourceType"] for t in shown["resourceTypes"]]
    assert admin.ok("provider", "register", "-n", "Microsoft.Kubernetes") == ""
    unknown = admin.run("provider", "show", "-n", "Microsoft.Nope")
    assert unknown.error.startswith("ERROR: (NoRegisteredProviderFound)")


def test_lists_follow_next_link_across_pages(fresh_server: ServerProcess, tmp_path: Path) -> None:
    fresh_server.env = {"HALYARD_PAGE_SIZE": "2"}
    server = fresh_server.start()
    group, names = make_group(server), sorted(unique("cc") for _ in range(5))
    with server.client() as client:
        for name in names:
            response = client.put(cluster_path(server, group, name), params=CC_API, json=cluster_body())
            assert response.status_code in (200, 201), response.text
    cli = Cli(tmp_path / "config", {})
    assert cli.login(server, server.admin["clientId"], server.admin["clientSecret"], "-o", "none").code == 0
    listed = cli.run("connectedk8s", "list", "-g", group, "--query", "[].name", "--debug")
    assert listed.code == 0, listed.stderr
    assert sorted(json.loads(listed.stdout)) == names
    pages = [line for line in listed.stderr.splitlines() if line.startswith("DEBUG: Response: 200 GET")]
    assert len(pages) == 3  # 2 + 2 + 1


def test_update_patches_tags_and_distribution_and_puts_auto_upgrade(admin: Cli, server: ServerProcess) -> None:
    group, name = make_group(server), unique("cc")
    with server.client() as client:
        body = cluster_body(distribution="generic")
        client.put(cluster_path(server, group, name), params=CC_API, json=body).raise_for_status()

    updated = admin.json(
        "connectedk8s", "update", "-g", group, "-n", name, "--tags", "env=dev", "team", "--distribution", "k3s",
        "--distribution-version", "1.31", "--auto-upgrade", "false",
    )  # fmt: skip
    shown = admin.json("connectedk8s", "show", "-g", group, "-n", name)
    for cluster in (updated, shown):  # printed like show, and what show reads back
        assert cluster["tags"] == {"env": "dev", "team": ""}
        assert (cluster["distribution"], cluster["distributionVersion"]) == ("k3s", "1.31")
        assert cluster["arcAgentProfile"]["agentAutoUpgrade"] == "Disabled"
    assert shown["agentPublicKeyCertificate"] == AGENT_PUBLIC_KEY  # the full PUT keeps what it did not change
    admin.ok("connectedk8s", "update", "-g", group, "-n", name, "--tags", "")
    admin.ok("connectedk8s", "update", "-g", group, "-n", name, "--auto-upgrade", "true")
    shown = admin.json("connectedk8s", "show", "-g", group, "-n", name)
    assert shown["tags"] == {} and shown["arcAgentProfile"]["agentAutoUpgrade"] == "Enabled"
    assert shown["distribution"] == "k3s"

    nothing = admin.run("connectedk8s", "update", "-g", group, "-n", name)
    assert nothing.code == 2 and nothing.error.startswith("ERROR: (UsageError) Nothing to update")
    bad = admin.run("connectedk8s", "update", "-g", group, "-n", name, "--auto-upgrade", "maybe")
    assert bad.code == 2 and "--auto-upgrade" in bad.error
    missing = admin.run("connectedk8s", "update", "-g", group, "-n", unique("cc"), "--tags", "a=b")
    assert missing.error.startswith("ERROR: (ResourceNotFound)")


def test_upgrade_is_refused_while_auto_upgrade_is_on(admin: Cli, server: ServerProcess) -> None:
    group, name = make_group(server), unique("cc")
    with server.client() as client:
        client.put(cluster_path(server, group, name), params=CC_API, json=cluster_body()).raise_for_status()
    refused = admin.run("connectedk8s", "upgrade", "-g", group, "-n", name, "--agent-version", "0.1.0")
    assert refused.error == (
        f"ERROR: (AutoUpgradeEnabled) Auto-upgrade is enabled for '{name}', so its agents follow the newest version "
        f"by themselves. To pin version 0.1.0, turn it off first: halyard connectedk8s update -g {group} -n {name} "
        "--auto-upgrade false"
    )
    shown = admin.json("connectedk8s", "show", "-g", group, "-n", name)
    assert "desiredAgentVersion" not in (shown.get("arcAgentProfile") or {})
