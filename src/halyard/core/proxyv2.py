"""PROXY protocol version 2 (HAProxy's spec), pure: the binary header a forwarder sends before a connection's
bytes, with the original addresses and TLVs. Halyard's private endpoint forwarder names its endpoint in TLV
``TLV_ENDPOINT`` (as Azure Private Link names its link in ``0xEE``); who may send one is decision 008."""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
VERSION_COMMAND_PROXY = 0x21  # version 2, PROXY
VERSION_COMMAND_LOCAL = 0x20
FAMILY_TCP4 = 0x11
FAMILY_TCP6 = 0x21
TLV_ENDPOINT = 0xE0  # the first of the custom range (0xE0-0xEF)
MAX_LENGTH = 4096  # of the address block and TLVs: far beyond an endpoint id, small enough to buffer


@dataclass(frozen=True)
class Header:
    source: tuple[str, int] | None  # None for a LOCAL command
    destination: tuple[str, int] | None
    tlvs: dict[int, bytes] = field(default_factory=dict)


def encode(source: tuple[str, int], destination: tuple[str, int], tlvs: dict[int, bytes] | None = None) -> bytes:
    src, dst = ipaddress.ip_address(source[0]), ipaddress.ip_address(destination[0])
    if src.version != dst.version:
        raise ValueError("source and destination must be of one address family")
    family = FAMILY_TCP4 if src.version == 4 else FAMILY_TCP6
    body = src.packed + dst.packed + struct.pack("!HH", source[1], destination[1])
    for kind, value in (tlvs or {}).items():
        body += struct.pack("!BH", kind, len(value)) + value
    if len(body) > MAX_LENGTH:
        raise ValueError("PROXY header too long")
    return SIGNATURE + struct.pack("!BBH", VERSION_COMMAND_PROXY, family, len(body)) + body


def wanted(data: bytes) -> int:
    """How many bytes the header at the start of ``data`` has in all, as far as ``data`` tells: 16 (its fixed
    part) until those are in, then 16 plus the length they give. Lets a reader take exactly the header and leave
    what follows unread; ValueError, as :func:`parse`, for what cannot start one."""
    if len(data) < 16:
        if not SIGNATURE.startswith(data[: len(SIGNATURE)]):
            raise ValueError("not a PROXY protocol v2 header")
        return 16
    if data[:12] != SIGNATURE:
        raise ValueError("not a PROXY protocol v2 header")
    length = int.from_bytes(data[14:16], "big")
    if length > MAX_LENGTH:
        raise ValueError("PROXY header too long")
    return 16 + length


def parse(data: bytes) -> tuple[Header, int] | None:
    """The header at the start of ``data`` and its length; None while incomplete; ValueError when ``data`` is not
    a valid PROXY v2 header (a connection that does not start with one is refused, not read as something else)."""
    if len(data) < 16:
        if not SIGNATURE.startswith(data[: len(SIGNATURE)]):
            raise ValueError("not a PROXY protocol v2 header")
        return None
    if data[:12] != SIGNATURE:
        raise ValueError("not a PROXY protocol v2 header")
    version_command, family, length = struct.unpack("!BBH", data[12:16])
    if version_command not in (VERSION_COMMAND_PROXY, VERSION_COMMAND_LOCAL):
        raise ValueError("unsupported PROXY protocol version or command")
    if length > MAX_LENGTH:
        raise ValueError("PROXY header too long")
    if len(data) < 16 + length:
        return None
    body = data[16 : 16 + length]
    if version_command == VERSION_COMMAND_LOCAL:
        return Header(None, None, _tlvs(b"")), 16 + length
    if family == FAMILY_TCP4:
        size = 4
    elif family == FAMILY_TCP6:
        size = 16
    else:
        raise ValueError("unsupported PROXY address family")
    if len(body) < 2 * size + 4:
        raise ValueError("PROXY address block too short")
    src = str(ipaddress.ip_address(body[:size]))
    dst = str(ipaddress.ip_address(body[size : 2 * size]))
    sport, dport = struct.unpack("!HH", body[2 * size : 2 * size + 4])
    return Header((src, sport), (dst, dport), _tlvs(body[2 * size + 4 :])), 16 + length


def _tlvs(data: bytes) -> dict[int, bytes]:
    tlvs: dict[int, bytes] = {}
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise ValueError("truncated PROXY TLV")
        kind, length = struct.unpack("!BH", data[offset : offset + 3])
        value = data[offset + 3 : offset + 3 + length]
        if len(value) != length:
            raise ValueError("truncated PROXY TLV")
        if kind in tlvs:
            raise ValueError("repeated PROXY TLV")
        tlvs[kind] = value
        offset += 3 + length
    return tlvs
