"""HTTP CONNECT, both ends, free of I/O: the request a client sends a forward proxy (basic auth from the proxy URL,
or a bearer token for Halyard's gateway), the proxy's answer parsed, a CONNECT request parsed on the proxy's side,
and ``--proxy-skip-range`` (CIDRs, hosts, ``.domain`` suffixes) decided.

Used by ``dial`` (the agents' tunnel), arc-proxy (the agents' forward proxy) and the gateway service.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from halyard.tunnel.http1 import Head, HeadError, has_header_injection, parse_head, request_head, split_head

MAX_ANSWER = 16 * 1024
# Inside the TLS to a gateway, a tunnel is asked for as a websocket-style upgrade, not a second CONNECT: a
# TLS-inspecting proxy parses what it decrypts, and proxies are told to let websockets through (the seed says so);
# after the 101 the bytes are opaque to it.
GATEWAY_PATH = "/gw/v1/connect"
GATEWAY_UPGRADE = "websocket"
DESTINATION_FIELD = "Halyard-Destination"
# An onboarding cluster (no agent token yet) proves its onboarding key instead: a proof JWT (as to his) whose
# audience names the gateway and whose ``csr`` claim is this constant.
GATEWAY_PROOF = "gateway-tunnel"


def gateway_audience(gateway_name: str) -> str:
    return f"https://{gateway_name.lower()}/gw"


@dataclass(frozen=True)
class ProxyUrl:
    """An HTTP proxy: where it listens and the basic-auth credentials its URL carries (if any)."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> ProxyUrl:
        parts = urlsplit(url if "://" in url else f"http://{url}")
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"a proxy URL is http://[user:password@]host:port, not {redact(url)!r}")
        user = unquote(parts.username) if parts.username is not None else None
        password = unquote(parts.password) if parts.password is not None else None
        return cls(parts.hostname, parts.port or 3128, user, password)

    def authorization(self) -> str | None:
        """The ``Proxy-Authorization`` value for the URL's credentials (basic), or None."""
        if self.username is None:
            return None
        raw = f"{self.username}:{self.password or ''}".encode()
        return "Basic " + base64.b64encode(raw).decode()


def redact(url: str) -> str:
    parts = urlsplit(url)
    return url.replace(f":{parts.password}@", ":***@", 1) if parts.password else url


def authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_request(host: str, port: int, *, authorization: str | None = None) -> bytes:
    target = authority(host, port)
    fields = [("Host", target)]
    if authorization:
        if has_header_injection(authorization):
            raise ValueError("a credential with a line break")
        fields.append(("Proxy-Authorization", authorization))
    return request_head("CONNECT", target, fields)


@dataclass(frozen=True)
class Established:
    early: bytes  # what the proxy sent after its 2xx head (nothing, normally: the tunnel's far end speaks next)


@dataclass(frozen=True)
class ProxyRefused:
    status: int  # 0: the proxy closed or answered something that is not HTTP
    reason: str

    def line(self) -> str:
        return f"the proxy refused the tunnel: {self.status} {self.reason}".strip()


class ConnectAnswer:
    """Reads a proxy's answer to CONNECT: fed bytes, it returns None until it knows."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def receive(self, data: bytes) -> Established | ProxyRefused | None:
        self._buffer += data
        try:
            split = split_head(self._buffer, MAX_ANSWER)
            if split is None:
                return None
            head = parse_head(split[0], response=True)
        except HeadError as exc:
            return ProxyRefused(0, str(exc))
        if 200 <= head.status < 300:
            return Established(split[1])
        return ProxyRefused(head.status, head.start[2])

    def receive_eof(self) -> ProxyRefused:
        return ProxyRefused(0, "the proxy closed the connection before answering")


@dataclass(frozen=True)
class ConnectTarget:
    host: str
    port: int
    head: Head

    @property
    def upgrade(self) -> bool:
        """Asked for as a gateway upgrade (answer 101) rather than a CONNECT (answer 200)."""
        return self.head.method == "GET"

    def credential(self, scheme: str) -> str | None:
        """The credential of ``scheme`` (``Bearer``, ``Basic``): ``Proxy-Authorization`` of a CONNECT,
        ``Authorization`` of a gateway upgrade; or None."""
        value = self.head.get("authorization" if self.upgrade else "proxy-authorization")
        kind, _, credential = value.partition(" ")
        return credential.strip() or None if kind.lower() == scheme.lower() else None


def parse_connect(head: bytes, *, gateway: bool = False) -> ConnectTarget:
    """A CONNECT request's target (with ``gateway``, also a gateway upgrade's: ``GET GATEWAY_PATH``, ``Upgrade:
    websocket``, the destination in ``Halyard-Destination``); HeadError (405 another method, 400 a bad target)."""
    parsed = parse_head(head)
    if gateway and parsed.method == "GET" and parsed.target.split("?")[0] == GATEWAY_PATH:
        if GATEWAY_UPGRADE not in parsed.tokens("upgrade"):
            raise HeadError(f"a gateway tunnel asks for 'Upgrade: {GATEWAY_UPGRADE}'", 400)
        return _target(parsed.get(DESTINATION_FIELD.lower()), parsed)
    if parsed.method != "CONNECT":
        raise HeadError(f"only CONNECT is served here, not {parsed.method[:16]}", 405)
    return _target(parsed.target, parsed)


def _target(text: str, parsed: Head) -> ConnectTarget:
    host, sep, port = text.rpartition(":")
    bracketed = host.startswith("[") and host.endswith("]")
    host = host[1:-1] if bracketed else host
    # The length first: int() of thousands of digits raises (Python's 4,300-digit limit) instead of answering 400.
    if not sep or not port.isdigit() or len(port) > 5 or not 0 < int(port) < 65536 or not _valid_host(host, bracketed):
        raise HeadError("a CONNECT target is host:port", 400)
    return ConnectTarget(host.lower(), int(port), parsed)


_HOST_NAME = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_.-]{0,252})$")


def _valid_host(host: str, bracketed: bool) -> bool:
    """A DNS name or an IPv4 address, or an IPv6 address in brackets: nothing a later log line or dial could
    misread (brackets, slashes, spaces, control or non-ASCII characters)."""
    if bracketed:
        try:
            return ipaddress.ip_address(host).version == 6
        except ValueError:
            return False
    return bool(_HOST_NAME.match(host))


class SkipRange:
    """``--proxy-skip-range``: destinations reached directly, never through the proxy. Entries are CIDRs or
    addresses, host names (exact), and suffixes starting with a dot (``.svc`` matches ``a.ns.svc``); ``*`` all."""

    def __init__(self, entries: Sequence[str]) -> None:
        self.networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
        self.hosts: set[str] = set()
        self.suffixes: list[str] = []
        self.everything = False
        for raw in entries:
            entry = raw.strip().lower()
            if not entry:
                continue
            if entry == "*":
                self.everything = True
            elif entry.startswith("."):
                self.suffixes.append(entry)
            else:
                try:
                    self.networks.append(ipaddress.ip_network(entry, strict=False))
                except ValueError:
                    self.hosts.add(entry.rsplit(":", 1)[0] if entry.count(":") == 1 else entry)

    @classmethod
    def parse(cls, text: str | None) -> SkipRange:
        return cls((text or "").split(","))

    def skips(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        if self.everything or host in self.hosts:
            return True
        if any(host.endswith(s) or host == s[1:] for s in self.suffixes):
            return True
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in network for network in self.networks)
