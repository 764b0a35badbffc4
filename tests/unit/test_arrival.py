"""How a connection arrived is decided once per request from the listener it came in on (pure, no sockets)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from starlette.requests import Request

from halyard.controlplane.agentfacing.arrival import (
    PUBLIC,
    Arrival,
    ArrivalKind,
    ArrivalMiddleware,
    Listeners,
    arrival_of,
)

pytestmark = pytest.mark.unit
ENDPOINT = Arrival(ArrivalKind.PRIVATE_ENDPOINT, "/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/pe/e")


def _arrival_seen(listeners: Listeners, server: tuple[str, int] | None) -> Arrival:
    seen: list[Arrival] = []

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(arrival_of(Request(scope)))

    scope = {"type": "http", "method": "GET", "path": "/", "headers": [], "server": server}
    asyncio.run(ArrivalMiddleware(app, listeners)(scope, None, None))  # type: ignore[arg-type]
    return seen[0]


def test_unregistered_listeners_are_public_and_registered_ones_name_their_endpoint() -> None:
    listeners = Listeners()
    assert _arrival_seen(listeners, ("127.0.0.1", 8443)) == PUBLIC
    listeners.register("10.1.0.5", 443, ENDPOINT)
    assert _arrival_seen(listeners, ("10.1.0.5", 443)) == ENDPOINT
    assert _arrival_seen(listeners, ("10.1.0.5", 8443)) == PUBLIC  # another port of that address
    assert _arrival_seen(listeners, None) == PUBLIC  # no server address (a unix socket)
    listeners.unregister("10.1.0.5", 443)
    assert _arrival_seen(listeners, ("10.1.0.5", 443)) == PUBLIC


def test_a_request_no_wrapper_marked_is_public() -> None:
    assert arrival_of(Request({"type": "http", "method": "GET", "path": "/", "headers": []})) == PUBLIC
    assert str(ENDPOINT).startswith("privateEndpoint /subscriptions/")
