"""A server shutting down answers its agents' long polls at once instead of holding its graceful shutdown for them
(an idle poll is held up to 5 min; `make up`'s Ctrl-C once waited 23 s for one): without reading anything, 304 to an
agent that said If-None-Match, and the configuration to one that did not (agents from before 304s)."""

from __future__ import annotations

import signal
import threading
import time

import httpx
import pytest

from tests.api.agentcreds import connect
from tests.api.helpers import make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def test_a_waiting_long_poll_is_answered_when_the_server_stops(fresh_server: ServerProcess) -> None:
    fresh_server.start()
    agent = connect(fresh_server, make_group(fresh_server), unique("cc"))
    with httpx.Client(base_url=fresh_server.url, verify=fresh_server.ca, timeout=60) as http:
        first = http.get("/dp/v1/configurations", headers=agent.headers).json()
    answers: list[int] = []

    def poll(etag: bool) -> None:
        headers = {**agent.headers, **({"If-None-Match": f'"{first["version"]}"'} if etag else {})}
        with httpx.Client(base_url=fresh_server.url, verify=fresh_server.ca, timeout=60) as http:
            r = http.get("/dp/v1/configurations", params={"since": first["version"], "wait": 300}, headers=headers)
            answers.append(r.status_code)

    pollers = [threading.Thread(target=poll, args=(etag,)) for etag in (True, False)]
    for poller in pollers:
        poller.start()
    time.sleep(1.0)  # the polls are waiting
    started = time.monotonic()
    fresh_server.stop(signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    stopped = time.monotonic() - started
    for poller in pollers:
        poller.join(5)
    assert sorted(answers) == [200, 304] and stopped < 10, (answers, stopped)
