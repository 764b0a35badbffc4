"""Extensions under a connected cluster and their delivery to its agents (issue 15, first slice).

The real server as a process: an extension PUT wakes the cluster's long poll on ``/dp/v1/configurations``; the
agent's report reaches the resource; protected settings reach the cluster's own agents and no one else.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
import pytest

from halyard.api.extensions import entry_digest
from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
EXT_API = {"api-version": "2025-03-01"}
POLL = "/dp/v1/configurations"
SECRET = "s3cr3t-never-rendered"


def ext_path(agent: Agent, name: str) -> str:
    return f"{agent.path}/providers/Microsoft.KubernetesConfiguration/extensions/{name}"


def poll(server: ServerProcess, agent: Agent, since: str | None = None, wait: float = 0) -> httpx.Response:
    params: dict[str, Any] = {"wait": wait}
    if since is not None:
        params["since"] = since
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=60) as http:
        return http.get(POLL, params=params, headers=agent.headers)


def report(server: ServerProcess, agent: Agent, extensions: dict[str, dict[str, Any]]) -> None:
    with httpx.Client(base_url=server.url, verify=server.ca) as http:
        r = http.post("/dp/v1/configurations/reports", json={"extensions": extensions}, headers=agent.headers)
        assert r.status_code == 204, r.text


def play_extension_manager(server: ServerProcess, agent: Agent, gone: tuple[str, ...] = ()) -> None:
    """Do what extension-manager reports after converging: every desired extension installed (the digest of the
    entry it was given), the ``gone`` ones uninstalled. The tests that need no helm play the cluster this way."""
    desired = poll(server, agent).json()["extensions"]
    done: dict[str, dict[str, Any]] = {
        e["name"]: {"installState": "Installed", "currentVersion": e["version"], "digest": entry_digest(e)}
        for e in desired
    }
    done.update({name: {"installState": "Uninstalled"} for name in gone})
    report(server, agent, done)


def wait_succeeded(
    c: httpx.Client, r: httpx.Response, server: ServerProcess | None = None, agent: Agent | None = None
) -> dict[str, Any]:
    """Follow an operation to Succeeded; with an agent, play its cluster reporting the extensions installed (or,
    for a DELETE, the one named uninstalled)."""
    assert r.status_code in (200, 201, 202), r.text
    url = r.headers["Azure-AsyncOperation"]
    gone = (r.request.url.path.rsplit("/", 1)[1],) if r.request.method == "DELETE" else ()
    for _ in range(400):
        body: dict[str, Any] = c.get(url).json()
        if body["status"] not in ("InProgress", "Accepted", "Running"):
            assert body["status"] == "Succeeded", body
            return body
        if server is not None and agent is not None:
            play_extension_manager(server, agent, gone)
        time.sleep(0.02)
    raise AssertionError("the operation did not finish")


@pytest.fixture(scope="module")
def two_clusters(server: ServerProcess) -> tuple[Agent, Agent]:
    group = make_group(server)
    return connect(server, group, unique("cc"), agents_started=True), connect(
        server, group, unique("cc"), agents_started=True
    )


def test_a_put_wakes_the_long_poll_with_the_extension_and_its_protected_settings(
    server: ServerProcess, two_clusters: tuple[Agent, Agent]
) -> None:
    agent, other = two_clusters
    first = poll(server, agent)
    assert first.status_code == 200, first.text
    since = first.json()["version"]
    answered: dict[str, Any] = {}

    def long_poll() -> None:
        start = time.monotonic()
        r = poll(server, agent, since=since, wait=25)
        answered.update(status=r.status_code, body=r.json(), took=time.monotonic() - start)

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.3)  # the poll is waiting
    assert not answered, "the poll answered although nothing changed"
    body = {
        "properties": {
            "extensionType": "microsoft.flux",
            "releaseTrain": "Stable",
            "configurationSettings": {"replicas": "2"},
            "configurationProtectedSettings": {"token": SECRET},
        }
    }
    with server.client() as c:
        r = c.put(ext_path(agent, "flux"), params=EXT_API, json=body)
        assert SECRET not in r.text
        wait_succeeded(c, r, server, agent)
    waiter.join(30)
    assert answered["status"] == 200
    assert answered["took"] < 25, "the poll was not woken by the write: it ran out its hold"
    delivered = answered["body"]
    assert delivered["version"] != since
    [ext] = delivered["extensions"]
    assert ext["name"] == "flux" and ext["version"] == "1.14.0"  # the newest on the stable train
    assert ext["configurationSettings"] == {"replicas": "2"}
    assert ext["configurationProtectedSettings"] == {"token": SECRET}
    assert ext["scope"] == {"cluster": {"releaseNamespace": "flux-system"}}
    # Another cluster's agents see nothing of it.
    assert SECRET not in poll(server, other).text
    assert poll(server, other).json()["extensions"] == []
    # And an unchanged configuration keeps its version.
    assert poll(server, agent).json()["version"] == delivered["version"]


def test_protected_settings_never_leave_through_arm_and_reports_reach_the_resource(
    server: ServerProcess, two_clusters: tuple[Agent, Agent]
) -> None:
    agent, _ = two_clusters
    path = ext_path(agent, "reported")
    body = {
        "properties": {
            "extensionType": "microsoft.flux",
            "autoUpgradeMinorVersion": False,
            "version": "1.13.0",
            "configurationProtectedSettings": {"password": SECRET},
        }
    }
    with server.client() as c:
        wait_succeeded(c, c.put(path, params=EXT_API, json=body), server, agent)
        got = c.get(path, params=EXT_API)
        listed = c.get(path.rsplit("/", 1)[0], params=EXT_API)
        patched = c.patch(path, params=EXT_API, json={"properties": {"configurationSettings": {"x": "1"}}})
        for r in (got, listed, patched):
            assert r.status_code in (200, 202), r.text
            assert SECRET not in r.text and "configurationProtectedSettings" not in r.text
        if patched.status_code == 202:
            wait_succeeded(c, patched, server, agent)
        # The PATCH kept the protected settings it did not name.
        [ext] = [e for e in poll(server, agent).json()["extensions"] if e["name"] == "reported"]
        assert ext["configurationProtectedSettings"] == {"password": SECRET} and ext["version"] == "1.13.0"

        report = {
            "extensions": {
                "reported": {
                    "currentVersion": "1.13.0",
                    "installState": "Installed",
                    "statuses": [{"code": "InstallSucceeded", "level": "Information", "message": "deployed"}],
                },
                "not-mine": {"currentVersion": "9"},
            }
        }
        with httpx.Client(base_url=server.url, verify=server.ca) as http:
            r = http.post("/dp/v1/configurations/reports", json=report, headers=agent.headers)
            assert r.status_code == 204, r.text
            assert http.post("/dp/v1/configurations/reports", json=report).status_code == 401
        props = c.get(path, params=EXT_API).json()["properties"]
        assert props["currentVersion"] == "1.13.0" and props["installState"] == "Installed"
        assert props["statuses"][0]["code"] == "InstallSucceeded"
        assert c.get(ext_path(agent, "not-mine"), params=EXT_API).status_code == 404


def test_an_operation_follows_what_the_cluster_reports_of_this_generation(
    server: ServerProcess, two_clusters: tuple[Agent, Agent]
) -> None:
    """Create waits for the install of this generation; a report of an older one does not end it; a failure ends
    it Failed with the agent's words, and a later failure shows on a Succeeded extension; delete waits for the
    uninstall, force delete does not."""
    agent, _ = two_clusters
    path = ext_path(agent, "gen")
    body = {"properties": {"extensionType": "microsoft.flux", "configurationSettings": {"n": "1"}}}
    with server.client() as c:
        first = c.put(path, params=EXT_API, json=body)
        assert first.status_code == 201, first.text
        [old] = [e for e in poll(server, agent).json()["extensions"] if e["name"] == "gen"]
        time.sleep(0.5)
        assert c.get(first.headers["Azure-AsyncOperation"]).json()["status"] == "InProgress"
        assert c.get(path, params=EXT_API).json()["properties"]["provisioningState"] == "Provisioning"
        wait_succeeded(c, first, server, agent)

        body["properties"]["configurationSettings"] = {"n": "2"}
        second = c.put(path, params=EXT_API, json=body)
        report(server, agent, {"gen": {"installState": "Installed", "digest": entry_digest(old)}})  # too old
        time.sleep(0.5)
        assert c.get(second.headers["Azure-AsyncOperation"]).json()["status"] == "InProgress"
        [new] = [e for e in poll(server, agent).json()["extensions"] if e["name"] == "gen"]
        failed = {"code": "InstallFailed", "level": "Error", "message": "helm: image pull back-off"}
        report(server, agent, {"gen": {"installState": "Failed", "digest": entry_digest(new), "statuses": [failed]}})
        status = _finished(c, second.headers["Azure-AsyncOperation"])
        assert status["status"] == "Failed" and "image pull back-off" in status["error"]["message"], status
        assert c.get(path, params=EXT_API).json()["properties"]["provisioningState"] == "Failed"

        wait_succeeded(c, c.put(path, params=EXT_API, json=body), server, agent)  # no change: already installed
        report(server, agent, {"gen": {"installState": "Failed", "digest": entry_digest(new), "statuses": [failed]}})
        assert c.get(path, params=EXT_API).json()["properties"]["provisioningState"] == "Failed"  # reported later

        deleting = c.delete(path, params=EXT_API)
        assert deleting.status_code == 202
        time.sleep(0.5)
        assert c.get(deleting.headers["Azure-AsyncOperation"]).json()["status"] == "InProgress"
        assert all(e["name"] != "gen" for e in poll(server, agent).json()["extensions"])  # not desired any more
        assert c.get(path, params=EXT_API).json()["properties"]["provisioningState"] == "Deleting"
        wait_succeeded(c, deleting, server, agent)
        assert c.get(path, params=EXT_API).status_code == 404

        stuck = ext_path(agent, "stuck")
        r = c.put(stuck, params=EXT_API, json=body)
        wait_succeeded(c, r, server, agent)
        forced = c.delete(stuck, params={**EXT_API, "forceDelete": "true"})
        wait_succeeded(c, forced)  # nobody reports: forced
        assert c.get(stuck, params=EXT_API).status_code == 404


def _finished(c: httpx.Client, url: str) -> dict[str, Any]:
    for _ in range(400):
        body: dict[str, Any] = c.get(url).json()
        if body["status"] != "InProgress":
            return body
        time.sleep(0.02)
    raise AssertionError("the operation did not finish")


@pytest.mark.parametrize(
    ("properties", "code"),
    [
        ({"extensionType": "contoso.nothing"}, "ExtensionTypeNotFound"),
        ({"extensionType": "microsoft.flux", "version": "1.13.0"}, "InvalidVersionPinning"),
        ({"extensionType": "microsoft.flux", "autoUpgradeMinorVersion": False}, "InvalidVersionPinning"),
        (
            {"extensionType": "microsoft.flux", "autoUpgradeMinorVersion": False, "version": "0.0.1"},
            "ExtensionVersionNotFound",
        ),
        (
            {
                "extensionType": "microsoft.flux",
                "autoUpgradeMinorVersion": False,
                "version": "1.13.0",
                "releaseTrain": "stable",
            },
            "InvalidReleaseTrain",
        ),
        ({"extensionType": "microsoft.flux", "releaseTrain": "nightly"}, "InvalidReleaseTrain"),
        ({"extensionType": "microsoft.flux", "scope": {"namespace": {"targetNamespace": "x"}}}, "InvalidScope"),
    ],
)
def test_bad_extensions_are_refused_with_a_clear_error_and_nothing_created(
    server: ServerProcess, two_clusters: tuple[Agent, Agent], properties: dict[str, Any], code: str
) -> None:
    agent, _ = two_clusters
    path = ext_path(agent, "bad")
    with server.client() as c:
        r = c.put(path, params=EXT_API, json={"properties": properties})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code, r.text
        assert c.get(path, params=EXT_API).status_code == 404


def test_waiters_per_cluster_are_bounded(server: ServerProcess, two_clusters: tuple[Agent, Agent]) -> None:
    _, agent = two_clusters
    since = poll(server, agent).json()["version"]
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(poll(server, agent, since, 3).status_code)) for _ in range(6)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [200, 200, 200, 200, 429, 429]


def test_an_agent_that_goes_frees_its_waiter(server: ServerProcess, two_clusters: tuple[Agent, Agent]) -> None:
    agent, _ = two_clusters
    since = poll(server, agent).json()["version"]
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=0.5) as http:
        for _ in range(4):  # every waiter place taken, each by an agent that hangs up after half a second
            with pytest.raises(httpx.ReadTimeout):
                http.get(POLL, params={"since": since, "wait": 20}, headers=agent.headers)
    time.sleep(0.3)
    results: list[int] = []
    threads = [
        threading.Thread(target=lambda: results.append(poll(server, agent, since, 1).status_code)) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert results == [200] * 4, "the agents that went still hold their places"
