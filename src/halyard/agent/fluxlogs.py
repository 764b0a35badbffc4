"""flux-logs-agent: ships the Kubernetes Events of the cluster's Flux objects (what Flux's controllers record as they
reconcile: fetched revision, applied, failed, pruned) to ``dp``, where the newest are kept per configuration and
``halyard k8s-configuration flux logs`` reads them.

The objects are config-agent's (labelled with their configuration's name); their Events are read every
``INTERVAL`` seconds in the namespaces those objects live in. Each Event is sent once per change of its count
(a repeated event is one object whose count grows), its message cut to ``MAX_MESSAGE``, at most ``MAX_PER_MINUTE``
a minute and ``BATCH`` a request: a controller stuck in a loop cannot flood the control plane.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable
from typing import Any

import httpx
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import Event

from halyard.agent import fluxobjects
from halyard.agent.configagent import KINDS, ident
from halyard.agent.controlplane import ControlPlaneError
from halyard.agent.endpoints import Url, url_of
from halyard.agent.resourcesync import TokenSource

log = logging.getLogger("halyard.agent")
FLUX_EVENTS_PATH = "/v1/fluxConfigurations/events"
INTERVAL = 2.0
IDLE_INTERVAL = 10.0  # no Flux object of ours in the cluster
BATCH = 200
MAX_PER_MINUTE = 600
MAX_MESSAGE = 4000
SEEN_KEPT = 10_000


class FluxLogsAgent:
    name = "flux-logs-agent"

    def __init__(
        self,
        http: httpx.AsyncClient,
        dp_url: Url,
        tokens: TokenSource,
        kube: AsyncClient,
        *,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._http = http
        self._dp_url = dp_url  # read at each request: private link may move it (endpoints.py)
        self._tokens = tokens
        self._kube = kube
        self._monotonic = monotonic
        self._seen: collections.OrderedDict[tuple[str, int], None] = collections.OrderedDict()
        self._sent_at: collections.deque[float] = collections.deque()

    async def reconcile(self) -> float:
        owners = await self._flux_objects()
        if not owners:
            return IDLE_INTERVAL
        batch = []
        for namespace in sorted({ns for _, ns, _ in owners}):
            async for event in self._kube.list(Event, namespace=namespace):
                involved = event.involvedObject
                owner = owners.get((involved.kind or "", involved.namespace or namespace, involved.name or ""))
                if owner is None:
                    continue
                key = (event.metadata.uid or f"{namespace}/{event.metadata.name}", int(event.count or 1))
                if key in self._seen:
                    continue
                batch.append((key, _shipped(event, owner, involved, namespace)))
        batch.sort(key=lambda item: str(item[1].get("time") or ""))
        allowed = self._allowance()
        if len(batch) > allowed:
            log.warning(
                "flux events dropped", extra={"dropped": len(batch) - allowed, "rate_per_minute": MAX_PER_MINUTE}
            )
        batch = batch[:allowed]
        for start in range(0, len(batch), BATCH):
            chunk = batch[start : start + BATCH]
            await self._send([event for _, event in chunk])
            now = self._monotonic()
            for key, _ in chunk:
                self._seen[key] = None
                self._sent_at.append(now)
            while len(self._seen) > SEEN_KEPT:
                self._seen.popitem(last=False)
        return INTERVAL

    def _allowance(self) -> int:
        now = self._monotonic()
        while self._sent_at and now - self._sent_at[0] > 60:
            self._sent_at.popleft()
        return max(0, MAX_PER_MINUTE - len(self._sent_at))

    async def _flux_objects(self) -> dict[tuple[str, str, str], tuple[str, str]]:
        """(kind, namespace, name) of every Flux object config-agent wrote → (configuration, its kind)."""
        owners: dict[tuple[str, str, str], tuple[str, str]] = {}
        for kind, resource in KINDS.items():
            try:
                async for item in self._kube.list(resource, namespace="*", labels={fluxobjects.CONFIG_LABEL: None}):
                    name, namespace, labels, _ = ident(item)
                    owners[(kind, namespace, name)] = (
                        labels.get(fluxobjects.CONFIG_LABEL, ""),
                        labels.get(fluxobjects.KIND_LABEL, "fluxConfiguration"),
                    )
            except ApiError as exc:
                if exc.status.code != 404:  # Flux not installed: nothing to ship
                    raise
        return owners

    async def _send(self, events: list[dict[str, Any]]) -> None:
        token = await self._tokens.token()
        response = await self._http.post(
            url_of(self._dp_url) + FLUX_EVENTS_PATH,
            json={"events": events},
            headers={"Authorization": f"Bearer {token}"},
        )
        if response.status_code != 204:
            raise ControlPlaneError(f"events refused: {response.status_code} {response.text[:300]}")


def _shipped(event: Event, owner: tuple[str, str], involved: Any, namespace: str) -> dict[str, Any]:
    when: Any = event.lastTimestamp or event.eventTime or event.firstTimestamp
    return {
        "configuration": owner[0],
        "kind": owner[1],
        "objectKind": (involved.kind or "")[:256],
        "objectName": (involved.name or "")[:256],
        "objectNamespace": (involved.namespace or namespace)[:256],
        "type": (event.type or "Normal")[:256],
        "reason": (event.reason or "")[:256] or None,
        "message": (event.message or "")[:MAX_MESSAGE],
        "time": when.isoformat() if hasattr(when, "isoformat") else (str(when) if when else None),
        "count": int(event.count or 1),
    }
