"""The relay: where clusters' tunnels register and users' streams are let through to them.

A user's stream is decided before any byte of it reaches the cluster: the caller's token is verified, the caller
must hold ``listClusterUserCredential/action`` on the cluster, the cluster must exist and have a tunnel. Only then
is the agent asked (over its control connection) to dial a data connection for the stream, and the two
connections are joined into one byte pipe (:class:`halyard.tunnel.splice.Pipe`). Nothing of a stream is stored or
logged beyond who, which cluster, when and how many bytes.

Paths under ``/relay/v1``:

- ``/tunnel``: an agent's control connection (agent token; ``Upgrade: halyard-tunnel/1``).
- ``/streams/<id>``: an agent's data connection for one stream (agent token of the stream's cluster).
- ``/subscriptions/…/connectedClusters/<name>``: a user's stream. Either an ``Upgrade: halyard-stream/1`` request
  (the local proxy: after the 101 the connection carries kubectl's bytes) or kubectl itself, whose requests keep
  that prefix (the kubeconfig ``listClusterUserCredential`` returns), which auth-proxy strips.
- ``/peer/subscriptions/…/connectedClusters/<name>``: a user's stream forwarded by another replica (PostgreSQL,
  several replicas: :mod:`.routing` says which replica holds a tunnel, :mod:`.peers` carries the stream there).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from halyard.api.cluster import FEATURE_CLUSTER_CONNECT
from halyard.controlplane.agentfacing.callers import cluster_of_agent_token
from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.dataplane.status import connectivity_status
from halyard.controlplane.his.identities import PRINCIPAL_KIND
from halyard.controlplane.identity.tokens import Caller
from halyard.controlplane.kubernetes.connectedclusters import with_reports
from halyard.controlplane.plane import ControlPlane
from halyard.controlplane.relay.entry import Connection, HeadReader, RelayError
from halyard.controlplane.relay.peers import Peers, Upstream, not_here
from halyard.controlplane.relay.routing import Routing
from halyard.controlplane.relay.tunnels import Tunnel, TunnelTable
from halyard.core.errors import HalyardError, Unauthenticated
from halyard.store.models import Resource, ResourceReport
from halyard.tunnel.frames import header_frame
from halyard.tunnel.http1 import Head, response_head
from halyard.tunnel.protocol import METHOD_FIELD, PREFIX, STREAM_UPGRADE, TUNNEL_UPGRADE
from halyard.tunnel.splice import Pipe

log = logging.getLogger("halyard.relay")
OPEN_TIMEOUT = 10.0  # how long a user's stream waits for the agent's data connection
ASSERTION_LIFETIME = dt.timedelta(minutes=5)
CLUSTER_TYPE = "microsoft.kubernetes/connectedclusters"
USER_ACTION = "Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action"
MAX_PENDING = 10_000  # streams waiting for their agent's data connection, over every cluster


@dataclass
class _Pending:
    cluster_key: str
    future: asyncio.Future[tuple[Connection, bytes]]


@dataclass(frozen=True)
class StreamTarget:
    """Which cluster a user's request names, and the path prefix its requests carry (empty for the proxy)."""

    cluster_id: str
    prefix: str


def user_target(path: str) -> StreamTarget | None:
    """The cluster of ``/relay/v1/subscriptions/S/resourceGroups/G/providers/Microsoft.Kubernetes/
    connectedClusters/N[/…]`` (literal segments in any case, as ARM reads them)."""
    parts = path[len(PREFIX) :].split("/")
    if len(parts) < 9 or parts[0] != "":
        return None
    literals = [p.lower() for p in (parts[1], parts[3], parts[5], parts[6], parts[7])]
    if literals != ["subscriptions", "resourcegroups", "providers", "microsoft.kubernetes", "connectedclusters"]:
        return None
    if not all(parts[i] for i in (2, 4, 8)):
        return None
    cluster_id = "/" + "/".join(parts[1:9])
    return StreamTarget(cluster_id, PREFIX + cluster_id)


