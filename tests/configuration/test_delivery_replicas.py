"""Delivery across replicas: an extension written through one replica wakes an agent's long poll on another
(PostgreSQL NOTIFY sent inside the writing transaction)."""

from __future__ import annotations

import shutil
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.agentcreds import connect
from tests.api.helpers import make_group
from tests.configuration.test_extensions_delivery import EXT_API, SECRET, ext_path, poll, wait_succeeded
from tests.storage.replicas import replicas_of
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]


def test_a_write_on_one_replica_wakes_a_poll_on_another(postgres_server: PostgresServer, tmp_path: Path) -> None:
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    a, b = replicas_of(url, tmp_path, 2)
    try:
        a.start(60)
        shutil.copy(a.data_dir / "admin.json", b.data_dir / "admin.json")  # only the first replica bootstraps
        b.start(60)
        agent = connect(a, make_group(a), "cc")
        since = poll(b, agent).json()["version"]
        answered: dict[str, Any] = {}

        def long_poll() -> None:
            start = time.monotonic()
            r = poll(b, agent, since=since, wait=25)
            answered.update(status=r.status_code, body=r.json(), took=time.monotonic() - start)

        waiter = threading.Thread(target=long_poll)
        waiter.start()
        time.sleep(0.3)
        body = {"properties": {"extensionType": "microsoft.flux", "configurationProtectedSettings": {"k": SECRET}}}
        with a.client() as c:
            wait_succeeded(c, c.put(ext_path(agent, "flux"), params=EXT_API, json=body), a, agent)
        waiter.join(30)
        assert answered["status"] == 200
        assert answered["took"] < 25, "replica b's poll was not woken by replica a's write"
        [ext] = answered["body"]["extensions"]
        assert ext["configurationProtectedSettings"] == {"k": SECRET}

        # A deletion on b wakes a poll on a.
        since = answered["body"]["version"]
        answered.clear()

        def long_poll_a() -> None:
            start = time.monotonic()
            r = poll(a, agent, since=since, wait=25)
            answered.update(status=r.status_code, body=r.json(), took=time.monotonic() - start)

        waiter = threading.Thread(target=long_poll_a)
        waiter.start()
        time.sleep(0.3)
        with b.client() as c:
            r = c.delete(ext_path(agent, "flux"), params=EXT_API)
            assert r.status_code in (200, 202, 204), r.text
        waiter.join(30)
        assert answered["took"] < 25 and answered["body"]["extensions"] == []

        # b remembers the version it read; a write on a makes it forget (NOTIFY), so a renewal on b at that version
        # is answered with the new configuration, never 304 from b's memory.
        remembered = poll(b, agent).json()["version"]
        with a.client() as c:
            wait_succeeded(c, c.put(ext_path(agent, "again"), params=EXT_API, json=body), a, agent)
        with httpx.Client(base_url=b.url, verify=b.ca, timeout=30) as http:
            r = http.get(
                "/dp/v1/configurations",
                params={"since": remembered, "wait": 3},
                headers={**agent.headers, "If-None-Match": f'"{remembered}"'},
            )
        assert r.status_code == 200, r.text
        assert [e["name"] for e in r.json()["extensions"]] == ["again"]
    finally:
        b.stop()
        a.stop()
