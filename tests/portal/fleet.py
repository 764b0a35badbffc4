"""Simulated clusters for the portal's tests: onboarded as identity-operator does (``agentcreds``), heartbeating to
``dp`` from a background thread, each of which can be told to fall silent."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import TypeVar

import httpx

from tests.api.agentcreds import Agent, connect
from tests.support.processes import ServerProcess

T = TypeVar("T")


def apart(fn: Callable[..., T], *args: object) -> T:
    """``fn(*args)`` in a thread of its own: Playwright's sync API keeps an event loop running in the test's thread,
    and the agents' code (``asyncio.run``) needs one of its own."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args).result()


def onboard(server: ServerProcess, group: str, name: str) -> Agent:
    return apart(connect, server, group, name)


BEAT = {"agentVersion": "1.4.0", "kubernetesVersion": "v1.31.2", "totalNodeCount": 3, "totalCoreCount": 12,
        "distribution": "k3s", "infrastructure": "generic", "agentState": "Succeeded",
        "agentErrors": [{"message": "renewal in 3 days", "severity": "Warning", "component": "identity-operator",
                         "time": "2026-12-06T00:00:00Z"}]}  # fmt: skip


def beat(server: ServerProcess, agent: Agent) -> None:
    r = httpx.post(f"{server.url}/dp/v1/heartbeat", json=BEAT, headers=agent.headers, verify=server.ca, timeout=10)
    assert r.status_code == 200, r.text


@contextmanager
def heartbeating(server: ServerProcess, agents: dict[str, Agent], every: float = 1.0) -> Iterator[set[str]]:
    """Beats every agent now and then every ``every`` seconds until the block ends; names added to the yielded set
    fall silent (and so go Offline)."""
    silent: set[str] = set()
    stop = threading.Event()
    for agent in agents.values():
        beat(server, agent)

    def run() -> None:
        while not stop.wait(every):
            for name, agent in agents.items():
                if name not in silent:
                    beat(server, agent)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield silent
    finally:
        stop.set()
        thread.join(10)
