"""The DNS answers of ``halyard dns``, pure: queries built and read with dnspython, as a resolver sends them."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.rcode
import dns.rdatatype

from halyard.controlplane.dns.answers import Zones, answer

ZONES = Zones.build(
    ["privatelink.halyard.local"],
    [("s1.his.privatelink.halyard.local", ["10.1.0.4"], 10), ("s1.dp.privatelink.halyard.local", ["10.1.0.4"], 10)],
)


def ask(name: str, rdtype: str = "A", zones: Zones = ZONES) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype)
    wire = answer(query.to_wire(), zones)
    assert wire is not None
    response = dns.message.from_wire(wire)
    assert response.id == query.id
    return response


def test_a_record_answered_authoritatively() -> None:
    r = ask("S1.His.privatelink.halyard.local")  # names are case-insensitive
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA and not r.flags & dns.flags.RA
    assert [str(x) for x in r.answer[0]] == ["10.1.0.4"] and r.answer[0].ttl == 10


def test_missing_name_is_nxdomain_with_the_soa_and_other_types_no_data() -> None:
    r = ask("nope.privatelink.halyard.local")
    assert r.rcode() == dns.rcode.NXDOMAIN and r.authority[0].rdtype == dns.rdatatype.SOA
    r = ask("s1.his.privatelink.halyard.local", "AAAA")
    assert r.rcode() == dns.rcode.NOERROR and not r.answer and r.authority
    r = ask("his.privatelink.halyard.local")  # an empty non-terminal
    assert r.rcode() == dns.rcode.NOERROR and not r.answer
    r = ask("privatelink.halyard.local", "SOA")
    assert r.answer[0].rdtype == dns.rdatatype.SOA


def test_names_outside_the_zones_are_refused() -> None:
    assert ask("example.com").rcode() == dns.rcode.REFUSED
    assert ask("halyard.local").rcode() == dns.rcode.REFUSED
    assert ask("x.privatelink.halyard.local", zones=Zones()).rcode() == dns.rcode.REFUSED


def test_garbage_is_dropped_or_formerr() -> None:
    assert answer(b"\x01", ZONES) is None
    wire = answer(b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\xff\xff", ZONES)
    assert wire is not None and wire[:2] == b"\x12\x34" and wire[3] & 0x0F == dns.rcode.FORMERR
