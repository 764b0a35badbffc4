"""The private endpoints a server serves directly (``--endpoint-listener HOST:PORT=ENDPOINT_ID``): parsed once,
bound by the server, registered in ``Listeners`` so their connections arrive as that endpoint's."""

from __future__ import annotations

import ipaddress
import socket

from halyard.controlplane.arm.paths import ResourceId
from halyard.core.errors import InvalidRequest
from halyard.core.settings import Settings

ENDPOINT_TYPE = "microsoft.network/privateendpoints"


def parse_listener(text: str) -> tuple[str, int, str]:
    """``HOST:PORT=ENDPOINT_ID`` → (host, port, endpoint id); ValueError naming what is wrong."""
    address, sep, endpoint = text.partition("=")
    host, colon, port_text = address.rpartition(":")
    if not sep or not colon or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"endpoint listener {text[:200]!r} is not HOST:PORT=ENDPOINT_RESOURCE_ID")
    ipaddress.ip_address(host.strip("[]"))  # an address to bind, not a name
    try:
        rid = ResourceId.parse(endpoint)
    except InvalidRequest:
        rid = None
    if rid is None or rid.full_type.lower() != ENDPOINT_TYPE:
        raise ValueError(f"endpoint listener {text[:200]!r}: {endpoint[:200]!r} is not a private endpoint's id")
    return host.strip("[]"), int(port_text), str(rid)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` with an IP address to bind (the endpoint ingress)."""
    host, colon, port = text.rpartition(":")
    if not colon or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{text[:200]!r} is not HOST:PORT")
    ipaddress.ip_address(host.strip("[]"))
    return host.strip("[]"), int(port)


def endpoint_listeners(settings: Settings) -> list[tuple[str, int, str]]:
    return [parse_listener(x) for x in settings.endpoint_listeners]


def bound_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
