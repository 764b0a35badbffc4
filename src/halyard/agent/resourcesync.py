"""resource-sync: the heartbeat. Sends the metadata operator's picture of the cluster to ``dp`` on an interval, which
is what keeps the connected cluster ``Connected``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import httpx

from halyard import __version__
from halyard.agent.controlplane import ControlPlaneError, send
from halyard.agent.identity import IdentityNotReady, IdentityOperator
from halyard.agent.metadata import MetadataOperator
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import DP_HEARTBEAT_PATH, AgentError, Heartbeat, HeartbeatReply

READY_WAIT = 30.0
# The first beat waits this long for the cluster's metadata, so the resource shows it from the start.
METADATA_WAIT = 5.0


class ResourceSync:
    name = "resource-sync"

    def __init__(
        self,
        http: httpx.AsyncClient,
        dp_url: str,
        identity: IdentityOperator,
        metadata: MetadataOperator,
        metrics: AgentMetrics,
        *,
        health: Callable[[], tuple[str, list[AgentError]]],
        interval: float | None = None,
    ) -> None:
        self._http = http
        self._url = dp_url.rstrip("/") + DP_HEARTBEAT_PATH
        self._identity = identity
        self._metadata = metadata
        self._metrics = metrics
        self._health = health
        self._interval = interval
        self.last_reply: HeartbeatReply | None = None

    async def reconcile(self) -> float:
        try:
            await asyncio.wait_for(self._identity.ready.wait(), READY_WAIT)
        except TimeoutError:
            raise IdentityNotReady("waiting for the identity operator's cluster certificate") from None
        if not self._metadata.ready.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._metadata.ready.wait(), METADATA_WAIT)
        try:
            reply = await self._beat()
        except ControlPlaneError as exc:
            if exc.status != 401:
                self._metrics.heartbeats_failed.inc()
                raise
            # A refused token (signing-key rotation, server restore): mint a new one once, then give up.
            self._identity.forget_token()
            try:
                reply = await self._beat()
            except ControlPlaneError:
                self._metrics.heartbeats_failed.inc()
                raise
        self._metrics.heartbeats_sent.inc()
        self.last_reply = reply
        return self._interval or reply.heartbeatSeconds

    async def _beat(self) -> HeartbeatReply:
        token = await self._identity.token()
        state, errors = self._health()
        facts = self._metadata.facts
        beat = Heartbeat(agentVersion=__version__, agentState=state, agentErrors=errors)
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
            self._url,
            json=beat.model_dump(mode="json", exclude_none=True),
            headers={"Authorization": f"Bearer {token}"},
        )
        return HeartbeatReply.model_validate(body)
