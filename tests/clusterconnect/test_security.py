"""Who may open a stream is decided by the control plane before any byte reaches the cluster: every refused caller
gets its 401/403/404 from the relay, and the cluster's agent never even dials a data connection (counted)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from halyard.tunnel.dial import UpgradeRefused, dial
from halyard.tunnel.frames import FrameDecoder, FrameType, parse_header
from tests.api import agentcreds
from tests.clusterconnect.conftest import API, Connected, relay_metrics
from tests.clusterconnect.test_kubectl import principal, token_of

pytestmark = pytest.mark.e2e


def relay_get(cluster: Connected, token: str | None, cluster_id: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    return httpx.get(
        f"{cluster.server.url}/relay/v1{cluster_id or cluster.resource_id}/api/v1/namespaces",
        headers=headers,
        verify=cluster.server.ca,
        timeout=15,
    )


@pytest.fixture(scope="module")
def other(connected: Connected) -> Iterator[agentcreds.Agent]:
    """A second cluster of the same subscription (its identity, no agents running)."""
    connected.cli.group("cc-other")
    yield agentcreds.connect(connected.server, "cc-other", "other")


def test_refused_callers_get_their_answer_from_the_relay_and_the_cluster_sees_nothing(
    connected: Connected, other: agentcreds.Agent
) -> None:
    server = connected.server
    reader = principal(connected.cli, "cc-reader", "Reader", connected.resource_id)
    gone = principal(connected.cli, "cc-gone", "Contributor", connected.resource_id)
    gone_token = token_of(server, gone)
    connected.cli.ok("ad", "sp", "delete", "--id", gone["appId"])
    other_cluster_token = other_relay_token(connected, other)
    carried = connected.agent_metric("halyard_agent_streams_carried_total")
    opened = relay_metrics(server)
    cases: list[tuple[str, str | None, int, str]] = [
        ("no token", None, 401, "AuthenticationFailed"),
        ("not a token", "not-a-jwt", 401, "InvalidAuthenticationToken"),
        ("an agent token (the agent audience)", other.token, 401, "InvalidAuthenticationToken"),
        ("a relay token for another cluster", other_cluster_token, 403, "TokenForAnotherCluster"),
        ("a Reader of the cluster", token_of(server, reader), 403, "AuthorizationFailed"),
        ("a deleted principal", gone_token, 401, "InvalidAuthenticationToken"),
    ]
    for what, token, status, code in cases:
        r = relay_get(connected, token)
        assert (r.status_code, r.json()["error"]["code"]) == (status, code), f"{what}: {r.text}"
    assert relay_get(connected, None).headers["WWW-Authenticate"].startswith("Bearer")
    assert connected.agent_metric("halyard_agent_streams_carried_total") == carried
    assert relay_metrics(server) == opened
    # And the admin, for contrast, reaches it.
    assert relay_get(connected, server.token()).status_code == 200


def other_relay_token(connected: Connected, other: agentcreds.Agent) -> str:
    """A relay token the admin obtained for the other cluster (listClusterUserCredential of that cluster)."""
    with connected.server.client() as c:
        r = c.post(f"{other.path}/listClusterUserCredential", params=API,
                   json={"authenticationMethod": "AAD", "clientProxy": True})  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["hybridConnectionConfig"]["token"])


def test_unknown_and_unreachable_clusters_fail_at_once_with_what_to_do(connected: Connected) -> None:
    token = connected.server.token()
    missing = connected.resource_id.rsplit("/", 1)[0] + "/missing"
    r = relay_get(connected, token, missing)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "ResourceNotFound")
    connected.cli.group("cc-idle")
    idle = agentcreds.connect(connected.server, "cc-idle", "idle")  # onboarded, no agent has ever beaten
    started = time.monotonic()
    r = relay_get(connected, token, idle.path)
    assert (r.status_code, r.json()["error"]["code"]) == (503, "ClusterNotConnected"), r.text
    assert "is Connecting (last heartbeat: never)" in r.json()["error"]["message"]
    assert time.monotonic() - started < 5


async def _register_fake_tunnel(connected: Connected, agent: agentcreds.Agent) -> Any:
    return await dial(
        f"{connected.server.url}/relay/v1/tunnel",
        upgrade="halyard-tunnel/1",
        fields=[("Authorization", f"Bearer {agent.token}")],
        ssl_context=_tls(connected),
    )


def _tls(connected: Connected) -> Any:
    import ssl

    return ssl.create_default_context(cafile=connected.server.ca)


def test_only_the_streams_cluster_can_take_its_data_connection(connected: Connected, other: agentcreds.Agent) -> None:
    """A tunnel registered with cluster X's identity is X's alone; a stream for X cannot be taken by cluster Y's
    agent even when Y learns the stream's id, and what X's agent receives is a one-stream assertion for X."""
    intruder = agentcreds.connect(connected.server, "cc-other", "intruder")

    async def scenario() -> None:
        tunnel = await _register_fake_tunnel(connected, other)
        reader = _Reader()
        tunnel.transport.set_protocol(reader)
        tunnel.transport.resume_reading()
        user = asyncio.create_task(asyncio.to_thread(relay_get, connected, connected.server.token(), other.path))
        frame = await asyncio.wait_for(reader.frame(), 10)
        assert frame.type is FrameType.OPEN
        stream = frame.payload.hex()
        url = f"{connected.server.url}/relay/v1/streams/{stream}"
        with pytest.raises(UpgradeRefused) as refused:
            await dial(url, upgrade="halyard-stream/1", fields=[("Authorization", f"Bearer {intruder.token}")],
                       ssl_context=_tls(connected))  # fmt: skip
        assert (refused.value.status, refused.value.code) == (404, "StreamNotFound")
        data = await dial(url, upgrade="halyard-stream/1", fields=[("Authorization", f"Bearer {other.token}")],
                          ssl_context=_tls(connected))  # fmt: skip
        header_reader = _Reader(first_only=True)
        data.transport.set_protocol(header_reader)
        header_reader.data_received(data.rest)
        data.transport.resume_reading()
        header = parse_header(await asyncio.wait_for(header_reader.frame(), 10))
        assert header["mode"] == "AAD" and header["prefix"] == f"/relay/v1{other.path}"
        import jwt

        claims = jwt.decode(header["assertion"], options={"verify_signature": False})
        assert claims["aud"].lower() == other.path.lower() and claims["exp"] - claims["iat"] <= 300
        data.transport.close()
        tunnel.transport.close()
        with pytest.raises(httpx.RemoteProtocolError):  # the stream ended before the cluster answered
            await user

    asyncio.run(scenario())


class _Reader(asyncio.Protocol):
    """Frames off a connection; ``first_only`` for a data connection, where raw bytes follow the first frame."""

    def __init__(self, first_only: bool = False) -> None:
        self.decoder = FrameDecoder()
        self.first_only = first_only
        self.seen = 0
        self.frames: asyncio.Queue[Any] = asyncio.Queue()

    def data_received(self, data: bytes) -> None:
        if self.first_only and self.seen:
            return
        self.decoder.feed(data)
        while (frame := self.decoder.next()) is not None:
            self.seen += 1
            if frame.type is not FrameType.PING:
                self.frames.put_nowait(frame)
            if self.first_only:
                return

    async def frame(self) -> Any:
        return await self.frames.get()
