"""The ASGI application: routes ``/clusters/<name>/...`` to that virtual cluster's API, streams watch bodies, and
hands upgraded connections (exec, attach, port-forward) to their stream sessions.

Deliberately a bare ASGI callable rather than a framework app: the Kubernetes surface has its own routing
(``api.py``), and a watch must stream newline-delimited JSON chunk by chunk, stopping when the client leaves.

Upgrades (``Upgrade: SPDY/3.1`` or ``websocket``) are not uvicorn's: it hands only WebSocket upgrades to a
WebSocket library, and then authentication, authorization and a refusal's ``Status`` body would have to be done
twice. Here every upgrade request reaches the app as an ordinary request (uvicorn runs with ``ws="none"``);
``api.py`` checks it like any other and answers either an error or a 101 with an :class:`UpgradePlan`, and the
protocol below then writes the 101 itself and gives the transport's bytes to the session.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from halyard.sim.api import ClusterApi, Request, Response, dumps, error_response
from halyard.sim.cluster import VirtualCluster
from halyard.sim.errors import ApiError
from halyard.sim.kubeconfig import client_identity
from halyard.sim.streaming import Session, UpgradePlan, start_session

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PREFIX = "/clusters/"


UPGRADE = "halyard.upgrade"  # scope["extensions"] key: ``await take_over(head, plan)`` switches protocols


class TlsHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, plus the verified client certificate in ``scope["extensions"]["tls"]``, and the
    switch to a stream session after a 101 (``scope["extensions"]["halyard.upgrade"]``)."""

    _peer_der: bytes | None = None
    _session: Session | None = None
    _early: bytearray | None = None  # bytes after an upgrade request's head, until the app decides

    def data_received(self, data: bytes) -> None:
        if self._session is not None:
            self._session.data_received(data)
            return
        if self._early is not None:
            self._early += data
            return
        self._unset_keepalive_if_required()
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError:
            msg = "Invalid HTTP request received."
            self.logger.warning(msg)
            self.send_400_response(msg)
        except httptools.HttpParserUpgrade as e:
            # The request's head is parsed and its task started; what follows belongs to the new protocol (if the
            # app switches) or to nobody (if it refuses: then the connection closes after the refusal).
            offset = e.args[0] if e.args and isinstance(e.args[0], int) else len(data)
            self._early = bytearray(data[offset:])
            if self.cycle is not None:
                self.cycle.keep_alive = False

    async def _take_over(self, head: bytes, plan: UpgradePlan) -> None:
        """Write the 101, run the session on this connection until it ends, then close the connection."""
        transport = self.transport
        transport.write(head)
        session = start_session(plan, transport)
        self._session = session
        early, self._early = self._early, None
        if early:
            session.data_received(bytes(early))
        self.flow.resume_reading()
        try:
            await session.run()
        finally:
            if self.cycle is not None:
                self.cycle.disconnected = True  # the HTTP exchange is over: no 500 for a "missing" response
            transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._session is not None:
            self._session.connection_lost()
        super().connection_lost(exc)

    def shutdown(self) -> None:
        if self._session is not None:
            self._session.stop()  # uvicorn waits for open connections: streams could last forever
            return
        super().shutdown()

    def pause_writing(self) -> None:
        if self._session is not None:
            self._session.link.pause_writing()
        super().pause_writing()

    def resume_writing(self) -> None:
        if self._session is not None:
            self._session.link.resume_writing()
        super().resume_writing()

    def connection_made(self, transport: Any) -> None:  # type: ignore[override]
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            # uvicorn writes a response's head and body separately: without NODELAY the body waits ~40 ms for
            # the client's delayed ACK (Nagle), on every request.
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is not None:
            self._peer_der = ssl_object.getpeercert(binary_form=True)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        extensions: dict[str, Any] = {UPGRADE: self._take_over}
        if self._peer_der:
            extensions["tls"] = {"client_cert_der": self._peer_der}
        self.scope["extensions"] = extensions


