"""Address plans, pure: prefixes parsed and checked, a subnet inside its network, the next free address."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from halyard.core.errors import InvalidRequest

# Azure keeps the first four addresses of a subnet and its last; Halyard keeps the same so plans carry over.
RESERVED_LOW = 4


def network(prefix: str, target: str) -> ipaddress.IPv4Network:
    """An IPv4 CIDR prefix such as ``10.0.0.0/24``, or a 400 naming the field."""
    try:
        parsed = ipaddress.ip_network(prefix, strict=True)
    except ValueError:
        raise InvalidRequest(
            f"'{prefix[:64]}' is not a valid IPv4 address prefix (CIDR, host bits zero, e.g. 10.0.0.0/24).",
            code="InvalidAddressPrefixFormat",
            target=target,
        ) from None
    if not isinstance(parsed, ipaddress.IPv4Network) or parsed.prefixlen > 29:
        raise InvalidRequest(
            f"Address prefix '{prefix}' must be an IPv4 prefix of /29 or larger.",
            code="InvalidAddressPrefix",
            target=target,
        )
    return parsed


def within(inner: ipaddress.IPv4Network, outer: Iterable[ipaddress.IPv4Network]) -> bool:
    return any(inner.subnet_of(o) for o in outer)


def next_free(subnet: ipaddress.IPv4Network, used: Iterable[str]) -> str | None:
    """The lowest usable address of ``subnet`` not in ``used`` (None when the subnet is full)."""
    taken = set(used)
    hosts = list(subnet.hosts())
    for address in hosts[RESERVED_LOW - 1 : -1]:  # .0 is not a host; .1-.3 and the last usable one are kept
        if str(address) not in taken:
            return str(address)
    return None
