"""Whether a cluster runs the agent that acts on a kind of configuration: the one rule for extensions and GitOps.

An agent's first long poll for its configuration records it on the cluster (a report row of the cluster, its
reporter the agent's name: extension-manager for extensions, config-agent for Flux and source-control
configurations); so does the heartbeat that declares it (``configurationAgents``), so that a write sent right after
the cluster became Connected is not refused because the agent had not polled yet. From that record, every configuration type decides the same way:

- never polled (the cluster was never connected, or its agents run without that agent: the in-cluster chart without
  the extensions feature, or without config-agent at all): nobody would ever act on a write, so a create or update is
  refused at once, ``409 AgentNotRunning``, naming the command that turns the agent on; a delete has nothing in the
  cluster to undo and completes at once;
- polled once, silent now (offline, restarting, being upgraded): the write is accepted and its operation waits for
  the agent's report, up to ``extension_wait_seconds`` from the write, then fails with the cluster's connectivity
  named (``ClusterDidNotReport``).

The record is kept per cluster resource: a cluster deleted and created again under its name starts without it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.paths import ResourceId
from halyard.core.errors import HalyardError
from halyard.store.database import Database
from halyard.store.models import ResourceReport
from halyard.store.reports import Report, put_reports


@dataclass(frozen=True)
class ConfigurationAgent:
    """An agent that acts on a kind of configuration: its report row's name and how a user turns it on."""

    name: str
    acts_on: str  # what it acts on, for messages
    turn_on: str  # the command (with {group} and {cluster}) that starts it on a cluster


EXTENSION_MANAGER = ConfigurationAgent(
    "extension-manager",
    "extensions",
    "halyard connectedk8s enable-features -g {group} -n {cluster} --features extensions",
)
CONFIG_AGENT = ConfigurationAgent(
    "config-agent",
    "Flux and source control configurations",
    # In a cluster it comes with the extensions feature, as extension-manager (Flux is the flux extension).
    "halyard connectedk8s enable-features -g {group} -n {cluster} --features extensions",
)


HEARTBEATS = "dp"  # the cluster's report row its heartbeats write: it has connected at least once
# Only these names ever become report rows of a cluster: a heartbeat naming "dp" must not overwrite its own report.
CONFIGURATION_AGENTS = frozenset({EXTENSION_MANAGER.name, CONFIG_AGENT.name})


class ClusterDidNotReport(HalyardError):
    """The agent ran once but did not report on a write within the deadline."""

    status = 504
    code = "ClusterDidNotReport"


class AgentNotRunning(HalyardError):
    """The cluster has never run the agent that would act on this configuration."""

    status = 409
    code = "AgentNotRunning"


async def has_run(session: AsyncSession, cluster_key: str, agent: ConfigurationAgent) -> bool:
    """Whether ``agent`` has ever polled for this cluster's configuration."""
    found = await session.scalar(
        select(ResourceReport.id_key).where(ResourceReport.id_key == cluster_key, ResourceReport.reporter == agent.name)
    )
    return found is not None


async def require(session: AsyncSession, cluster: ResourceId, agent: ConfigurationAgent, display: str) -> None:
    """Refuse a write of a ``display`` on ``cluster`` when the agent that would act on it has never run there."""
    if await has_run(session, cluster.key, agent):
        return
    group, name = cluster.resource_group or "<group>", cluster.name
    connected = await session.get(ResourceReport, (cluster.key, HEARTBEATS))
    if connected is None:
        how = f"The cluster has never connected: connect it with `halyard connectedk8s connect -g {group} -n {name}`"
    else:
        how = f"Turn it on with `{agent.turn_on.format(group=group, cluster=name)}`"
    raise AgentNotRunning(
        f"Connected cluster '{name}' has never run {agent.name}, the agent that applies {agent.acts_on}, so nothing "
        f"would act on this {display}. {how}, wait for the cluster to be Connected, and send the request again."
    )


@dataclass
class Presence:
    """What this replica has already recorded (one write per agent identity, not one per poll)."""

    recorded: set[tuple[str, str, str]] = field(default_factory=set)

    async def note(
        self, db: Database, cluster_key: str, identity: str, agent: ConfigurationAgent, now: dt.datetime
    ) -> None:
        """Record that ``agent`` of the cluster (its identity: a cluster created again has a new one) polled."""
        seen = (cluster_key, identity, agent.name)
        if seen in self.recorded:
            return
        async with db.transaction() as session:
            await record(session, cluster_key, agent, now)
        self.recorded.add(seen)


async def record(session: AsyncSession, cluster_key: str, agent: ConfigurationAgent, now: dt.datetime) -> None:
    """The row :func:`has_run` finds."""
    await put_reports(session, presence_reports(cluster_key, [agent.name], now))


def presence_reports(cluster_key: str, agents: list[str], now: dt.datetime) -> list[Report]:
    """The rows saying these agents run on the cluster (from their first poll, or declared by its heartbeat)."""
    return [
        Report(cluster_key, name, {"since": now.isoformat()}, now) for name in agents if name in CONFIGURATION_AGENTS
    ]
