"""``connectedk8s upgrade`` asks the server which agent versions it offers before anything else, and the route it
asks (``GET …/providers/Microsoft.Kubernetes/agentVersions``)."""

from __future__ import annotations

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
