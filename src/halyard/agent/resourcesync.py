"""resource-sync: the heartbeat. Sends the cluster's picture to ``dp`` on an interval, which is what keeps the
connected cluster ``Connected``.

Where the token, the picture and the health come from is a seam: in one process (local mode) straight from the
identity operator, the metadata operator and the controller manager; in-cluster from what they publish
(``handoff.py``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx

from halyard import __version__
from halyard.agent.controlplane import ControlPlaneError, send
from halyard.agent.endpoints import LiveEndpoints
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import (
    DP_HEARTBEAT_PATH,
    ENDPOINTS_INFO,
    AgentError,
    Heartbeat,
    HeartbeatReply,
    ServiceEndpoints,
)
from halyard.api.diagnostics import cut
from halyard.core.clock import Clock, SystemClock
from halyard.kube.facts import ClusterFacts

log = logging.getLogger("halyard.agent")
READY_WAIT = 30.0
# The first beat waits this long for the cluster's metadata, so the resource shows it from the start.
METADATA_WAIT = 5.0


class TokenSource(Protocol):
    async def token(self) -> str: ...

    def forget_token(self) -> None: ...

    async def wait_ready(self, timeout: float) -> None:
        """Return once a token can be had; raise if not within ``timeout``."""
        ...


class FactsSource(Protocol):
    async def facts(self, timeout: float) -> ClusterFacts | None:
        """The latest picture of the cluster, waiting up to ``timeout`` for a first one; None if there is none."""
        ...


Health = Callable[[], Awaitable[tuple[str | None, list[AgentError]]]]
# Hands the control plane's targetAgentVersion on to the controller manager (in-cluster: through a ConfigMap).
TargetSink = Callable[[str | None], Awaitable[None]]
# In-cluster: hands a new endpoint map on to the other agents' pods (local mode: they share ``LiveEndpoints``).
EndpointsSink = Callable[[ServiceEndpoints], Awaitable[None]]
_UNSHARED = object()


class ResourceSync:
    name = "resource-sync"

    def __init__(
        self,
        http: httpx.AsyncClient,
        endpoints: LiveEndpoints,
        tokens: TokenSource,
        facts: FactsSource,
        metrics: AgentMetrics,
        *,
        health: Health,
        interval: float | None = None,
        share_target: TargetSink | None = None,
        features: frozenset[str] = frozenset(),
        share_endpoints: EndpointsSink | None = None,
        configuration_agents: frozenset[str] = frozenset(),
        clock: Clock | None = None,
    ) -> None:
        self._http = http
        self.endpoints = endpoints  # where this and every other agent of the process dial (private link moves it)
        self._tokens = tokens
        self._facts = facts
        self._metrics = metrics
        self._health = health
        self._interval = interval
        self._beats = 0
        self._share_target = share_target
        self._features = sorted(features)
        self._configuration_agents = sorted(configuration_agents)
        self._shared: object = _UNSHARED
        self.last_reply: HeartbeatReply | None = None
        self._share_endpoints = share_endpoints
        self._shared_endpoints: str | None = None  # the version of the map last handed on
        self._clock = clock or SystemClock()
        # The beat's outcome, for the agents' diagnostics (agent/diagnostics.py): the last beat taken, and the error
        # of the latest one while beats fail (None once one works again).
        self.last_beat: dt.datetime | None = None
        self.beat_error: str | None = None
        self.beat_error_at: dt.datetime | None = None

    async def reconcile(self) -> float:
        try:
            delay = await self._reconcile()
        except Exception as exc:
            self.beat_error, self.beat_error_at = cut(str(exc) or type(exc).__name__), self._clock.now()
            raise
        self.last_beat, self.beat_error, self.beat_error_at = self._clock.now(), None, None
        return delay

    async def _reconcile(self) -> float:
        await self._tokens.wait_ready(READY_WAIT)
        try:
            reply = await self._beat()
        except ControlPlaneError as exc:
            if not self._may_retry(exc):
                self._metrics.heartbeats_failed.inc()
                raise
            try:
                reply = await self._beat()
            except ControlPlaneError:
                self._metrics.heartbeats_failed.inc()
                raise
        self._metrics.heartbeats_sent.inc()
        self._beats += 1
        self.last_reply = reply
        await self._hand_on_target(reply.targetAgentVersion)
        if reply.endpoints is not None:
            self.endpoints.set(reply.endpoints)
        await self._hand_on_endpoints()
        return self._interval or reply.heartbeatSeconds

    def _may_retry(self, exc: ControlPlaneError) -> bool:
        """Whether one more beat at once may succeed: a refused token (signing-key rotation, server restore) is
        minted again; a private link refusal naming another map (the cluster joined or left a scope while its
        agents were away, or the scope went private) is followed."""
        if exc.status == 401:
            self._tokens.forget_token()
            return True
        moved = exc.info(ENDPOINTS_INFO) if exc.status == 403 else None
        return moved is not None and self.endpoints.set(ServiceEndpoints.model_validate(moved))

    async def _hand_on_endpoints(self) -> None:
        """In-cluster: publish the map the agents follow once at start (what was published before may be stale)
        and whenever it changes; the other pods read it. A failure is logged and retried with the next beat."""
        if self._share_endpoints is None or self._shared_endpoints == self.endpoints.version:
            return
        try:
            await self._share_endpoints(self.endpoints.current())
        except Exception as exc:
            log.warning("could not hand on the endpoint map", extra={"error": str(exc)})
            return
        self._shared_endpoints = self.endpoints.version

    async def _hand_on_target(self, target: str | None) -> None:
        """Publish the wanted agent version when it changes. A failure is logged and retried with the next beat,
        never held against the heartbeat, which is what keeps the cluster Connected."""
        if self._share_target is None or self._shared == target:
            return
        try:
            await self._share_target(target)
        except Exception as exc:
            log.warning("could not hand on the target agent version", extra={"target": target, "error": str(exc)})
            return
        self._shared = target

    async def target(self) -> str | None:
        """The agent version the control plane's last reply asked for (local mode: the upgrade check's source)."""
        return self.last_reply.targetAgentVersion if self.last_reply is not None else None

    async def _beat(self) -> HeartbeatReply:
        token = await self._tokens.token()
        state, errors = await self._health()
        facts = await self._facts.facts(METADATA_WAIT if self._beats == 0 else 0)
        beat = Heartbeat(
            agentVersion=__version__,
            agentState=state,
            agentErrors=errors,
            features=self._features,
            endpointsVersion=self.endpoints.version,
            configurationAgents=self._configuration_agents,
        )
        if facts is not None:
            beat = beat.model_copy(
                update={
                    "kubernetesVersion": facts.kubernetes_version or None,
                    "totalNodeCount": facts.node_count,
                    "totalCoreCount": facts.core_count,
                    "distribution": facts.distribution,
                    "infrastructure": facts.infrastructure,
                }
            )
        body = await send(
            self._http,
            "POST",
            self.endpoints.current().dp.rstrip("/") + DP_HEARTBEAT_PATH,
            json=beat.model_dump(mode="json", exclude_none=True),
            headers={"Authorization": f"Bearer {token}"},
        )
        return HeartbeatReply.model_validate(body)
