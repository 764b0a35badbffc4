"""arc-proxy: the forward proxy (HTTP CONNECT) every agent of a cluster uses when a gateway or an enterprise proxy is
set, on a loopback (local mode) or cluster-internal address.

For each agent connection it decides, from ``--proxy-skip-range``, whether the destination is reached directly
(in-cluster traffic); otherwise it goes through the enterprise proxy (CONNECT, basic auth from the proxy URL) and,
with a gateway, on to the gateway's one name: TLS to it (trusting ``--proxy-cert`` for this outer hop only, where a
TLS-inspecting proxy re-signs it), then a CONNECT to the destination carrying the cluster's agent token. What the
agent sends inside is its own TLS to the destination, end to end. Every connection is logged: destination, route,
bytes each way, duration, verdict (``kubectl logs arc-proxy-…`` shows them, as the seed's guide says).
"""

from __future__ import annotations

import asyncio
import logging
import ssl
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import httpx
import jwt
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes

from halyard.agent.endpoints import Url, url_of
from halyard.agent.resourcesync import TokenSource
from halyard.api.agents import PROOF_ISSUER, AgentNetwork
from halyard.api.proofs import signing_algorithm
from halyard.tunnel.dial import Idle, ProxyTunnelRefused, UpgradeRefused, open_tunnel, upgrade_over
from halyard.tunnel.handshake import upgrade_request
from halyard.tunnel.http1 import HeadError, response_head, split_head
from halyard.tunnel.proxyconnect import (
    DESTINATION_FIELD,
    GATEWAY_PATH,
    GATEWAY_PROOF,
    GATEWAY_UPGRADE,
    ConnectTarget,
    ProxyUrl,
    SkipRange,
    authority,
    gateway_audience,
    parse_connect,
)
from halyard.tunnel.splice import Pipe

log = logging.getLogger("halyard.agent.arcproxy")
HEAD_LIMIT = 16 * 1024
HEAD_TIMEOUT = 10.0
DIAL_TIMEOUT = 15.0


def onboarding_proof(resource_id: str, key: PrivateKeyTypes) -> Callable[[str], str]:
    """Proofs of the onboarding key for a gateway, as identity-operator proves it to his (short-lived)."""

    def sign(gateway_name: str) -> str:
        now = int(time.time())
        claims = {
            "iss": PROOF_ISSUER, "sub": resource_id, "aud": gateway_audience(gateway_name), "iat": now,
            "exp": now + 120, "jti": uuid.uuid4().hex, "csr": GATEWAY_PROOF,
        }  # fmt: skip
        return jwt.encode(claims, key, algorithm=signing_algorithm(key), headers={"kid": "onboarding"})  # type: ignore[arg-type]

    return sign


class TokenSlot:
    """The agents' token source, given to arc-proxy before identity-operator exists (the agents' HTTP client, which
    identity-operator needs, goes through arc-proxy): not ready until it is filled."""

    def __init__(self) -> None:
        self.target: TokenSource | None = None

    async def token(self) -> str:
        await self.wait_ready(60.0)
        assert self.target is not None
        return await self.target.token()

    def forget_token(self) -> None:
        if self.target is not None:
            self.target.forget_token()

    async def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.target is None:
            if time.monotonic() >= deadline:
                raise TimeoutError("no token source yet")
            await asyncio.sleep(0.02)
        await self.target.wait_ready(max(0.0, deadline - time.monotonic()))


class ProxyCertMissing(ssl.SSLError):
    """The outer TLS to the gateway was re-signed by an inspecting proxy whose CA the agents were not given."""


@dataclass(frozen=True)
class NetworkSettings:
    """Where the agents' connections go: the gateway (its name and port), the enterprise proxy, the skip range and
    the inspecting proxy's CA. All None: direct (arc-proxy is not needed)."""

    gateway: str | None = None  # host:port of the gateway endpoint
    proxy: str | None = None  # http://[user:password@]host:port
    skip_range: str | None = None
    proxy_cert: str | None = None  # PEM
    gateway_address: str | None = None  # host:port to dial for the gateway when going direct (its name unresolved)


