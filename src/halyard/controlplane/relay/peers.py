"""Replica to replica: a user's stream that arrived at a replica without the cluster's tunnel, forwarded to the one
holding it.

The replica the user reached (B) has already authenticated and authorised the user and built the stream's header
(mode, prefix and, in AAD mode, the assertion auth-proxy checks), exactly as for a local tunnel. It finds the
replica holding the tunnel (A) in the routing table (:mod:`halyard.controlplane.relay.routing`) and dials it::

    GET /relay/v1/peer/subscriptions/…/connectedClusters/<name>
    Upgrade: halyard-stream/1
    Authorization: Bearer <peer token>

The peer token is signed with the replicas' shared signing keys for the peer audience, which no other token carries
(a user's or an agent's token is refused there, and a peer token is refused everywhere else); it names the cluster,
the replica it is for (so it cannot be used at another) and carries the stream header, lives 30 s and is accepted
once. A does not check the user again: it asks its agent for a data connection, sends it B's header, answers 101
and joins the two, so the bytes go user → B → A → agent. A answers 503 ``TunnelNotHere`` when the tunnel has left
it; B then reads the table again (the agent may have registered elsewhere) and, if no live replica holds the tunnel,
answers the user 503 with why, never waiting longer than the dial's timeout.

The agent's data connection for a stream goes through the load balancer too, so it may land on a replica other than
the one that asked for it (C). C authenticates the agent as usual and, holding no such stream, hands the connection
to the replica the routing table names for the agent's cluster (the one holding its tunnel, which is the one that
asked) over ``GET /relay/v1/peer-stream/<stream id>``, with a peer token naming the cluster and the stream.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from halyard.controlplane.identity.tokens import Caller, TokenService
from halyard.controlplane.relay.entry import RelayError
from halyard.controlplane.relay.routing import Route, Routing
from halyard.core.errors import InvalidAuthenticationToken, Unauthenticated
from halyard.core.settings import Settings
from halyard.tunnel.dial import UpgradeRefused, dial
from halyard.tunnel.http1 import Head

log = logging.getLogger("halyard.relay")
PEER_KIND = "RelayPeer"
PEER_TOKEN_LIFETIME = dt.timedelta(seconds=30)
# The dial waits for A's answer, which comes once A's agent has dialled the data connection (A's own open timeout,
# 10 s) or A has refused: a little longer than that, so A's precise error, not a timeout here, reaches the user.
DIAL_TIMEOUT = 15.0
STREAM_UPGRADE = "halyard-stream/1"
NOT_HERE = "TunnelNotHere"
MAX_USED = 100_000  # peer tokens remembered as used (each for its lifetime)


@dataclass
class Upstream:
    """Where a user's stream goes: a data connection from the agent, or a connection to the replica holding the
    tunnel; ``first`` is what it already sent, ``release`` frees it once the stream ends."""

    transport: asyncio.Transport
    first: bytes
    release: Callable[[], None]
    via: str  # "local", or the replica it was forwarded to


class Peers:
    """Both ends of the replica-to-replica path: forwarding (at B) and accepting (at A)."""

    def __init__(self, settings: Settings, tokens: TokenService, routing: Routing) -> None:
        self._settings = settings
        self._tokens = tokens
        self.routing = routing
        self._ssl: ssl.SSLContext | None = None
        self._used: dict[str, float] = {}  # peer token ids accepted here -> when they expire (monotonic)
        self.forwarded = 0
        self.accepted = 0

    # At B: the user's replica (or C, where an agent's data connection landed).
    async def forward(self, cluster_id: str, header: dict[str, Any], user: Caller) -> Upstream | None:
        """A connection to the live replica holding the cluster's tunnel, ready to carry the stream; None when the
        table names none (the caller looks for a tunnel here, then says why there is none). A replica that cannot
        be reached, or no longer holds the tunnel, sends this back to the table once (the agent may have moved);
        RelayError when the table still names an unreachable replica, or the replica refused the stream."""
        tried: Route | None = None
        failure = ""
        for _ in range(2):
            route = await self.routing.lookup(cluster_id)
            if route is None:
                return None
            if route == tried:
                break
            tried = route
            token = self._token(route, cluster_id, user, {"hys": header})
            try:
                upstream = await self._dial(route, f"/relay/v1/peer{cluster_id}", token)
            except _Unreachable as exc:
                failure = str(exc)
                log.warning(
                    "peer replica unreachable",
                    extra={"cluster": cluster_id, "replica": route.replica_id, "peer": route.peer_address,
                           "error": failure},
                )  # fmt: skip
                continue
            self.forwarded += 1
            return upstream
        assert tried is not None
        name = cluster_id.rsplit("/", 1)[-1]
        raise RelayError(
            503,
            "TunnelUnreachable",
            f"The tunnel of cluster '{name}' is held by the control-plane replica at {tried.peer_address}, which "
            f"could not be reached ({failure[:200]}). The cluster's agent reconnects to a live replica within "
            "seconds; retry shortly.",
            headers={"Retry-After": "1"},  # an agent whose replica died dials again at once
        )

    async def forward_data(self, cluster_id: str, agent: Caller, stream_hex: str) -> Upstream | None:
        """A connection to the replica holding the cluster's tunnel, which waits for this data connection; None when
        none is known or it cannot be reached (the agent is told the stream is not found)."""
        route = await self.routing.lookup(cluster_id)
        if route is None:
            return None
        token = self._token(route, cluster_id, agent, {"hyd": stream_hex})
        try:
            return await self._dial(route, f"/relay/v1/peer-stream/{stream_hex}", token)
        except _Unreachable as exc:
            log.warning("peer replica unreachable", extra={"cluster": cluster_id, "peer": route.peer_address,
                                                            "error": str(exc)})  # fmt: skip
            return None

    def _token(self, route: Route, cluster_id: str, who: Caller, claims: dict[str, Any]) -> str:
        """A peer token for the replica of ``route`` only, about this cluster, on behalf of ``who``."""
        token, _ = self._tokens.issue(
            tenant_id=who.tenant_id,
            object_id=who.object_id,
            app_id=who.app_id,
            kind=PEER_KIND,
            audience=self._settings.relay_peer_audience,
            resource_id=cluster_id,
            lifetime=PEER_TOKEN_LIFETIME,
            claims={"hyp": route.replica_id, "hyf": self.routing.replica_id, **claims},
        )
        return token

    async def _dial(self, route: Route, path: str, token: str) -> Upstream:
        url = f"{self._settings.scheme}://{route.peer_address}{path}"
        try:
            upgraded = await dial(
                url,
                upgrade=STREAM_UPGRADE,
                fields=[("Authorization", f"Bearer {token}")],
                ssl_context=self._ssl_context(),
                timeout=DIAL_TIMEOUT,
            )
        except UpgradeRefused as exc:
            if exc.code == NOT_HERE:
                raise _Unreachable("it no longer holds the tunnel") from None
            if exc.status in (401, 403):
                # The replicas disagree on keys or settings: an operator's problem, never the user's fault.
                log.error("peer replica refused this replica", extra={"peer": route.peer_address, "error": str(exc)})
                raise RelayError(
                    502, "PeerRefused", "The control-plane replica holding the tunnel refused this replica."
                ) from None
            raise RelayError(exc.status, exc.code, exc.message) from None  # A's answer about the stream itself
        except (OSError, TimeoutError) as exc:
            raise _Unreachable(str(exc) or type(exc).__name__) from None
        return Upstream(upgraded.transport, upgraded.rest, _nothing, route.replica_id)

    def _ssl_context(self) -> ssl.SSLContext | None:
        """Peers are checked like any server: their certificate, for the peer address, from the control plane's
        CA (or the operator's bundle)."""
        if self._settings.insecure_http:
            return None
        if self._ssl is None:
            context = ssl.create_default_context()
            if self._settings.ca_bundle is not None:
                context.load_verify_locations(cafile=str(self._settings.ca_bundle))
            self._ssl = context
        return self._ssl

    # At A: the replica holding the tunnel.
    async def verify(self, head: Head, cluster_id: str | None) -> tuple[Caller, dict[str, Any]]:
        """Who a forwarding replica acts for and the token's claims; 401 for anything but a fresh peer token for
        this replica (and this cluster, when given), used once."""
        value = head.get("authorization")
        scheme, _, token = value.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("The peer path needs a peer token.")
        token = token.strip()
        caller = await self._tokens.verify(token, audience=self._settings.relay_peer_audience)
        # The signature is verified above: the claims are the forwarding replica's.
        claims = jwt.decode(token, options={"verify_signature": False})
        if caller.kind != PEER_KIND or claims.get("hyp") != self.routing.replica_id:
            raise InvalidAuthenticationToken("The peer token is not for this replica.")
        if not caller.resource_id or (cluster_id is not None and caller.resource_id.lower() != cluster_id.lower()):
            raise InvalidAuthenticationToken("The peer token is for another cluster.")
        self._use_once(str(claims.get("uti", "")))
        self.accepted += 1
        return caller, claims

    def _use_once(self, token_id: str) -> None:
        now = time.monotonic()
        if not token_id or token_id in self._used:
            raise InvalidAuthenticationToken("The peer token was already used.")
        if len(self._used) >= MAX_USED:
            self._used = {k: exp for k, exp in self._used.items() if exp > now}
            if len(self._used) >= MAX_USED:
                raise RelayError(503, "TooManyPeerStreams", "Too many forwarded streams are opening; retry shortly.")
        # Remembered past the token's expiry plus the verifier's clock leeway.
        self._used[token_id] = now + PEER_TOKEN_LIFETIME.total_seconds() + 120


def _nothing() -> None:
    """A dialled connection counts against no address: nothing to release."""


class _Unreachable(Exception):
    """The replica named by the table did not take the stream: down, cut off, or its tunnel moved."""


def not_here(cluster_id: str) -> RelayError:
    """What A answers when the tunnel a peer was sent to has left it (B reads the table again)."""
    return RelayError(503, NOT_HERE, f"This replica holds no tunnel of '{cluster_id.rsplit('/', 1)[-1]}' now.")
