"""Published extension types: a Helm chart per version on release trains, served to agents only; a new version on
a train an extension follows wakes its cluster's poll with the new target version (auto-upgrade)."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import READER, make_group, make_principal, unique
from tests.configuration.charts import tiny_chart, tiny_chart_b64
from tests.configuration.test_extensions_delivery import EXT_API, ext_path, poll, wait_succeeded
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
TYPES = "/providers/Halyard.Extensions/extensionTypes"
TYPES_API = {"api-version": "2026-01-01"}


def publish(c: httpx.Client, name: str, version: str, trains: list[str] | None = None) -> httpx.Response:
    body: dict[str, Any] = {"chart": tiny_chart_b64(version)}
    if trains:
        body["releaseTrains"] = trains
    return c.put(f"{TYPES}/{name}/versions/{version}", params=TYPES_API, json=body)


@pytest.fixture(scope="module")
def agent(server: ServerProcess) -> Agent:
    return connect(server, make_group(server), unique("cc"), agents_started=True)


def test_publish_list_and_fetch_a_chart(server: ServerProcess, agent: Agent) -> None:
    name = f"contoso.hello{uuid.uuid4().hex[:6]}"
    with server.client() as c:
        assert publish(c, name, "1.0.0").status_code == 200
        assert publish(c, name, "1.1.0-rc.1", ["preview"]).status_code == 200
        listed = {t["name"]: t for t in c.get(TYPES, params=TYPES_API).json()["value"]}
        assert listed[name]["properties"]["releaseTrains"] == {"stable": ["1.0.0"], "preview": ["1.1.0-rc.1"]}
        assert "microsoft.flux" in listed
        # Bad publications: refused, clearly.
        for body, code in [
            ({"chart": "not base64!"}, "InvalidChart"),
            ({"chart": "aGVsbG8="}, "InvalidChart"),
        ]:
            r = c.put(f"{TYPES}/{name}/versions/2.0.0", params=TYPES_API, json=body)
            assert r.status_code == 400 and r.json()["error"]["code"] == code, r.text
        r = publish(c, name, "not-semver")
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidVersion"
        r = publish(c, "microsoft.flux", "9.9.9")
        assert r.status_code == 400 and r.json()["error"]["code"] == "ExtensionTypeIsBuiltIn"
    reader = make_principal(server, READER, "")
    with server.client(server.token(reader.app_id, reader.secret)) as c:
        assert c.get(TYPES, params=TYPES_API).status_code == 200
        assert publish(c, name, "3.0.0").status_code == 403
    chart_url = f"/dp/v1/extensionTypes/{name}/versions/1.0.0/chart"
    with httpx.Client(base_url=server.url, verify=server.ca) as http:
        r = http.get(chart_url, headers=agent.headers)
        assert r.status_code == 200 and r.content == tiny_chart("1.0.0")
        assert http.get(chart_url).status_code == 401
        with server.client() as admin:  # a user's token is no agent token
            assert http.get(chart_url, headers={"Authorization": admin.headers["Authorization"]}).status_code == 401
        assert http.get(chart_url.replace("1.0.0", "7.7.7"), headers=agent.headers).status_code == 404


def test_a_new_version_on_the_train_wakes_the_poll_with_it(server: ServerProcess, agent: Agent) -> None:
    name = f"contoso.auto{uuid.uuid4().hex[:6]}"
    with server.client() as c:
        assert publish(c, name, "1.0.0").status_code == 200
        body = {"properties": {"extensionType": name, "releaseTrain": "stable"}}
        wait_succeeded(c, c.put(ext_path(agent, "auto"), params=EXT_API, json=body), server, agent)
        pinned = {"properties": {"extensionType": name, "autoUpgradeMinorVersion": False, "version": "1.0.0"}}
        wait_succeeded(c, c.put(ext_path(agent, "pinned"), params=EXT_API, json=pinned), server, agent)
    first = poll(server, agent).json()
    versions = {e["name"]: e for e in first["extensions"]}
    assert versions["auto"]["version"] == "1.0.0"
    assert versions["auto"]["chart"] == f"/dp/v1/extensionTypes/{name}/versions/1.0.0/chart"
    answered: dict[str, Any] = {}

    def long_poll() -> None:
        start = time.monotonic()
        answered.update(body=poll(server, agent, since=first["version"], wait=25).json(), took=time.monotonic() - start)

    waiter = threading.Thread(target=long_poll)
    waiter.start()
    time.sleep(0.3)
    with server.client() as c:
        assert publish(c, name, "1.2.0").status_code == 200
    waiter.join(30)
    assert answered["took"] < 25, "publishing did not wake the poll"
    versions = {e["name"]: e for e in answered["body"]["extensions"]}
    assert versions["auto"]["version"] == "1.2.0"
    assert versions["pinned"]["version"] == "1.0.0"
