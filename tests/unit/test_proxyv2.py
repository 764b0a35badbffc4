"""PROXY protocol v2 headers, pure: round trip, incomplete input, and what is refused."""

from __future__ import annotations

import pytest

from halyard.core.proxyv2 import SIGNATURE, TLV_ENDPOINT, encode, parse, wanted

PE = b"/subscriptions/s/resourceGroups/g/providers/Microsoft.Network/privateEndpoints/e"


def test_round_trip_with_the_endpoint_tlv_and_the_rest_left() -> None:
    wire = encode(("10.1.0.9", 40000), ("10.1.0.4", 443), {TLV_ENDPOINT: PE})
    parsed = parse(wire + b"\x16\x03\x01")
    assert parsed is not None
    header, used = parsed
    assert used == len(wire) and header.source == ("10.1.0.9", 40000) and header.destination == ("10.1.0.4", 443)
    assert header.tlvs == {TLV_ENDPOINT: PE}
    v6 = parse(encode(("::1", 1), ("::2", 2)))
    assert v6 is not None and v6[0].source == ("::1", 1)


def test_incomplete_headers_wait_for_more() -> None:
    wire = encode(("10.1.0.9", 1), ("10.1.0.4", 2), {TLV_ENDPOINT: PE})
    for cut in (0, 5, 12, 15, 16, len(wire) - 1):
        assert parse(wire[:cut]) is None


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n\r\n",  # a plain request is not read as anything else
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x00\x00\x00\x00\x00",  # a TLS ClientHello
        SIGNATURE + b"\x31\x11\x00\x0c" + b"\x00" * 12,  # version 3
        SIGNATURE + b"\x21\x31\x00\x0c" + b"\x00" * 12,  # a UDP/unix family
        SIGNATURE + b"\x21\x11\x00\x04" + b"\x00" * 4,  # address block too short
        SIGNATURE + b"\x21\x11\xff\xff",  # longer than allowed
        SIGNATURE + b"\x21\x11\x00\x0f" + b"\x00" * 12 + b"\xe0\x00\x09",  # a TLV cut short
    ],
)
def test_what_is_not_a_header_is_refused(data: bytes) -> None:
    with pytest.raises(ValueError):
        parse(data)


def test_wanted_says_how_long_the_header_is_as_soon_as_its_fixed_part_is_in() -> None:
    wire = encode(("10.1.0.9", 1), ("10.1.0.4", 2), {TLV_ENDPOINT: PE})
    assert [wanted(wire[:cut]) for cut in (0, 5, 15)] == [16, 16, 16]
    assert wanted(wire[:16]) == wanted(wire) == wanted(wire + b"\x16\x03\x01") == len(wire)
    for bad in (b"GET ", SIGNATURE[:11] + b"X", SIGNATURE + b"\x21\x11\xff\xff"):
        with pytest.raises(ValueError):
            wanted(bad)
