"""Flux configurations reach their cluster's config-agent through the long poll (decision 009, docs/gitops.md):
a PUT wakes ``/dp/v1/fluxConfigurations`` with the configuration and its protected settings, for that cluster only;
extension-manager's poll (``/dp/v1/configurations``) is not woken by it."""

from __future__ import annotations

import base64
import threading
import time
from typing import Any

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
KEY = base64.b64encode(b"delivered-only-to-its-cluster").decode()


def poll(server: ServerProcess, agent: Agent, path: str, since: str | None = None, wait: float = 0) -> httpx.Response:
    params: dict[str, Any] = {"wait": wait, **({"since": since} if since else {})}
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=60) as http:
        return http.get(path, params=params, headers=agent.headers)


def test_a_put_wakes_config_agents_poll_and_not_extension_managers(server: ServerProcess) -> None:
    group = make_group(server)
    agent, other = (
        connect(server, group, unique("fd"), agents_started=True),
        connect(server, group, unique("fd"), agents_started=True),
    )
    flux_since = poll(server, agent, "/dp/v1/fluxConfigurations").json()["version"]
    ext_since = poll(server, agent, "/dp/v1/configurations").json()["version"]
    answered: dict[str, Any] = {}

    def wait_for(key: str, path: str, since: str) -> None:
        start = time.monotonic()
        r = poll(server, agent, path, since=since, wait=6)
        answered[key] = (r.json(), time.monotonic() - start)

    waiters = [threading.Thread(target=wait_for, args=("flux", "/dp/v1/fluxConfigurations", flux_since)),
               threading.Thread(target=wait_for, args=("ext", "/dp/v1/configurations", ext_since))]  # fmt: skip
    for w in waiters:
        w.start()
    time.sleep(0.3)
    body = {"properties": {"gitRepository": {"url": "ssh://git@git.example/r.git", "repositoryRef": {"tag": "v1"}},
                           "kustomizations": {"k": {"path": "k"}},
                           "configurationProtectedSettings": {"sshPrivateKey": KEY}}}  # fmt: skip
    with server.client() as c:
        r = c.put(f"{agent.path}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/d1",
                  params={"api-version": "2025-04-01"}, json=body)  # fmt: skip
        assert r.status_code == 201, r.text
    for w in waiters:
        w.join(10)
    desired, took = answered["flux"]
    assert took < 5, "the flux poll was not woken by the PUT"  # woken, not at the end of its 6 s hold
    [entry] = desired["fluxConfigurations"]
    assert entry["configurationProtectedSettings"] == {"sshPrivateKey": KEY} and entry["deleting"] is False
    assert [k["objectName"] for k in entry["kustomizations"]] == ["d1-k"]
    ext, ext_took = answered["ext"]
    assert ext["version"] == ext_since and ext_took >= 5.5  # extension-manager's poll held its whole 6 s
    assert poll(server, other, "/dp/v1/fluxConfigurations").json()["fluxConfigurations"] == []
