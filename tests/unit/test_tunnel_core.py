"""The tunnel's pure parts: control frames, HTTP heads, request rewriting, the relay's path rule and the listener's
first-line sniff, without sockets."""

from __future__ import annotations

import pytest

from halyard.controlplane.connections import _targets
from halyard.controlplane.relay.service import user_target
from halyard.tunnel.frames import (
    MAX_PAYLOAD,
    Frame,
    FrameDecoder,
    FrameError,
    FrameType,
    header_frame,
    open_frame,
    parse_header,
)
from halyard.tunnel.handshake import Opened, Refused, UpgradeAnswer, upgrade_request
from halyard.tunnel.http1 import HeadError, parse_head, split_head
from halyard.tunnel.protocol import STREAM_UPGRADE
from halyard.tunnel.rewrite import RequestRewriter, RewriteRefused

pytestmark = pytest.mark.unit


def test_frames_round_trip_byte_by_byte_and_leave_what_follows() -> None:
    wire = (
        open_frame(b"s" * 16).encode() + Frame(FrameType.PING, b"12345678").encode() + header_frame({"a": 1}).encode()
    )
    decoder = FrameDecoder()
    frames = []
    for i in range(len(wire)):
        frames += decoder.frames(wire[i : i + 1])
    assert [f.type for f in frames] == [FrameType.OPEN, FrameType.PING, FrameType.HEADER]
    assert frames[0].payload == b"s" * 16 and parse_header(frames[2]) == {"a": 1}
    decoder.feed(header_frame({"v": 1}).encode() + b"GET / HTTP/1.1\r\n")
    assert parse_header(decoder.next()) == {"v": 1}  # type: ignore[arg-type]
    assert decoder.rest() == b"GET / HTTP/1.1\r\n"


@pytest.mark.parametrize(
    ("wire", "error"),
    [
        (bytes([9, 0, 0]), "unknown frame type 9"),
        (bytes([1]) + (MAX_PAYLOAD + 1).to_bytes(2, "big"), "exceeds"),
    ],
)
def test_malformed_frames_are_refused(wire: bytes, error: str) -> None:
    with pytest.raises(FrameError, match=error):
        FrameDecoder().frames(wire)


def test_a_header_must_be_a_json_object() -> None:
    with pytest.raises(FrameError):
        parse_header(Frame(FrameType.HEADER, b"[1]"))
    with pytest.raises(FrameError):
        parse_header(Frame(FrameType.OPEN, b"x" * 16))
    with pytest.raises(FrameError):
        Frame(FrameType.HEADER, b"x" * (MAX_PAYLOAD + 1)).encode()


def test_heads_are_split_parsed_and_bounded() -> None:
    assert split_head(b"GET / HTTP/1.1\r\nHost: a") is None
    head, rest = split_head(b"GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, Upgrade\r\n\r\nbody")  # type: ignore[misc]
    parsed = parse_head(head)
    assert (parsed.method, parsed.target, parsed.get("HOST"), rest) == ("GET", "/x", "a", b"body")
    assert parsed.tokens("connection") == {"keep-alive", "upgrade"} and parsed.raw == head
    assert parse_head(b"HTTP/1.1 101 Switching Protocols\r\n\r\n", response=True).status == 101
    with pytest.raises(HeadError) as too_big:
        split_head(b"GET / HTTP/1.1\r\nX: " + b"a" * 70000, limit=65536)
    assert too_big.value.status == 431
    for bad in (
        b"GET\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"G3T / HTTP/1.1\r\n\r\n",
    ):
        with pytest.raises(HeadError):
            parse_head(bad)


