"""A server shutting down answers its agents' long polls at once instead of holding its graceful shutdown for them
(an idle poll holds up to 30 s; `make up`'s Ctrl-C waited 23 s for one)."""

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

    def poll() -> None:
        with httpx.Client(base_url=fresh_server.url, verify=fresh_server.ca, timeout=60) as http:
            r = http.get("/dp/v1/configurations", params={"since": first["version"], "wait": 30}, headers=agent.headers)
            answers.append(r.status_code)

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(1.0)  # the poll is waiting
    started = time.monotonic()
    fresh_server.stop(signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down
    stopped = time.monotonic() - started
    poller.join(5)
    assert answers == [200] and stopped < 10, (answers, stopped)
