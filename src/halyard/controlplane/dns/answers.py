"""DNS answers from a snapshot of the private zones, pure: a query's wire bytes in, the response's out.

Parsing and encoding are dnspython's (a maintained library: compression, EDNS, malformed input). Halyard is
authoritative for the zones it holds: names in them are answered with AA set (A records, or NXDOMAIN / no data with
the zone's SOA), and every other name is REFUSED, as an authoritative-only server does (it never recurses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset

SOA_TTL = 10  # the negative-answer TTL: a record written now is seen within seconds


@dataclass(frozen=True)
class Zones:
    """The zones served and their A records: absolute lower-case names (``a.b.`` form) → (addresses, TTL)."""

    zones: tuple[str, ...] = ()
    records: Mapping[str, tuple[tuple[str, ...], int]] = field(default_factory=dict)

    @classmethod
    def build(cls, zones: Iterable[str], records: Iterable[tuple[str, Iterable[str], int]]) -> Zones:
        merged: dict[str, tuple[tuple[str, ...], int]] = {}
        for name, addresses, ttl in records:
            key = _absolute(name)
            old, old_ttl = merged.get(key, ((), ttl))
            merged[key] = (tuple(dict.fromkeys((*old, *addresses))), min(ttl, old_ttl))
        return cls(tuple(sorted({_absolute(z) for z in zones}, key=len, reverse=True)), merged)

    def zone_of(self, name: str) -> str | None:
        """The longest zone holding ``name`` (absolute, lower case)."""
        for zone in self.zones:
            if name == zone or name.endswith("." + zone):
                return zone
        return None


def _absolute(name: str) -> str:
    name = name.lower()
    return name if name.endswith(".") else name + "."


def _soa(zone: str) -> dns.rrset.RRset:
    return dns.rrset.from_text(zone, SOA_TTL, "IN", "SOA", f"ns.{zone} hostmaster.{zone} 1 3600 600 86400 {SOA_TTL}")


def answer(wire: bytes, zones: Zones, *, max_size: int = 65535) -> bytes | None:
    """The response to one query (None: not even a header to answer to, so drop it)."""
    try:
        query = dns.message.from_wire(wire)
    except dns.message.ShortHeader:
        return None
    except dns.exception.DNSException:
        return _formerr(wire)
    response = dns.message.make_response(query)
    response.flags &= ~dns.flags.RA
    if query.opcode() != dns.opcode.QUERY or len(query.question) != 1:
        response.set_rcode(dns.rcode.NOTIMP if query.opcode() != dns.opcode.QUERY else dns.rcode.FORMERR)
        return response.to_wire()
    question = query.question[0]
    name = question.name.to_text().lower()
    zone = zones.zone_of(name)
    if zone is None or question.rdclass != dns.rdataclass.IN:
        response.set_rcode(dns.rcode.REFUSED)
        return response.to_wire()
    response.flags |= dns.flags.AA
    found = zones.records.get(name)
    if found is not None and question.rdtype in (dns.rdatatype.A, dns.rdatatype.ANY):
        addresses, ttl = found
        response.answer.append(dns.rrset.from_text_list(question.name, ttl, "IN", "A", list(addresses)))
    elif name == zone and question.rdtype == dns.rdatatype.SOA:
        response.answer.append(_soa(zone))
    else:
        if found is None and name != zone and not _has_below(zones, name):
            response.set_rcode(dns.rcode.NXDOMAIN)
        response.authority.append(_soa(zone))
    limit = max_size
    if query.edns >= 0:
        limit = min(max_size, max(512, query.payload))
    try:
        return response.to_wire(max_size=limit)
    except dns.exception.TooBig:
        response.answer.clear()
        response.flags |= dns.flags.TC
        return response.to_wire()


def _has_below(zones: Zones, name: str) -> bool:
    """An empty non-terminal (``his.zone.`` when only ``x.his.zone.`` exists) is NODATA, not NXDOMAIN."""
    return any(key.endswith("." + name) for key in zones.records)


def _formerr(wire: bytes) -> bytes | None:
    if len(wire) < 12:
        return None
    # The query id and opcode echoed, QR set, RCODE FORMERR, no sections: all a malformed query can be told.
    flags = 0x8000 | (wire[2] & 0x78) << 8 | dns.rcode.FORMERR
    return wire[:2] + flags.to_bytes(2, "big") + b"\x00" * 8