def _rewriter(prefix: str = "/relay/v1/c") -> RequestRewriter:
    def rewrite(method: str, target: str, fields: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        if not target.startswith(prefix):
            raise RewriteRefused(421, "MisdirectedRequest", "another cluster")
        return target[len(prefix) :] or "/", [(k, v) for k, v in fields if k.lower() != "authorization"]

    return RequestRewriter(rewrite)


def test_requests_are_rewritten_one_after_another_with_bodies_and_chunks_intact() -> None:
    r = _rewriter()
    wire = (
        b"GET /relay/v1/c/api HTTP/1.1\r\nAuthorization: Bearer x\r\nHost: h\r\n\r\n"
        b"POST /relay/v1/c/api/v1/x HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        b"PUT /relay/v1/c/y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    )
    out = b"".join(r.feed(wire[i : i + 7]) for i in range(0, len(wire), 7))
    assert out.startswith(b"GET /api HTTP/1.1\r\nHost: h\r\n\r\nPOST /api/v1/x HTTP/1.1\r\n")
    assert b"Authorization" not in out and b"hello" in out
    assert out.endswith(b"PUT /y HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n")
    assert r.requests == 3


def test_after_an_upgrade_bytes_pass_untouched() -> None:
    r = _rewriter()
    out = r.feed(
        b"POST /relay/v1/c/exec HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: SPDY/3.1\r\n\r\n\x80\x03\x00\x01GET /x"
    )
    assert out.startswith(b"POST /exec HTTP/1.1\r\n") and out.endswith(b"\r\n\r\n\x80\x03\x00\x01GET /x")
    assert r.upgraded and r.feed(b"GET /relay/v1/other HTTP/1.1\r\n") == b"GET /relay/v1/other HTTP/1.1\r\n"


def test_a_request_for_another_prefix_or_a_malformed_one_is_refused() -> None:
    with pytest.raises(RewriteRefused) as refused:
        _rewriter().feed(b"GET /relay/v1/other/api HTTP/1.1\r\n\r\n")
    assert refused.value.status == 421
    with pytest.raises(RewriteRefused) as malformed:
        _rewriter().feed(b"GET /relay/v1/c HTTP/1.1\r\nContent-Length: x\r\n\r\n")
    assert malformed.value.status == 400


def test_the_relay_reads_a_cluster_from_its_path_in_any_case() -> None:
    cid = "/subscriptions/s/resourceGroups/g/providers/Microsoft.Kubernetes/connectedClusters/n"
    assert user_target(f"/relay/v1{cid}/api/v1/pods") == user_target(f"/relay/v1{cid}")
    target = user_target(f"/relay/v1{cid.lower()}/version")
    assert target is not None and target.cluster_id == cid.lower() and target.prefix == f"/relay/v1{cid.lower()}"
    for bad in ("/relay/v1/subscriptions/s", f"/relay/v1{cid.replace('Kubernetes', 'Compute')}", "/relay/v1//x"):
        assert user_target(bad) is None


@pytest.mark.parametrize(
    ("start", "verdict"),
    [
        (b"GET /relay/v1/x HTTP/1.1", True),
        (b"POST /relay/", True),
        (b"GET /rel", None),
        (b"GET", None),
        (b"GET /subscriptions/x", False),
        (b"GET /relax/", False),
        (b"X" * 20, False),
    ],
)
def test_the_listener_knows_a_relay_connection_from_its_first_bytes(start: bytes, verdict: bool | None) -> None:
    assert _targets(start, b"/relay/") is verdict


def test_stream_open_request_is_the_relay_contract() -> None:
    fields = [("Authorization", "Bearer TOKEN"), ("Halyard-Authentication-Method", "AAD")]
    assert upgrade_request("/relay/v1/c?x=1", "relay.example:8443", "halyard-stream/1", fields) == (
        b"GET /relay/v1/c?x=1 HTTP/1.1\r\nHost: relay.example:8443\r\nAuthorization: Bearer TOKEN\r\n"
        b"Halyard-Authentication-Method: AAD\r\nConnection: Upgrade\r\nUpgrade: halyard-stream/1\r\n\r\n"
    )


def test_switching_protocols_in_pieces_keeps_the_bytes_after_the_head() -> None:
    handshake = UpgradeAnswer(STREAM_UPGRADE)
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: halyard-stream/1\r\nConnection: Upgrade\r\n\r\nHTTP/1.1 200"
    for i in range(len(answer) - 20):
        assert handshake.receive(answer[i : i + 1]) is None
    assert handshake.receive(answer[len(answer) - 20 :]) == Opened(b"HTTP/1.1 200")


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        (
            b'HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nContent-Length: 84\r\n\r\n'
            b'{"error":{"code":"FeatureDisabled","message":"Run enable-features --features x."}}  ',
            Refused(409, "FeatureDisabled", "Run enable-features --features x."),
        ),
        (b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n",
         Refused(503, "ServiceUnavailable", "The relay refused the stream: 503 Service Unavailable.")),
        (b"SSH-2.0-OpenSSH\r\n\r\n", Refused(502, "BadRelayResponse", "The relay answered 'SSH-2.0-OpenSSH', not HTTP/1.1.")),
        (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n",
         Refused(502, "BadRelayResponse", "The relay switched to 'websocket'.")),
    ],
)  # fmt: skip
def test_refusals_carry_the_arm_error(answer: bytes, expected: Refused) -> None:
    assert UpgradeAnswer(STREAM_UPGRADE).receive(answer) == expected


def test_a_refusal_without_length_is_read_to_the_end_and_a_silent_close_is_an_error() -> None:
    handshake = UpgradeAnswer(STREAM_UPGRADE)
    assert handshake.receive(b'HTTP/1.1 403 Forbidden\r\n\r\n{"error":{"code":"AuthorizationFailed",') is None
    assert handshake.receive(b'"message":"no"}}') is None
    assert handshake.receive_eof() == Refused(403, "AuthorizationFailed", "no")
    assert UpgradeAnswer(STREAM_UPGRADE).receive_eof().code == "BadRelayResponse"
    assert UpgradeAnswer(STREAM_UPGRADE).receive(b"x" * 70_000) == Refused(
        502, "BadRelayResponse", "The relay's answer has no end of headers."
    )