class ArcProxy:
    name = "arc-proxy"

    def __init__(
        self,
        settings: NetworkSettings,
        tokens: TokenSource,
        ca_bundle: str | None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        network_url: Url | None = None,
        interval: float = 30.0,
        onboarding_proof: Callable[[str], str] | None = None,
    ) -> None:
        self._onboarding_proof = onboarding_proof  # gateway name → a proof of the onboarding key, until a token
        self._tokens = tokens
        self.tokens = tokens
        # The control plane's GATEWAY_NETWORK_PATH, asked every interval; read at each ask, as every agent reads
        # its endpoint map at each dial (private link may move the management API to a scope's private name).
        self._network_url = network_url
        self._interval = interval
        self._ca_bundle = ca_bundle
        self._host, self._port = host, port
        self._server: asyncio.Server | None = None
        self._pipes: set[Pipe] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self.apply(settings)

    def apply(self, settings: NetworkSettings) -> None:
        """New settings (the next heartbeat's): connections from now on follow them."""
        self.settings = settings
        self._skip = SkipRange.parse(settings.skip_range)
        self._proxy = ProxyUrl.parse(settings.proxy) if settings.proxy else None
        context = (
            ssl.create_default_context(cadata=self._ca_bundle) if self._ca_bundle else ssl.create_default_context()
        )
        if settings.proxy_cert:
            context.load_verify_locations(cadata=settings.proxy_cert)  # the outer hop only
        self._outer_tls = context

    @property
    def url(self) -> str:
        """What agents in this process use as their proxy (``http://127.0.0.1:PORT``; loopback when it listens on
        every address, as in its own pod)."""
        host = "127.0.0.1" if self._host in ("0.0.0.0", "") else "::1" if self._host == "::" else self._host
        return f"http://{authority(host, self._port)}"

    async def start(self) -> str:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: _Client(self), self._host, self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])
        log.info("arc-proxy listening", extra={"url": self.url})
        return self.url

    async def reconcile(self) -> float:
        if self._server is None:
            await self.start()
        if self._network_url is not None:
            try:
                await self._tokens.wait_ready(0.05)
            except Exception:
                return 1.0  # onboarding: asked again once the cluster has its token
            await self.refresh()
        return self._interval

    async def refresh(self) -> NetworkSettings:
        """Ask the control plane where connections go now, through the current route; if the gateway refuses
        (the cluster was moved off it), ask again without it. The answer applies to new connections."""
        assert self._network_url is not None
        try:
            answer = await self._ask(self.url)
        except httpx.ProxyError:
            if not self.settings.gateway:
                raise
            answer = await self._ask(self._proxy_url_without_gateway())
        network = AgentNetwork.model_validate(answer)
        self.apply(
            NetworkSettings(
                gateway=network.gateway,
                proxy=network.httpsProxy or network.httpProxy,
                skip_range=network.noProxy,
                proxy_cert=network.proxyCert,
                gateway_address=self.settings.gateway_address,
            )
        )
        return self.settings

    async def _ask(self, proxy: str | None) -> object:
        assert self._network_url is not None
        token = await self._tokens.token()
        verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=self._ca_bundle) if self._ca_bundle else True
        async with httpx.AsyncClient(proxy=proxy, verify=verify, timeout=20) as http:
            r = await http.get(url_of(self._network_url), headers={"Authorization": f"Bearer {token}"})
        if r.status_code == 401:
            self._tokens.forget_token()
        r.raise_for_status()
        return r.json()

    def _proxy_url_without_gateway(self) -> str | None:
        return self.settings.proxy  # the enterprise proxy alone, or direct

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
        for pipe in list(self._pipes):
            pipe.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def spawn(self, coro: object) -> None:
        task = asyncio.ensure_future(coro)  # type: ignore[call-overload]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _credential(self, gateway_name: str) -> str:
        """The agent token; while the cluster has none yet (onboarding), a proof of its onboarding key."""
        if self._onboarding_proof is not None:
            try:
                await self._tokens.wait_ready(0.05)
            except Exception:
                return f"Proof {self._onboarding_proof(gateway_name)}"
        return f"Bearer {await self._tokens.token()}"

    def forget_token(self) -> None:
        self._tokens.forget_token()

    def route(self, host: str) -> str:
        if self._skip.skips(host):
            return "direct"
        if self.settings.gateway:
            return "gateway"
        return "proxy" if self._proxy is not None else "direct"

    async def open(self, target: ConnectTarget) -> tuple[asyncio.Transport, str, bytes]:
        """A paused transport carrying bytes to the target, the route taken and any early bytes from the far end;
        OSError, TimeoutError or UpgradeRefused (the gateway's refusal) otherwise."""
        route = self.route(target.host)
        loop = asyncio.get_running_loop()
        if route == "direct":
            made, _ = await asyncio.wait_for(loop.create_connection(Idle, target.host, target.port), DIAL_TIMEOUT)
            transport = cast(asyncio.Transport, made)
            transport.pause_reading()
            return transport, route, b""
        if route == "proxy":
            assert self._proxy is not None
            return await open_tunnel(self._proxy, target.host, target.port, timeout=DIAL_TIMEOUT), route, b""
        gateway = self.settings.gateway or ""
        gw_host, _, gw_port = gateway.rpartition(":")
        async with asyncio.timeout(DIAL_TIMEOUT):
            if self._proxy is not None:
                outer = await open_tunnel(self._proxy, gw_host, int(gw_port), timeout=DIAL_TIMEOUT)
            else:
                dial_host, _, dial_port = (self.settings.gateway_address or gateway).rpartition(":")
                made, _ = await loop.create_connection(Idle, dial_host, int(dial_port))
                outer = cast(asyncio.Transport, made)
            try:
                tls = await loop.start_tls(outer, Idle(), self._outer_tls, server_hostname=gw_host)
            except ssl.SSLCertVerificationError as exc:
                outer.abort()
                raise ProxyCertMissing(
                    f"the TLS to the gateway {gw_host} is not signed by a CA the agents trust ({exc.verify_message}): "
                    "a TLS-inspecting proxy re-signs it; give its CA with --proxy-cert"
                ) from None
            assert tls is not None
            transport = cast(asyncio.Transport, tls)
            credential = await self._credential(gw_host)
            fields = [("Authorization", credential), (DESTINATION_FIELD, authority(target.host, target.port))]
            request = upgrade_request(GATEWAY_PATH, authority(gw_host, int(gw_port)), GATEWAY_UPGRADE, fields)
            early = await upgrade_over(transport, request, GATEWAY_UPGRADE)
        return transport, route, early