class Relay:
    def __init__(self, cp: ControlPlane) -> None:
        self._cp = cp
        self.enforcement = cp.enforcement  # private link: the tunnel and data connections are agent-facing requests
        self.tunnels = TunnelTable()
        self._pending: dict[bytes, _Pending] = {}
        self.pipes: set[Pipe] = set()
        self.streams_opened = 0
        # Several replicas share a PostgreSQL database; SQLite has one server, which holds every tunnel itself.
        self.routing = None if cp.db.is_sqlite else Routing(cp.db, cp.clock, cp.settings.peer_address)
        self.peers = Peers(cp.settings, cp.tokens, self.routing) if self.routing is not None else None
        self._background: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """At start-up, after migrations: this replica's lease in the routing table."""
        if self.routing is not None:
            await self.routing.start()

    async def stop(self) -> None:
        """At shutdown: tunnels and streams closed (see :meth:`close`), this replica's routes removed."""
        self.close()
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        if self.routing is not None:
            await self.routing.stop()

    # The listener hands over connections here.
    def accept(self, transport: asyncio.Transport, first: bytes, release: Callable[[], None]) -> None:
        settings = self._cp.settings
        reader = HeadReader(
            Connection(transport, release),
            self._dispatch,
            limit=settings.header_limit_bytes,
            timeout=settings.header_timeout_seconds,
        )
        reader.start(first)

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """At shutdown: tunnels closed (their agents dial another replica), streams cut."""
        self.tunnels.close_all()
        for pipe in list(self.pipes):
            pipe.close()

    async def _dispatch(self, conn: Connection, head: Head, rest: bytes) -> None:
        path = head.target.split("?", 1)[0]
        sub = path[len(PREFIX) :] if path.startswith(PREFIX + "/") else None
        if sub == "/tunnel":
            await self._register_tunnel(conn, head, rest)
        elif sub is not None and sub.startswith("/streams/"):
            await self._data_connection(conn, head, rest, sub[len("/streams/") :])
        elif sub is not None and sub.startswith("/peer/") and self.peers is not None:
            await self._peer_stream(conn, head, rest, sub[len("/peer") :])
        elif sub is not None and sub.startswith("/peer-stream/") and self.peers is not None:
            await self._peer_data_connection(conn, head, rest, sub[len("/peer-stream/") :])
        elif (target := user_target(path)) is not None:
            await self._user_stream(conn, head, rest, target)
        else:
            raise RelayError(404, "NotFound", f"No relay endpoint at {path[:200]!r}.")

    # Agents.
    async def _agent(self, head: Head, conn: Connection) -> tuple[Caller, str]:
        token = _bearer(head)
        caller, cluster_id = await cluster_of_agent_token(self._cp, token)
        await self.enforcement.enforce(cluster_id, self._cp.listeners.arrival(conn.local))
        live = await self._cp.his.live({caller.object_id})
        problem = self._cp.his.problem(live.get(caller.object_id), self._cp.clock.now())
        if problem is not None:
            raise problem
        return caller, cluster_id

    async def _register_tunnel(self, conn: Connection, head: Head, rest: bytes) -> None:
        if TUNNEL_UPGRADE not in head.tokens("upgrade"):
            raise RelayError(426, "UpgradeRequired", f"The tunnel endpoint needs 'Upgrade: {TUNNEL_UPGRADE}'.")
        _, cluster_id = await self._agent(head, conn)
        # Before the 101: a route never lags the tunnel it names.
        since = await self.routing.register(cluster_id) if self.routing is not None else None
        tunnel = Tunnel(cluster_id, on_refuse=self._refused, on_close=lambda t: self._tunnel_closed(t, conn, since))
        conn.transport.write(_switching(TUNNEL_UPGRADE))
        self.tunnels.add(tunnel)
        tunnel.adopt(conn.transport, rest)
        log.info("tunnel registered", extra={"cluster": cluster_id, "client": conn.client})

    def _tunnel_closed(self, tunnel: Tunnel, conn: Connection, since: dt.datetime | None) -> None:
        conn.release()
        if self.tunnels.remove(tunnel):
            log.info("tunnel closed", extra={"cluster": tunnel.cluster_id})
            if self.routing is not None and since is not None:
                task = asyncio.ensure_future(self.routing.unregister(tunnel.cluster_id, since))
                self._background.add(task)
                task.add_done_callback(self._background.discard)

    def _refused(self, stream_id: bytes, reason: str) -> None:
        pending = self._pending.pop(stream_id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(
                RelayError(502, "StreamRefused", f"The cluster's agent could not open the stream: {reason[:300]}")
            )

    async def _data_connection(self, conn: Connection, head: Head, rest: bytes, stream_hex: str) -> None:
        if STREAM_UPGRADE not in head.tokens("upgrade"):
            raise RelayError(426, "UpgradeRequired", f"A data connection needs 'Upgrade: {STREAM_UPGRADE}'.")
        agent, cluster_id = await self._agent(head, conn)  # who asks comes first: nothing about streams to strangers
        stream_id = _stream_id(stream_hex)
        if stream_id not in self._pending and self.peers is not None:
            # Through the load balancer, the agent's data connection may reach another replica than the one that
            # asked for the stream: that one (holding the tunnel) gets it over the peer path.
            upstream = await self.peers.forward_data(cluster_id, agent, stream_hex)
            if upstream is not None:
                conn.transport.write(_switching(STREAM_UPGRADE))
                self._join(conn, rest, upstream, agent.object_id, cluster_id, "data", time.monotonic())
                return
        self._claim(conn, rest, stream_id, cluster_id)

    async def _peer_data_connection(self, conn: Connection, head: Head, rest: bytes, stream_hex: str) -> None:
        """An agent's data connection another replica received for a stream this one asked for."""
        assert self.peers is not None
        caller, claims = await self.peers.verify(head, None)
        stream_id = _stream_id(stream_hex)
        if claims.get("hyd") != stream_hex or STREAM_UPGRADE not in head.tokens("upgrade"):
            raise RelayError(404, "StreamNotFound", "No stream waits for this data connection.")
        self._claim(conn, rest, stream_id, caller.resource_id or "")

    def _claim(self, conn: Connection, rest: bytes, stream_id: bytes, cluster_id: str) -> None:
        """Hand a data connection to the stream waiting for it."""
        pending = self._pending.get(stream_id)
        # Another cluster's agent learning a stream id must not be able to take the stream.
        if pending is None or pending.cluster_key != cluster_id.lower() or pending.future.done():
            raise RelayError(404, "StreamNotFound", "No stream of this cluster waits for this data connection.")
        del self._pending[stream_id]
        conn.transport.write(_switching(STREAM_UPGRADE))
        pending.future.set_result((conn, rest))

    async def open_stream(self, cluster_id: str) -> tuple[Connection, bytes]:
        """Ask the cluster's agent for a data connection and wait for it (RelayError when there is no tunnel)."""
        tunnel = self.tunnels.get(cluster_id)
        if tunnel is None:
            raise await self._why_no_tunnel(cluster_id)
        if len(self._pending) >= MAX_PENDING:
            raise RelayError(503, "TooManyPendingStreams", "The relay has too many streams opening; retry shortly.",
                             headers={"Retry-After": "1"})  # fmt: skip
        stream_id = os.urandom(16)
        future: asyncio.Future[tuple[Connection, bytes]] = asyncio.get_running_loop().create_future()
        self._pending[stream_id] = _Pending(cluster_id.lower(), future)
        tunnel.open_stream(stream_id)
        try:
            return await asyncio.wait_for(future, OPEN_TIMEOUT)
        except TimeoutError:
            raise RelayError(
                504,
                "StreamOpenTimeout",
                f"The cluster's clusterconnect-agent did not open the stream within {OPEN_TIMEOUT:.0f} s.",
            ) from None
        finally:
            self._pending.pop(stream_id, None)

    # Users.
    async def _user_stream(self, conn: Connection, head: Head, rest: bytes, target: StreamTarget) -> None:
        upgrade = STREAM_UPGRADE in head.tokens("upgrade")
        method = (head.get(METHOD_FIELD) or "AAD").upper() if upgrade else "AAD"
        if method not in ("AAD", "TOKEN"):
            raise RelayError(400, "InvalidAuthenticationMethod", f"{METHOD_FIELD} must be AAD or Token.")
        started = time.monotonic()
        caller = await self._user(head, target.cluster_id)
        await self._cluster(target.cluster_id)
        header: dict[str, Any] = {"v": 1, "mode": method, "prefix": "" if upgrade else target.prefix}
        if method == "AAD":
            header["assertion"] = self._assertion(caller, target.cluster_id)
        upstream = await self._upstream(target.cluster_id, header, caller)
        if upgrade:
            conn.transport.write(_switching(STREAM_UPGRADE))
            first = rest
        else:
            first = head.raw + rest  # kubectl's first request goes on as it came
        self.streams_opened += 1
        self._join(conn, first, upstream, caller.caller.object_id, target.cluster_id, method, started)

    async def _upstream(self, cluster_id: str, header: dict[str, Any], caller: AuthorizedCaller) -> Upstream:
        """The stream's way to the cluster: this replica's tunnel, else the replica the routing table names."""
        if self.tunnels.get(cluster_id) is None and self.peers is not None:
            forwarded = await self.peers.forward(cluster_id, header, caller.caller)
            if forwarded is not None:
                return forwarded
        return await self._local_upstream(cluster_id, header)

    async def _local_upstream(self, cluster_id: str, header: dict[str, Any]) -> Upstream:
        agent, agent_rest = await self.open_stream(cluster_id)
        agent.transport.write(header_frame(header).encode())
        return Upstream(agent.transport, agent_rest, agent.release, "local")

    async def _peer_stream(self, conn: Connection, head: Head, rest: bytes, cluster_path: str) -> None:
        """A stream another replica forwards: it has authenticated and authorised the user and built the header."""
        target = user_target(PREFIX + cluster_path)
        if target is None or STREAM_UPGRADE not in head.tokens("upgrade"):
            raise RelayError(404, "NotFound", "No peer endpoint at this path.")
        assert self.peers is not None
        started = time.monotonic()
        caller, claims = await self.peers.verify(head, target.cluster_id)
        header = claims.get("hys")
        if not isinstance(header, dict):
            raise RelayError(400, "BadRequest", "The peer token carries no stream header.")
        if self.tunnels.get(target.cluster_id) is None:
            raise not_here(target.cluster_id)  # never forwarded on: the forwarding replica reads the table again
        upstream = await self._local_upstream(target.cluster_id, header)
        conn.transport.write(_switching(STREAM_UPGRADE))
        self.streams_opened += 1
        self._join(conn, rest, upstream, caller.object_id, target.cluster_id, str(header.get("mode")), started)

    def _join(
        self,
        conn: Connection,
        first: bytes,
        upstream: Upstream,
        principal: str,
        cluster_id: str,
        method: str,
        started: float,
    ) -> None:
        """Carry the stream: ``conn`` (a user, a forwarding replica, or an agent's data connection for another
        replica) joined to its upstream."""

        def closed(pipe: Pipe) -> None:
            self.pipes.discard(pipe)
            conn.release()
            upstream.release()
            log.info(
                "stream closed",
                extra={
                    "principal": principal,
                    "cluster": cluster_id,
                    "mode": method,
                    "via": upstream.via,
                    "bytes_in": pipe.a_to_b,
                    "bytes_out": pipe.b_to_a,
                    "seconds": round(time.monotonic() - started, 3),
                },
            )

        pipe = Pipe(conn.transport, upstream.transport, a_first=first, b_first=upstream.first, on_close=closed)
        self.pipes.add(pipe)

    async def _user(self, head: Head, cluster_id: str) -> AuthorizedCaller:
        """The caller of a user stream: a management token, or a relay token bound to this cluster."""
        token = _bearer(head, www_authenticate=True)
        tokens = self._cp.tokens
        try:
            caller = await tokens.verify(token, audience=self._cp.settings.audience)
            bound_to = cluster_id
        except Unauthenticated:
            caller = await tokens.verify(token, audience=self._cp.settings.relay_audience)
            bound_to = caller.resource_id or ""
        if bound_to.lower() != cluster_id.lower():
            raise RelayError(403, "TokenForAnotherCluster", "This relay token opens streams to another cluster.")
        if caller.kind == PRINCIPAL_KIND:
            raise RelayError(403, "AuthorizationFailed", "A cluster identity cannot open cluster-connect streams.")
        authorized = await self._cp.access.resolve(caller)
        authorized.require(USER_ACTION, cluster_id)
        return authorized

    async def _cluster(self, cluster_id: str) -> None:
        async with self._cp.db.session() as session:
            found = await session.scalar(select(Resource.id_key).where(Resource.id_key == cluster_id.lower()))
        if found is None or not cluster_id.lower().startswith("/subscriptions/"):
            raise RelayError(404, "ResourceNotFound", f"The connected cluster '{cluster_id}' was not found.")

    async def _why_no_tunnel(self, cluster_id: str) -> HalyardError:
        """Why a cluster has no tunnel here, as precisely as the store tells."""
        async with self._cp.db.session() as session:
            resource = await session.get(Resource, cluster_id.lower())
            report = await session.get(ResourceReport, (cluster_id.lower(), "dp"))
        reported = report.properties if report is not None else {}
        name = cluster_id.rsplit("/", 1)[-1]
        group = cluster_id.split("/")[4]
        features = reported.get("features")
        if isinstance(features, list) and FEATURE_CLUSTER_CONNECT not in features:
            return RelayError(
                409,
                "ClusterConnectDisabled",
                f"Cluster connect is disabled on '{name}'. Enable it with `halyard connectedk8s enable-features "
                f"-g {group} -n {name} --features cluster-connect`.",
            )
        props = with_reports(resource.properties if resource else {}, reported)
        settings = self._cp.settings
        status = connectivity_status(
            props, self._cp.clock.now(), dt.timedelta(seconds=settings.offline_threshold_seconds)
        )
        if status != "Connected":
            last = props.get("lastConnectivityTime") or "never"
            return RelayError(
                503,
                "ClusterNotConnected",
                f"The cluster '{name}' is {status} (last heartbeat: {last}); its agents must be running and reach "
                "the control plane before cluster connect can reach it.",
            )
        return RelayError(
            503,
            "TunnelNotConnected",
            f"The cluster '{name}' is Connected but its clusterconnect-agent has no tunnel to this control plane "
            "right now (it reconnects with backoff); retry in a few seconds.",
            headers={"Retry-After": "5"},
        )

    def _assertion(self, caller: AuthorizedCaller, cluster_id: str) -> str:
        """What auth-proxy checks before it impersonates: this principal, for this cluster, for 5 minutes."""
        who = caller.caller
        token, _ = self._cp.tokens.issue(
            tenant_id=who.tenant_id,
            object_id=who.object_id,
            app_id=who.app_id,
            kind=who.kind,
            audience=cluster_id,
            lifetime=ASSERTION_LIFETIME,
            claims={"groups": list(caller.groups), "hyu": "cluster-connect"},
        )
        return token


def _bearer(head: Head, *, www_authenticate: bool = False) -> str:
    value = head.get("authorization")
    scheme, _, token = value.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated(
            "The 'Authorization' header is missing or not a Bearer token.",
            headers={"WWW-Authenticate": 'Bearer realm="halyard"'} if www_authenticate else None,
        )
    return token.strip()


def _stream_id(stream_hex: str) -> bytes:
    try:
        return bytes.fromhex(stream_hex)
    except ValueError:
        raise RelayError(404, "StreamNotFound", "No stream waits for this data connection.") from None


def _switching(protocol: str) -> bytes:
    return response_head(101, "Switching Protocols", [("Connection", "Upgrade"), ("Upgrade", protocol)])
