"""How a connection arrived: publicly, through a private endpoint, or through a gateway.

Decided once per request, from the listener the connection came in on (its local address), by a plain ASGI
wrapper; handlers and dependencies read the verdict from the request scope. Private endpoints and gateways add
their listeners to ``Listeners``; an address no one registered is public.

Connections handed to the HTTP stack in process (a gateway's tunnels, an endpoint forwarder's streams) have no
listener of their own: ``serve_marked`` gives them a local address no socket can have (``gw:<gateway id>``, port 0),
registered as their arrival, so the middleware and the relay tell them apart as they tell listeners apart.
"""

from __future__ import annotations

import asyncio
import enum
import socket
import ssl
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

SCOPE_KEY = "halyard.arrival"


class ArrivalKind(enum.Enum):
    PUBLIC = "public"
    PRIVATE_ENDPOINT = "privateEndpoint"
    GATEWAY = "gateway"


@dataclass(frozen=True)
class Arrival:
    kind: ArrivalKind
    via: str | None = None  # the private endpoint's or gateway's resource id

    def __str__(self) -> str:
        return self.kind.value if self.via is None else f"{self.kind.value} {self.via}"


PUBLIC = Arrival(ArrivalKind.PUBLIC)


class Listeners:
    """Which local addresses belong to which private endpoint or gateway (``(host, port)`` → arrival)."""

    def __init__(self) -> None:
        self._by_address: dict[tuple[str, int], Arrival] = {}
        # What private link enforcement served and refused, per rule (agentfacing/enforcement.py; /metrics).
        self.refusals: Counter[str] = Counter()
        # Requests by how they arrived (ArrivalKind values; /metrics): what came through gateways and endpoints.
        self.arrivals: Counter[str] = Counter()

    def register(self, host: str, port: int, arrival: Arrival) -> None:
        self._by_address[(host, port)] = arrival

    def unregister(self, host: str, port: int) -> None:
        self._by_address.pop((host, port), None)

    def arrival(self, local: tuple[str, int] | None) -> Arrival:
        if local is None or not self._by_address:
            return PUBLIC
        return self._by_address.get((local[0], local[1]), PUBLIC)


class ArrivalMiddleware:
    """Marks every request with how its connection arrived (a starlette-shaped wrapper: learn once, delegate)."""

    def __init__(self, app: ASGIApp, listeners: Listeners) -> None:
        self.app = app
        self.listeners = listeners

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            server = scope.get("server")
            arrival = self.listeners.arrival(tuple(server) if server else None)  # type: ignore[arg-type]
            scope[SCOPE_KEY] = arrival
            self.listeners.arrivals[arrival.kind.value] += 1
        await self.app(scope, receive, send)


def arrival_of(request: Request) -> Arrival:
    """How this request's connection arrived (public when no wrapper marked it, as in-process tests)."""
    arrival = request.scope.get(SCOPE_KEY)
    return arrival if isinstance(arrival, Arrival) else PUBLIC


class ArrivalCollector(Collector):
    """``halyard_requests_by_arrival_total{arrival}``: requests by how their connection arrived."""

    def __init__(self, counts: Counter[str]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily("halyard_requests_by_arrival", "Requests by how they arrived", labels=["arrival"])
        for kind in ArrivalKind:
            family.add_metric([kind.value], self._counts[kind.value])
        yield family


def gateway_address(gateway_id: str) -> tuple[str, int]:
    """The local address a gateway's in-process connections carry (registered as ``Arrival(GATEWAY, id)``)."""
    return f"gw:{gateway_id.lower()}", 0


class MarkedTransport:
    """A transport as the HTTP stack should see it: a marked local address, the original client's address;
    everything else is the transport's own."""

    def __init__(self, transport: asyncio.BaseTransport, local: tuple[str, int], peer: tuple[str, int] | None) -> None:
        self._transport = transport
        self._local = local
        self._peer = peer

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "socket":
            return None
        if name == "sockname":
            return self._local
        if name == "peername" and self._peer is not None:
            return self._peer
        return self._transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class MarkedProtocol(asyncio.Protocol):
    """Hands ``inner`` (the HTTP stack's protocol) a ``MarkedTransport``; delegates the rest."""

    def __init__(self, inner: asyncio.Protocol, local: tuple[str, int], peer: tuple[str, int] | None) -> None:
        self._inner = inner
        self._local = local
        self._peer = peer

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._inner.connection_made(MarkedTransport(transport, self._local, self._peer))  # type: ignore[arg-type]

    def data_received(self, data: bytes) -> None:
        self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self._inner.pause_writing()

    def resume_writing(self) -> None:
        self._inner.resume_writing()


class _Idle(asyncio.Protocol):
    """The far end of a socket pair until a splice adopts its transport."""


async def serve_marked(
    listeners: Listeners,
    arrival: Arrival,
    local: tuple[str, int],
    create_protocol: Callable[[], asyncio.Protocol],
    server_ssl: ssl.SSLContext | None,
    peer: tuple[str, int] | None,
) -> tuple[asyncio.Transport, asyncio.Future[None]]:
    """A connection into the HTTP stack with no socket of its own: the returned transport (paused) is its client
    side, to splice; the future is the server side's start (its TLS handshake reads through that splice, so it is
    awaited by no one here; it fails when the client side goes away first)."""
    listeners.register(*local, arrival)
    loop = asyncio.get_running_loop()
    inner, ours = socket.socketpair()
    try:
        made, _ = await loop.connect_accepted_socket(_Idle, ours)
    except OSError:
        inner.close()
        ours.close()
        raise
    transport: asyncio.Transport = made  # type: ignore[assignment]  # uvloop's transports are not asyncio's
    transport.pause_reading()

    async def serve() -> None:
        try:
            await loop.connect_accepted_socket(
                lambda: MarkedProtocol(create_protocol(), local, peer), inner, ssl=server_ssl
            )
        except (OSError, ssl.SSLError):
            inner.close()
            transport.close()

    started: asyncio.Future[None] = asyncio.ensure_future(serve())
    return transport, started