class SimApp:
    def __init__(self, clusters: dict[str, VirtualCluster], api: ClusterApi) -> None:
        self.clusters = clusters
        self.api = api

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path: str = scope["path"]
        if path.startswith(PREFIX):
            name, _, rest = path[len(PREFIX) :].partition("/")
        elif (own := self._token_cluster(scope)) is not None:
            # A pod's in-cluster client: https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT/, no cluster in
            # the path, with the service-account token its cluster issued. That token says which cluster it is.
            name, rest = own, path[1:]
        else:
            resp = self._root(path)
            await _send_plain(send, resp)
            return
        cluster = self.clusters.get(name)
        if cluster is None:
            await _send_plain(send, error_response(ApiError(404, f'virtual cluster "{name}" not found', details={})))
            return
        body = bytearray()
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"]]
        query_all = urllib.parse.parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True)
        query = dict(query_all)
        cert_user = None
        der = scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
        if der:
            identity = client_identity(der)
            if identity is not None and identity[0] == name:
                cert_user = identity[1]
        req = Request(scope["method"], "/" + rest, query, headers, bytes(body), cert_user, query_all)
        resp = await self.api.handle(cluster, req)
        if resp.upgrade is not None:
            take_over = scope.get("extensions", {}).get(UPGRADE)
            if take_over is None:  # served by something other than TlsHttpProtocol (an ASGI test client)
                await _send_plain(send, error_response(ApiError(400, "this server cannot switch protocols")))
                return
            head = b"HTTP/1.1 101 Switching Protocols\r\n" + b"".join(
                k.encode() + b": " + v.encode() + b"\r\n" for k, v in resp.headers) + b"\r\n"  # fmt: skip
            await take_over(head, resp.upgrade)
            return
        if resp.stream is None:
            await _send_plain(send, resp)
            return
        await _send_stream(send, receive, resp)

    def _token_cluster(self, scope: Scope) -> str | None:
        """The cluster that issued the request's bearer token through ``serviceaccounts/token``, if any."""
        for key, value in scope["headers"]:
            if key.lower() == b"authorization" and value[:7].lower() == b"bearer ":
                token = value[7:].decode("latin-1").strip()
                return next((n for n, c in self.clusters.items() if token in c.token_expiry), None)
        return None

    def _root(self, path: str) -> Response:
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        if path == "/":
            return Response(200, dumps({"clusters": len(self.clusters), "paths": [f"{PREFIX}<name>/"]}))
        return error_response(ApiError(404, "the server could not find the requested resource", details={}))


def _headers(resp: Response, length: int | None) -> list[tuple[bytes, bytes]]:
    out = [(b"content-type", resp.content_type.encode()), (b"cache-control", b"no-cache, private")]
    out += [(k.encode(), v.encode()) for k, v in resp.headers]
    if length is not None:
        out.append((b"content-length", str(length).encode()))
    return out


async def _send_plain(send: Send, resp: Response) -> None:
    await send({"type": "http.response.start", "status": resp.status, "headers": _headers(resp, len(resp.body))})
    await send({"type": "http.response.body", "body": resp.body})


async def _send_stream(send: Send, receive: Receive, resp: Response) -> None:
    """Chunked body from ``resp.stream``; stops (closing the stream, so watchers unregister) on disconnect."""
    assert resp.stream is not None
    stream = resp.stream
    await send({"type": "http.response.start", "status": resp.status, "headers": _headers(resp, None)})

    async def pump() -> None:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def disconnected() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    pump_task = asyncio.create_task(pump())
    gone_task = asyncio.create_task(disconnected())
    try:
        await asyncio.wait({pump_task, gone_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in (pump_task, gone_task):
            t.cancel()
        for t in (pump_task, gone_task):
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await t
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            with contextlib.suppress(RuntimeError):
                await aclose()
