"""``connectedk8s upgrade`` asks the server which agent versions it offers before anything else, and the route it
asks (``GET …/providers/Microsoft.Kubernetes/agentVersions``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.helpers import CC_API, cluster_body, cluster_path, make_group, unique
from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def test_the_server_lists_the_agent_versions_it_offers(server: ServerProcess) -> None:
    path = f"/subscriptions/{server.admin['subscription']}/providers/Microsoft.Kubernetes/agentVersions"
    with server.client() as client:
        listed = client.get(path, params=CC_API)
        unversioned = client.get(path)
    assert listed.status_code == 200, listed.text
    versions = listed.json()["value"]
    assert versions and [v["properties"]["latest"] for v in versions] == [True] + [False] * (len(versions) - 1)
    assert unversioned.status_code == 400 and unversioned.json()["error"]["code"] == "MissingApiVersionParameter"


def test_upgrade_to_a_version_the_server_does_not_offer_says_so_before_anything_else(
    admin: Cli, server: ServerProcess
) -> None:
    group, name = make_group(server), unique("cc")
    body = cluster_body(arcAgentProfile={"agentAutoUpgrade": "Disabled"})
    with server.client() as client:
        client.put(cluster_path(server, group, name), params=CC_API, json=body).raise_for_status()
    offered = admin.json("rest", "--method", "get", "--url", f"/subscriptions/{server.admin['subscription']}"
                         "/providers/Microsoft.Kubernetes/agentVersions?api-version=2026-05-01", "--query", "value[].name")  # fmt: skip
    refused = admin.run("connectedk8s", "upgrade", "-g", group, "-n", name, "--agent-version", "9.9.9")
    # Neither "pip install 9.9.9" nor a hunt for the cluster's agents: the server does not offer it, and says what it
    # offers.
    assert refused.error == (
        f"ERROR: (InvalidAgentVersion) Agent version 9.9.9 is not offered by this control plane; offered versions: "
        f"{', '.join(offered)}. The server's operator adds versions with halyard server --agent-versions."
    )
    shown = admin.json("connectedk8s", "show", "-g", group, "-n", name)
    assert "desiredAgentVersion" not in shown["arcAgentProfile"]


def test_agent_versions_are_for_those_who_may_read_clusters_somewhere_in_the_subscription(
    admin: Cli, server: ServerProcess, tmp_path: Path
) -> None:
    sp = json.loads(admin.ok("ad", "sp", "create", "--display-name", unique("versions-bot")))
    bot = Cli(tmp_path / "bot-config", {})  # no role yet: it sees no subscription
    assert bot.login(server, sp["appId"], sp["password"], "--allow-no-subscriptions", "-o", "none").code == 0
    url = f"/subscriptions/{server.admin['subscription']}/providers/Microsoft.Kubernetes/agentVersions"
    ask = ("rest", "--method", "get", "--url", url + "?api-version=2026-05-01", "--query", "value[].name")
    assert bot.run(*ask).error.startswith(f"ERROR: (AuthorizationFailed) The client '{sp['appId']}'")
    group = make_group(server)
    scope = f"/subscriptions/{server.admin['subscription']}/resourceGroups/{group}"
    admin.ok("role", "assignment", "create", "--assignee", sp["appId"], "--role", "Reader", "--scope", scope)
    assert bot.json(*ask) == admin.json(*ask)  # a role on one group is enough, as for listing clusters
    admin.ok("ad", "sp", "delete", "--id", sp["appId"])
