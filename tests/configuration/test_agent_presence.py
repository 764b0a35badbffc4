"""One rule for extensions and GitOps (``agentpresence.py``): a write on a cluster that has never run the agent that
would act on it is refused at once, naming the command that turns the agent on; the agent's first poll, or a
heartbeat declaring it, lets writes through (the waiting for a silent agent: ``test_extension_deadline.py``).

The real server as a process, each cluster with a real agent token."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
CONFIG = "Microsoft.KubernetesConfiguration"
EXTENSION = ("extensions", {"api-version": "2025-03-01"}, {"properties": {"extensionType": "microsoft.flux"}})
FLUX = (
    "fluxConfigurations",
    {"api-version": "2025-04-01"},
    {"properties": {"gitRepository": {"url": "https://127.0.0.1:9/r.git", "repositoryRef": {"branch": "main"}},
                    "kustomizations": {"k": {"path": "k"}}}},
)  # fmt: skip
SOURCE_CONTROL = (
    "sourceControlConfigurations",
    {"api-version": "2023-05-01"},
    {"properties": {"repositoryUrl": "https://127.0.0.1:9/r.git", "operatorParams": "--git-branch=main"}},
)


def put(server: ServerProcess, agent: Agent, kind: tuple[str, dict[str, str], dict[str, Any]], name: str) -> Any:
    type_name, api, body = kind
    with server.client() as c:
        return c.put(f"{agent.path}/providers/{CONFIG}/{type_name}/{name}", params=api, json=body)


def absent(server: ServerProcess, agent: Agent, kind: tuple[str, dict[str, str], dict[str, Any]], name: str) -> bool:
    type_name, api, _ = kind
    with server.client() as c:
        return bool(c.get(f"{agent.path}/providers/{CONFIG}/{type_name}/{name}", params=api).status_code == 404)


def poll(server: ServerProcess, agent: Agent, path: str) -> None:
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
        r = http.get(path, params={"wait": 0}, headers=agent.headers)
        assert r.status_code == 200, r.text


@pytest.mark.parametrize(
    ("kind", "command"),
    [
        (EXTENSION, "halyard connectedk8s enable-features -g {group} -n {name} --features extensions"),
        (FLUX, "halyard connectedk8s enable-features -g {group} -n {name} --features extensions"),
        (SOURCE_CONTROL, "halyard connectedk8s enable-features -g {group} -n {name} --features extensions"),
    ],
    ids=["extension", "fluxConfiguration", "sourceControlConfiguration"],
)
def test_a_write_on_a_cluster_that_never_ran_the_agent_is_refused_naming_the_command(
    server: ServerProcess, kind: tuple[str, dict[str, str], dict[str, Any]], command: str
) -> None:
    group, name = make_group(server), unique("np")
    agent = connect(server, group, name)  # onboarded, with a token, but no agent ever ran
    r = put(server, agent, kind, "c1")
    assert r.status_code == 409, r.text
    error = r.json()["error"]
    assert error["code"] == "AgentNotRunning", error
    assert f"halyard connectedk8s connect -g {group} -n {name}`" in error["message"], error["message"]
    # Connected, by agents that run none that acts on this kind (in-cluster without the feature): how to turn it on.
    beat(server, agent, [])
    r = put(server, agent, kind, "c1")
    assert r.status_code == 409 and r.json()["error"]["code"] == "AgentNotRunning", r.text
    assert command.format(group=group, name=name) in r.json()["error"]["message"], r.text
    assert absent(server, agent, kind, "c1"), "a refused write left a resource behind"


def test_each_agents_first_poll_lets_its_own_kind_through_and_only_that(server: ServerProcess) -> None:
    agent = connect(server, make_group(server), unique("pp"))
    poll(server, agent, "/dp/v1/configurations")  # extension-manager's first poll
    r = put(server, agent, EXTENSION, "e1")
    assert r.status_code == 201, r.text
    r = put(server, agent, FLUX, "f1")  # config-agent has not polled: still refused
    assert r.status_code == 409 and r.json()["error"]["code"] == "AgentNotRunning", r.text
    poll(server, agent, "/dp/v1/fluxConfigurations")
    r = put(server, agent, FLUX, "f1")
    assert r.status_code == 201, r.text


def test_a_heartbeat_declaring_the_agents_lets_writes_through_before_their_first_poll(server: ServerProcess) -> None:
    """Connected comes with the first beat; a write sent right after must not lose a race with the agents' polls.
    A beat naming anything else (here ``dp``, the heartbeats' own report) records nothing."""
    agent = connect(server, make_group(server), unique("hb"))
    beat(server, agent, ["extension-manager", "config-agent", "dp"])
    assert put(server, agent, EXTENSION, "e1").status_code == 201
    assert put(server, agent, FLUX, "f1").status_code == 201
    with server.client() as c:
        cluster = c.get(agent.path, params={"api-version": "2024-01-01"}).json()["properties"]
    assert cluster["connectivityStatus"] == "Connected" and cluster["agentVersion"] == "1.0.0", cluster


def beat(server: ServerProcess, agent: Agent, configuration_agents: list[str]) -> None:
    body = {"agentVersion": "1.0.0", "configurationAgents": configuration_agents}
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
        r = http.post("/dp/v1/heartbeat", json=body, headers=agent.headers)
        assert r.status_code == 200, r.text
