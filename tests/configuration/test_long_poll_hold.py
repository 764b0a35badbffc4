"""A long poll held for minutes costs the server nothing but the connection (decision 009): a renewal at the
version the server already knows reads nothing and ends ``304 Not Modified``; a change still wakes it at once; a
deleted cluster's poll ends 401 at once. The server's own settings are short here; nothing waits out a real hold.

The shutdown side (every held poll answered at once): ``test_shutdown_drain.py``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group, unique
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e
POLL = "/dp/v1/configurations"
EXT_API = {"api-version": "2025-03-01"}
BOUND = 20  # the server's long_poll_seconds here: longer than any test waits, far below the default 300


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    data: Path = tmp_path_factory.mktemp("longpoll") / "data"
    proc = ServerProcess(data, free_port(), env={"HALYARD_LONG_POLL_SECONDS": str(BOUND)}).start()
    yield proc
    proc.stop()


def counters(server: ServerProcess) -> dict[str, float]:
    with server.client() as c:
        text = c.get("/metrics").text
    wanted = {
        "halyard_configuration_reads_total",
        "halyard_configuration_unread_total",
        "halyard_configuration_polls_waiting",
    }
    found = {}
    for line in text.splitlines():
        name, _, value = line.partition(" ")
        if name in wanted:
            found[name.removeprefix("halyard_configuration_")] = float(value)
    return found


def poll(
    server: ServerProcess, agent: Agent, since: str | None = None, wait: float = 0, *, etag: bool = True
) -> httpx.Response:
    params: dict[str, Any] = {"wait": wait}
    headers = dict(agent.headers)
    if since is not None:
        params["since"] = since
        if etag:
            headers["If-None-Match"] = f'"{since}"'
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=BOUND + 30) as http:
        return http.get(POLL, params=params, headers=headers)


def held(server: ServerProcess, agent: Agent, since: str, wait: float) -> tuple[threading.Thread, dict[str, Any]]:
    """A poll held in a thread; its answer (status, body, seconds taken) in the dict once it returns."""
    answered: dict[str, Any] = {}

    def run() -> None:
        started = time.monotonic()
        r = poll(server, agent, since, wait)
        answered.update(status=r.status_code, text=r.text, etag=r.headers.get("etag"), took=time.monotonic() - started)

    thread = threading.Thread(target=run)
    thread.start()
    for _ in range(100):  # until the server holds it
        if counters(server).get("polls_waiting", 0) >= 1:
            break
        time.sleep(0.05)
    return thread, answered


def test_a_renewal_at_the_known_version_reads_nothing_and_ends_not_modified(server: ServerProcess) -> None:
    agent = connect(server, make_group(server), unique("cc"), agents_started=True)
    first = poll(server, agent)
    assert first.status_code == 200 and first.headers["etag"] == f'"{first.json()["version"]}"'
    version = first.json()["version"]
    before = counters(server)
    renewed = poll(server, agent, version, wait=0.5)
    after = counters(server)
    assert renewed.status_code == 304 and renewed.content == b"", renewed.text
    assert renewed.headers["etag"] == f'"{version}"'
    assert after["reads_total"] == before["reads_total"], "an unchanged renewal read the desired state"
    assert after["unread_total"] > before["unread_total"]
    # An agent that does not say If-None-Match (one from before 304s) gets the whole configuration, as it expects.
    old_style = poll(server, agent, version, wait=0.5, etag=False)
    assert old_style.status_code == 200 and old_style.json()["version"] == version


def test_a_write_wakes_a_renewed_poll_at_once(server: ServerProcess) -> None:
    agent = connect(server, make_group(server), unique("cc"), agents_started=True)
    version = poll(server, agent).json()["version"]
    thread, answered = held(server, agent, version, wait=BOUND)
    body = {"properties": {"extensionType": "microsoft.flux", "configurationSettings": {"round": "1"}}}
    with server.client() as c:
        r = c.put(
            f"{agent.path}/providers/Microsoft.KubernetesConfiguration/extensions/flux", params=EXT_API, json=body
        )
        assert r.status_code in (200, 201), r.text
    thread.join(BOUND + 30)
    assert answered["status"] == 200, answered
    assert answered["took"] < BOUND * 0.9, "the poll ran out its hold: the write did not wake it"
    [entry] = httpx.Response(200, text=answered["text"]).json()["extensions"]
    assert entry["configurationSettings"] == {"round": "1"}
    assert answered["etag"] != f'"{version}"'


def test_a_deleted_clusters_poll_ends_unauthenticated_at_once(server: ServerProcess) -> None:
    agent = connect(server, make_group(server), unique("cc"), agents_started=True)
    version = poll(server, agent).json()["version"]
    # Asking for an hour is not an error: the server holds at most its own bound.
    thread, answered = held(server, agent, version, wait=3600)
    with server.client() as c:
        r = c.delete(agent.path, params={"api-version": "2026-05-01"})
        assert r.status_code in (200, 202, 204), r.text
    thread.join(BOUND + 30)
    assert answered["status"] == 401, answered
    assert "ClusterIdentityRevoked" in answered["text"]
    assert answered["took"] < BOUND * 0.9, "the poll ran out its hold: the deletion did not end it"
