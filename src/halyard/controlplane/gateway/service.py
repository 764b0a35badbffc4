"""``gw``, the gateway service: the one name an enterprise proxy allows, in front of every agent-facing service.

An agent's connection arrives (through arc-proxy and the enterprise proxy) as TLS to the gateway's name; inside it,
one ``CONNECT destination`` whose ``Proxy-Authorization: Bearer`` is the agent's own token. The cluster is thus
authenticated at the application layer: a TLS-inspecting proxy that re-signs the outer TLS changes nothing, and what
then flows through the tunnel is the agent's own TLS to the destination, end to end. The gateway checks the token
(a live cluster identity), that the cluster is linked to this gateway (the name the agent reached, its SNI), and that
the destination is one its allowed features need; then it splices the bytes, and writes one audit row per
connection, allowed or refused, with the bytes each way and the duration.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import cast
from urllib.parse import urlsplit

import jwt
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import select

from halyard.controlplane.agentfacing.arrival import Arrival, ArrivalKind, gateway_address, serve_marked
from halyard.controlplane.agentfacing.callers import cluster_of_agent_token
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.gateway import features
from halyard.controlplane.gateway.audit import ALLOWED, DENIED, AuditLog, Record
from halyard.controlplane.gateway.links import GATEWAY_TYPE_KEY, REPORTER
from halyard.controlplane.his.proofs import invalid_proof, verify_proof
from halyard.controlplane.kubernetes.connectedclusters import parse_agent_public_key
from halyard.controlplane.plane import ControlPlane
from halyard.core.errors import HalyardError
from halyard.store.models import Resource, ResourceReport
from halyard.tunnel.http1 import HeadError, response_head, split_head
from halyard.tunnel.proxyconnect import (
    GATEWAY_PROOF,
    GATEWAY_UPGRADE,
    ConnectTarget,
    authority,
    gateway_audience,
    parse_connect,
)
from halyard.tunnel.splice import Pipe

log = logging.getLogger("halyard.gateway")
HEAD_LIMIT = 16 * 1024
AUDIT_BATCH = 500
AUDIT_BATCH_DELAY = 0.05
HEAD_TIMEOUT = 10.0
CLUSTER_TYPE_KEY = "microsoft.kubernetes/connectedclusters"
GATEWAY_HEADER = "x-halyard-gateway"  # the gateway's name when the outer hop is not TLS (loopback tests)
_REASONS = {400: "Bad Request", 403: "Forbidden", 405: "Method Not Allowed", 407: "Proxy Authentication Required",
            408: "Request Timeout", 431: "Request Header Fields Too Large", 502: "Bad Gateway"}  # fmt: skip


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.gateway_id: str | None = None  # what was known when refused, for the audit row
        self.cluster_id: str | None = None


@dataclass(frozen=True)
class Upstream:
    """Where a destination's bytes go: the allowed destination's authority and the address to dial for it."""

    name: str  # host:port as agents ask for it
    host: str
    port: int
    own: bool = False  # the control plane's own services: served in process when the server attached its HTTP stack


@dataclass
class GatewayMetrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        self.connections = Counter(
            "halyard_gateway_connections", "Connections through gateways", ["verdict"], registry=self.registry
        )
        self.bytes = Counter(
            "halyard_gateway_bytes", "Bytes carried by gateways", ["direction"], registry=self.registry
        )


class GatewayService:
    def __init__(self, cp: ControlPlane, audit: AuditLog, upstreams: dict[str, Upstream] | None = None) -> None:
        self._cp = cp
        self.audit = audit
        self.metrics = GatewayMetrics()
        self._servers: list[asyncio.Server] = []
        self._pipes: set[Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._pending: list[Record] = []  # audit rows waiting for the next group commit
        self._flushing: asyncio.Task[None] | None = None
        # The control plane's services, as agents name them (the public base URL's authority) → its own listener.
        self._upstreams = upstreams if upstreams is not None else self._control_plane_upstreams()
        self._http: tuple[Callable[[], asyncio.Protocol], ssl.SSLContext | None] | None = None

    def _control_plane_upstreams(self) -> dict[str, Upstream]:
        settings = self._cp.settings
        public = urlsplit(settings.base_url)
        port = public.port or (443 if public.scheme == "https" else 80)
        name = authority((public.hostname or "").lower(), port)
        host = settings.host if settings.host not in ("0.0.0.0", "::") else "127.0.0.1"
        return {name: Upstream(name, host, settings.port, own=True)}

    def serve_in_process(
        self, create_protocol: Callable[[], asyncio.Protocol], server_ssl: ssl.SSLContext | None
    ) -> None:
        """Serve tunnels to the control plane's own services with its HTTP stack in this process (the server calls
        this once it runs), not through its public listener: requests through a gateway then arrive as
        ``Arrival(GATEWAY, gateway id)`` and the relay and agent services can tell."""
        self._http = (create_protocol, server_ssl)

    def services_for(self, allowed: list[str]) -> dict[str, Upstream]:
        """The destinations a gateway with these allowed features lets through. Every Halyard service (login, his,
        dp, relay) is one authority today, so a gateway allows the control plane's; the features that open services
        elsewhere (an agents' registry mirror) add theirs here."""
        opened = features.allowed_services(allowed)
        return dict(self._upstreams) if opened >= features.CORE_SERVICES else {}

    async def start(self, host: str, port: int, ssl_context: ssl.SSLContext | None) -> tuple[str, int]:
        loop = asyncio.get_running_loop()
        # A TLS handshake left half done is cut at the head's deadline too (asyncio's default holds it 60 s).
        handshake = HEAD_TIMEOUT if ssl_context is not None else None
        server = await loop.create_server(
            lambda: _Connection(self), host, port, ssl=ssl_context, ssl_handshake_timeout=handshake
        )
        self._servers.append(server)
        sock = server.sockets[0].getsockname()
        log.info("gateway listening", extra={"host": sock[0], "port": sock[1]})
        return str(sock[0]), int(sock[1])

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for pipe in list(self._pipes):
            pipe.close()  # their rows are recorded as they close
        await asyncio.sleep(0)
        for task in list(self._tasks):
            if task is not self._flushing:
                task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._flush()

    def spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def dial(self, upstream: Upstream, gateway_id: str, peer: tuple[str, int] | None) -> asyncio.Transport:
        """The far end of an allowed tunnel, paused: the control plane's HTTP stack in process (marked as arriving
        through this gateway) when attached, else a TCP connection to the destination."""
        if upstream.own and self._http is not None:
            create_protocol, server_ssl = self._http
            arrival = Arrival(ArrivalKind.GATEWAY, gateway_id)
            local = gateway_address(gateway_id)
            far, started = await serve_marked(self._cp.listeners, arrival, local, create_protocol, server_ssl, peer)
            self.spawn(started)
            return far
        loop = asyncio.get_running_loop()
        made, _ = await asyncio.wait_for(loop.create_connection(_Idle, upstream.host, upstream.port), 10)
        transport = cast(asyncio.Transport, made)
        transport.pause_reading()
        return transport

    async def decide(self, target: ConnectTarget, gateway_name: str) -> tuple[str, str, Upstream]:
        """(gateway id, cluster id, upstream) for an allowed connection; Refusal (with what was known) otherwise."""
        gateway = await self._gateway_named(gateway_name) if gateway_name else None
        try:
            cluster_id, gateway = await self._linked(target, gateway_name, gateway)
        except Refusal as refusal:
            refusal.gateway_id = refusal.gateway_id or (gateway.id if gateway is not None else None)
            raise
        allowed = self.services_for(list(gateway.properties.get("allowedFeatures") or []))
        upstream = allowed.get(authority(target.host, target.port))
        if upstream is None:
            not_allowed = Refusal(
                403, "DestinationNotAllowed",
                f"{authority(target.host, target.port)} is not a destination this gateway's features allow.",
            )  # fmt: skip
            not_allowed.gateway_id, not_allowed.cluster_id = gateway.id, cluster_id
            raise not_allowed
        return gateway.id, cluster_id, upstream

    async def _gateway_named(self, name: str) -> Resource | None:
        """The gateway whose endpoint is ``name`` (a handful per subscription: read, not indexed)."""
        async with self._cp.db.session() as session:
            rows = (await session.scalars(select(Resource).where(Resource.type_key == GATEWAY_TYPE_KEY))).all()
        return next((r for r in rows if str(r.properties.get("gatewayEndpoint", "")).lower() == name.lower()), None)

    async def _linked(self, target: ConnectTarget, gateway_name: str, named: Resource | None) -> tuple[str, Resource]:
        token, proof = target.credential("Bearer"), target.credential("Proof")
        if not token and not proof:
            raise Refusal(407, "AgentTokenRequired", "The gateway needs the agent's token.")
        try:
            if token:
                _, cluster_id = await cluster_of_agent_token(self._cp, token)
            else:
                cluster_id = await self._onboarding_proof(str(proof), gateway_name)
        except HalyardError as exc:
            raise Refusal(407, exc.code, str(exc)) from None
        async with self._cp.db.session() as session:
            report = await session.get(ResourceReport, (cluster_id.lower(), REPORTER))
            link = (report.properties.get("gateway") or {}) if report is not None else {}
            gateway_id = link.get("resourceId") if link.get("enabled") else None
            gateway = await session.get(Resource, gateway_id.lower()) if gateway_id else None
        refusal = None
        if gateway is None or gateway.provisioning_state != "Succeeded":
            refusal = Refusal(403, "ClusterNotLinked", f"The cluster {cluster_id} is not linked to a gateway.")
        elif gateway_name and (named is None or named.id_key != gateway.id_key):
            refusal = Refusal(403, "ClusterNotLinked", f"The cluster is not linked to the gateway {gateway_name}.")
        if refusal is not None:
            refusal.cluster_id = cluster_id
            raise refusal
        assert gateway is not None
        return cluster_id, gateway

    async def _onboarding_proof(self, proof: str, gateway_name: str) -> str:
        """An onboarding cluster has no token yet: it proves possession of its onboarding key (the one its resource
        holds), for this gateway, fresh, as it does to his for its first certificate. The cluster's id."""
        try:
            subject = str(jwt.decode(proof, options={"verify_signature": False}).get("sub") or "")
            cluster_key = ResourceId.parse(subject).key
        except (jwt.PyJWTError, HalyardError, ValueError):
            raise invalid_proof() from None
        async with self._cp.db.session() as session:
            cluster = await session.get(Resource, cluster_key)
        if cluster is None or cluster.type_key != CLUSTER_TYPE_KEY:
            raise invalid_proof()
        key = parse_agent_public_key(str(cluster.properties.get("agentPublicKeyCertificate", "")))
        verify_proof(
            proof, key, audience=gateway_audience(gateway_name), resource_id=cluster.id, digest=GATEWAY_PROOF,
            now=self._cp.clock.now(),
        )  # fmt: skip
        return cluster.id

    def record(self, record: Record) -> None:
        self.metrics.connections.labels(record.verdict).inc()
        self.metrics.bytes.labels("up").inc(record.bytes_up)
        self.metrics.bytes.labels("down").inc(record.bytes_down)
        log.info("gateway connection", extra=record.body())
        self._pending.append(record)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.ensure_future(self._flush_soon())
            self._tasks.add(self._flushing)
            self._flushing.add_done_callback(self._tasks.discard)

    async def _flush_soon(self) -> None:
        # Group commit, as dp does for heartbeats: rows of connections closing together share one transaction
        # (one row per transaction is ~800 rows/s on SQLite, batches of 100 ~6,700: docs/benchmarks.md).
        await asyncio.sleep(AUDIT_BATCH_DELAY)
        await self._flush()

    async def _flush(self) -> None:
        while self._pending:
            batch, self._pending = self._pending[:AUDIT_BATCH], self._pending[AUDIT_BATCH:]
            try:
                await self.audit.write(batch)
            except Exception as exc:  # the audit must not take the gateway down; the log lines above stay
                log.error("gateway audit write failed", extra={"error": type(exc).__name__, "rows": len(batch)})


class _Idle(asyncio.Protocol):
    pass


class _Connection(asyncio.Protocol):
    """One agent connection: its CONNECT head read (bounded), decided, then spliced or refused."""

    def __init__(self, service: GatewayService) -> None:
        self._service = service
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._started = time.monotonic()
        self._reading = True
        self._client = "?"
        self._peer: tuple[str, int] | None = None
        self._name = ""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        peer = transport.get_extra_info("peername")
        self._client = str(peer[0]) if peer else "?"
        self._peer = (str(peer[0]), int(peer[1])) if peer else None
        ssl_object = transport.get_extra_info("ssl_object")
        self._name = str(getattr(ssl_object, "halyard_server_name", "") or "") if ssl_object is not None else ""
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._too_slow)

    def _too_slow(self) -> None:
        self._refuse(Refusal(408, "HeadTimeout", "The CONNECT request did not arrive in time."), "?", None, "")

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            return
        self._buffer += data
        try:
            split = split_head(self._buffer, HEAD_LIMIT)
            if split is None:
                return
            target = parse_connect(split[0], gateway=True)
        except HeadError as exc:
            self._refuse(Refusal(exc.status, "BadRequest", str(exc)), "?", None, "")
            return
        self._reading = False
        if self._timer is not None:
            self._timer.cancel()
        assert self._transport is not None
        self._transport.pause_reading()
        name = self._name or target.head.get(GATEWAY_HEADER)
        self._service.spawn(self._open(target, name, split[1]))

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    async def _open(self, target: ConnectTarget, name: str, rest: bytes) -> None:
        destination = authority(target.host, target.port)
        try:
            gateway_id, cluster_id, upstream = await self._service.decide(target, name)
        except Refusal as refused:
            self._refuse(refused, destination, refused.cluster_id, name, refused.gateway_id)
            return
        try:
            far = await self._service.dial(upstream, gateway_id, self._peer)
        except (OSError, TimeoutError) as exc:
            unreachable = Refusal(502, "DestinationUnreachable", f"{destination}: {type(exc).__name__}")
            self._refuse(unreachable, destination, cluster_id, name, gateway_id)
            return
        assert self._transport is not None
        if self._transport.is_closing():
            far.close()
            return
        if target.upgrade:
            switch = [("Connection", "Upgrade"), ("Upgrade", GATEWAY_UPGRADE)]
            self._transport.write(response_head(101, "Switching Protocols", switch))
        else:
            self._transport.write(response_head(200, "Connection established", []))
        started = time.monotonic()
        service = self._service

        def closed(pipe: Pipe) -> None:
            service._pipes.discard(pipe)
            reason = "closed" if pipe.error is None else f"closed: {type(pipe.error).__name__}"
            service.record(self._row(gateway_id, cluster_id, destination, pipe.a_to_b, pipe.b_to_a, started,
                                     ALLOWED, reason))  # fmt: skip

        pipe = Pipe(self._transport, far, a_first=rest, on_close=closed)
        service._pipes.add(pipe)

    def _row(
        self, gateway_id: str, cluster_id: str | None, destination: str, up: int, down: int, started: float,
        verdict: str, reason: str,
    ) -> Record:  # fmt: skip
        return Record(
            at=dt.datetime.now(dt.UTC),
            gateway_id=gateway_id,
            cluster_id=cluster_id,
            destination=destination,
            bytes_up=up,
            bytes_down=down,
            duration_ms=int((time.monotonic() - started) * 1000),
            verdict=verdict,
            reason=reason,
            client=self._client,
        )

    def _refuse(
        self, refusal: Refusal, destination: str, cluster_id: str | None, name: str, gateway_id: str | None = None
    ) -> None:
        self._reading = False
        if self._timer is not None:
            self._timer.cancel()
        transport = self._transport
        body = json.dumps({"error": {"code": refusal.code, "message": str(refusal)}}).encode()
        if transport is not None and not transport.is_closing():
            fields = [("Content-Type", "application/json"), ("Content-Length", str(len(body))), ("Connection", "close")]
            transport.write(response_head(refusal.status, _REASONS.get(refusal.status, "Error"), fields) + body)
            transport.close()
        gateway = gateway_id or (f"name:{name}" if name else "unknown")
        self._service.record(
            self._row(gateway, cluster_id, destination, 0, 0, self._started, DENIED, f"{refusal.code}: {refusal}")
        )


ServiceFactory = Callable[[ControlPlane], GatewayService]