class _Client(asyncio.Protocol):
    """One agent connection: its CONNECT read (bounded), the route opened, then spliced; logged when it ends."""

    def __init__(self, proxy: ArcProxy) -> None:
        self._proxy = proxy
        self._buffer = bytearray()
        self._transport: asyncio.Transport | None = None
        self._reading = True
        self._timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._timer = asyncio.get_running_loop().call_later(HEAD_TIMEOUT, self._answer, 408, "Request Timeout", "?")

    def connection_lost(self, exc: Exception | None) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def data_received(self, data: bytes) -> None:
        if not self._reading:
            return
        self._buffer += data
        try:
            split = split_head(self._buffer, HEAD_LIMIT)
            if split is None:
                return
            target = parse_connect(split[0])
        except HeadError as exc:
            self._answer(exc.status, str(exc), "?")
            return
        self._reading = False
        if self._timer is not None:
            self._timer.cancel()
        assert self._transport is not None
        self._transport.pause_reading()
        self._proxy.spawn(self._open(target, split[1]))

    async def _open(self, target: ConnectTarget, rest: bytes) -> None:
        destination = authority(target.host, target.port)
        started = time.monotonic()
        try:
            far, route, early = await self._proxy.open(target)
        except (ProxyTunnelRefused, UpgradeRefused) as exc:
            if isinstance(exc, UpgradeRefused) and exc.status == 401:
                self._proxy.forget_token()
            status = exc.status if exc.status in (403, 407) else 502
            self._answer(status, str(exc), destination, started)
            return
        except (OSError, TimeoutError) as exc:
            self._answer(502, f"{type(exc).__name__}: {exc}", destination, started)
            return
        client = self._transport
        assert client is not None
        if client.is_closing():
            far.close()
            return
        client.write(response_head(200, "Connection established", []))
        proxy = self._proxy

        def closed(pipe: Pipe) -> None:
            proxy._pipes.discard(pipe)
            log.info(
                "arc-proxy connection",
                extra={
                    "destination": destination,
                    "route": route,
                    "bytes_up": pipe.a_to_b,
                    "bytes_down": pipe.b_to_a,
                    "duration_ms": int((time.monotonic() - started) * 1000),
                    "verdict": "allowed",
                },
            )

        proxy._pipes.add(Pipe(client, far, a_first=rest, b_first=early, on_close=closed))

    def _answer(self, status: int, reason: str, destination: str, started: float | None = None) -> None:
        self._reading = False
        log.warning(
            "arc-proxy connection",
            extra={
                "destination": destination,
                "verdict": "refused",
                "status": status,
                "reason": reason,
                "duration_ms": int((time.monotonic() - started) * 1000) if started else 0,
            },
        )
        transport = self._transport
        if transport is not None and not transport.is_closing():
            body = reason.encode()
            fields = [("Content-Length", str(len(body))), ("Connection", "close")]
            transport.write(response_head(status, "Refused", fields) + body)
            transport.close()
