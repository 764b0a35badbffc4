"""The sans-I/O CONNECT pieces: requests, answers fed in pieces, targets parsed, the skip range decided."""

from __future__ import annotations

import base64

import pytest

from halyard.tunnel.http1 import HeadError
from halyard.tunnel.proxyconnect import (
    ConnectAnswer,
    Established,
    ProxyRefused,
    ProxyUrl,
    SkipRange,
    connect_request,
    parse_connect,
    redact,
)


def test_proxy_url_credentials_become_basic_auth_and_are_redacted() -> None:
    proxy = ProxyUrl.parse("http://al%40ice:s%3Acret@proxy.corp:8080")
    assert (proxy.host, proxy.port) == ("proxy.corp", 8080)
    assert proxy.authorization() == "Basic " + base64.b64encode(b"al@ice:s:cret").decode()
    assert ProxyUrl.parse("proxy.corp").port == 3128 and ProxyUrl.parse("http://p:1").authorization() is None
    assert redact("http://u:pw@p:1") == "http://u:***@p:1"
    with pytest.raises(ValueError, match="http://"):
        ProxyUrl.parse("socks5://p:1")


def test_connect_request_and_an_answer_in_pieces() -> None:
    request = connect_request("gw.example", 443, authorization="Bearer t")
    assert request.startswith(b"CONNECT gw.example:443 HTTP/1.1\r\n") and b"Proxy-Authorization: Bearer t" in request
    assert connect_request("::1", 8443).startswith(b"CONNECT [::1]:8443 ")
    with pytest.raises(ValueError):
        connect_request("h", 1, authorization="Basic x\r\nEvil: 1")
    answer = ConnectAnswer()
    assert answer.receive(b"HTTP/1.1 200 Connection est") is None
    assert answer.receive(b"ablished\r\n\r\nearly") == Established(b"early")
    refused = ConnectAnswer().receive(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n")
    assert isinstance(refused, ProxyRefused) and refused.status == 407
    assert ConnectAnswer().receive(b"SSH-2.0-OpenSSH\r\n\r\n") == ProxyRefused(
        0, "malformed start line 'SSH-2.0-OpenSSH'"
    )
    assert ConnectAnswer().receive_eof().status == 0


def test_parse_connect_targets() -> None:
    target = parse_connect(b"CONNECT Example.COM:443 HTTP/1.1\r\nProxy-Authorization: Bearer abc\r\n\r\n")
    assert (target.host, target.port, target.credential("bearer"), target.credential("Basic")) == (
        "example.com", 443, "abc", None,
    )  # fmt: skip
    assert parse_connect(b"CONNECT [::1]:80 HTTP/1.1\r\n\r\n").host == "::1"
    for bad, status in (
        (b"GET / HTTP/1.1\r\n\r\n", 405),
        (b"CONNECT host HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host:99999 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT :443 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT host:" + b"9" * 5000 + b" HTTP/1.1\r\n\r\n", 400),  # int() of it would raise ValueError
        (b"CONNECT [::1:443 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT [example.com]:443 HTTP/1.1\r\n\r\n", 400),
        (b"CONNECT ::1:443 HTTP/1.1\r\n\r\n", 400),  # IPv6 in brackets only
        (b"CONNECT a/b:443 HTTP/1.1\r\n\r\n", 400),
        ("CONNECT caf\u00e9.example:443 HTTP/1.1\r\n\r\n".encode(), 400),
    ):
        with pytest.raises(HeadError) as caught:
            parse_connect(bad)
        assert caught.value.status == status


def test_skip_range_as_the_seed_writes_it() -> None:
    skip = SkipRange.parse("10.0.0.0/16,kubernetes.default.svc,.svc.cluster.local,.svc, 192.168.1.7")
    assert skip.skips("10.0.3.4") and skip.skips("192.168.1.7") and not skip.skips("10.1.0.1")
    assert skip.skips("kubernetes.default.svc") and skip.skips("api.ns.svc") and skip.skips("a.b.svc.cluster.local")
    assert skip.skips("svc")  # the suffix's own name
    assert not skip.skips("gw.example.com") and not skip.skips("notsvc")
    assert SkipRange.parse("*").skips("anything") and not SkipRange.parse(None).skips("x")
