"""controller-manager: runs every agent's reconcile loop, restarts a failing one with jittered exponential backoff,
and keeps the health summary (``agentState`` and ``agentErrors``) that resource-sync reports."""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import Protocol

from halyard.agent.backoff import Backoff
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import AgentError
from halyard.core.clock import Clock

log = logging.getLogger("halyard.agent")


class Agent(Protocol):
    name: str

    async def reconcile(self) -> float:
        """Observe, compare with the desired state, act idempotently; seconds until the next reconcile."""
        ...


@dataclass
class _Status:
    healthy: bool = True  # until a reconcile fails: an agent still starting is not a failure
    error: AgentError | None = None
    backoff: Backoff = field(default_factory=Backoff)


class ControllerManager:
    name = "controller-manager"

    def __init__(self, agents: list[Agent], clock: Clock, metrics: AgentMetrics, *, backoff_cap: float = 120.0) -> None:
        self._agents = list(agents)
        self._clock = clock
        self._metrics = metrics
        self._backoff_cap = backoff_cap
        self._status = {a.name: _Status(backoff=Backoff(cap=backoff_cap, rng=random.Random())) for a in agents}
        self._warnings: dict[str, AgentError] = {}

    @property
    def names(self) -> list[str]:
        return [a.name for a in self._agents]

    def add(self, agent: Agent) -> None:
        """Supervise one more agent (before ``run``): lets an agent that reports health be built after the manager."""
        self._agents.append(agent)
        self._status[agent.name] = _Status(backoff=Backoff(cap=self._backoff_cap, rng=random.Random()))

    def warn(self, key: str, message: str | None) -> None:
        """Report (or, with None, withdraw) a condition worth the user's attention that is not a failure: it shows in
        ``agentErrors`` with severity ``Warning`` and leaves ``agentState`` alone."""
        if message is None:
            self._warnings.pop(key, None)
        elif key not in self._warnings or self._warnings[key].message != message:
            self._warnings[key] = AgentError(
                message=reportable(message), component=self.name, time=self._clock.now(), severity="Warning"
            )

    def health(self) -> tuple[str | None, list[AgentError]]:
        """``Succeeded`` when every agent's last reconcile worked, ``Failed`` otherwise, with the latest errors and
        the standing warnings (which never make the state ``Failed``)."""
        errors = [s.error for s in self._status.values() if s.error is not None]
        state = "Succeeded" if all(s.healthy for s in self._status.values()) else "Failed"
        return state, errors + list(self._warnings.values())

    async def health_report(self) -> tuple[str | None, list[AgentError]]:
        """:meth:`health`, as resource-sync's health source."""
        return self.health()

    async def run(self, stop: asyncio.Event) -> None:
        """Run every agent until ``stop`` is set."""
        tasks = [asyncio.create_task(self._supervise(agent, stop), name=agent.name) for agent in self._agents]
        try:
            await stop.wait()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _supervise(self, agent: Agent, stop: asyncio.Event) -> None:
        status = self._status[agent.name]
        while not stop.is_set():
            try:
                delay = await agent.reconcile()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # The server's own Retry-After (load shedding) is a floor under the jittered backoff.
                delay = max(status.backoff.next_delay(), getattr(exc, "retry_after", None) or 0.0)
                status.healthy = False
                status.error = AgentError(
                    message=_describe(exc), component=agent.name, time=self._clock.now(), severity="Error"
                )
                self._metrics.reconcile_errors.labels(agent=agent.name).inc()
                if status.backoff.failures > 1:
                    self._metrics.restarts.labels(agent=agent.name).inc()
                log.warning(
                    "reconcile failed",
                    extra={"agent": agent.name, "error": _describe(exc), "retry_in": round(delay, 2)},
                )
            else:
                if not status.healthy or status.backoff.failures:
                    log.info("reconcile succeeded", extra={"agent": agent.name})
                status.healthy = True
                status.error = None
                status.backoff.reset()
            try:
                await asyncio.wait_for(stop.wait(), timeout=delay)
            except TimeoutError:
                pass


def _describe(exc: BaseException) -> str:
    return reportable(str(exc) or type(exc).__name__)


def reportable(text: str) -> str:
    """``text`` as the heartbeat's bounds accept it (``api/agents.py``): at most 2,000 characters of valid text
    without NUL (an exception's text may hold anything, and the whole beat would be refused)."""
    return text.encode("utf-8", "replace").decode("utf-8").replace("\x00", "")[:2000]
