"""How a connection arrived: publicly, through a private endpoint, or through a gateway.

Decided once per request, from the listener the connection came in on (its local address), by a plain ASGI
wrapper; handlers and dependencies read the verdict from the request scope. Private endpoints and gateways add
their listeners to ``Listeners``; an address no one registered is public.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass

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
            scope[SCOPE_KEY] = self.listeners.arrival(tuple(server) if server else None)  # type: ignore[arg-type]
        await self.app(scope, receive, send)


def arrival_of(request: Request) -> Arrival:
    """How this request's connection arrived (public when no wrapper marked it, as in-process tests)."""
    arrival = request.scope.get(SCOPE_KEY)
    return arrival if isinstance(arrival, Arrival) else PUBLIC
