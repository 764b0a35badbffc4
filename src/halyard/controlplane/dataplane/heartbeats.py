"""Heartbeats: an agent's report of the cluster, written onto its connectedCluster resource."""

from __future__ import annotations

import datetime as dt
from typing import Any

from halyard.api.agents import Heartbeat, HeartbeatReply
from halyard.controlplane.dataplane.status import connectivity_status
from halyard.controlplane.his.identities import ClusterIdentities
from halyard.controlplane.identity.tokens import Caller
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import Unauthenticated
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Resource

# Writable properties the agents may fill in when the user left them empty (detected, not chosen).
DETECTED = ("distribution", "infrastructure")


class Heartbeats:
    def __init__(self, db: Database, clock: Clock, settings: Settings, identities: ClusterIdentities) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self._identities = identities

    async def record(self, caller: Caller, beat: Heartbeat) -> HeartbeatReply:
        """Store what the agent observed and when; the identity is re-checked on every beat (revocation)."""
        now = self._clock.now()
        async with self._db.transaction() as session:
            identity = await self._identities.resolve(session, caller.object_id)
            resource = await session.get(Resource, identity.resource_key)
            if resource is None or resource.provisioning_state == "Deleting":
                raise Unauthenticated("The connected cluster is being deleted.", code="ClusterIdentityRevoked")
            resource.properties = merge(resource.properties, beat, now)
            properties = resource.properties
        profile = properties.get("arcAgentProfile") or {}
        return HeartbeatReply(
            connectivityStatus=connectivity_status(
                properties, now, dt.timedelta(seconds=self._settings.offline_threshold_seconds)
            ),
            heartbeatSeconds=self._settings.heartbeat_interval_seconds,
            desiredAgentVersion=profile.get("desiredAgentVersion"),
            agentAutoUpgrade=profile.get("agentAutoUpgrade", "Enabled"),
        )


def merge(properties: dict[str, Any], beat: Heartbeat, now: dt.datetime) -> dict[str, Any]:
    """The resource's properties with a heartbeat applied (a new dict: the JSON column sees the change)."""
    props = dict(properties)
    props["agentVersion"] = beat.agentVersion
    for key in ("kubernetesVersion", "totalNodeCount", "totalCoreCount"):
        value = getattr(beat, key)
        if value is not None:
            props[key] = value
    for key in DETECTED:
        value = getattr(beat, key)
        if value and not props.get(key):
            props[key] = value
    props["lastConnectivityTime"] = isoformat(now)
    profile = dict(props.get("arcAgentProfile") or {})
    if beat.agentState is not None:
        profile["agentState"] = beat.agentState
    profile["agentErrors"] = [
        {"message": e.message, "severity": e.severity, "component": e.component, "time": isoformat(e.time)}
        for e in beat.agentErrors
    ]
    props["arcAgentProfile"] = profile
    return props
