"""The ASGI application: routes ``/clusters/<name>/...`` to that virtual cluster's API, streams watch bodies.

Deliberately a bare ASGI callable rather than a framework app: the Kubernetes surface has its own routing
(``api.py``), and a watch must stream newline-delimited JSON chunk by chunk, stopping when the client leaves.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import urllib.parse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from halyard.sim.api import ClusterApi, Request, Response, dumps, error_response
from halyard.sim.cluster import VirtualCluster
from halyard.sim.errors import ApiError
from halyard.sim.kubeconfig import client_identity

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
PREFIX = "/clusters/"


class TlsHttpProtocol(HttpToolsProtocol):
    """uvicorn's HTTP protocol, plus the verified client certificate in ``scope["extensions"]["tls"]``."""

    _peer_der: bytes | None = None

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

    def _unsupported_upgrade_warning(self) -> None:
        # exec/attach/port-forward ask to upgrade; the request then reaches the app, which answers 405. Nothing to warn.
        pass

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._peer_der:
            self.scope["extensions"] = {"tls": {"client_cert_der": self._peer_der}}  # type: ignore[typeddict-unknown-key]


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
        query = dict(urllib.parse.parse_qsl(scope["query_string"].decode("latin-1"), keep_blank_values=True))
        cert_user = None
        der = scope.get("extensions", {}).get("tls", {}).get("client_cert_der")
        if der:
            identity = client_identity(der)
            if identity is not None and identity[0] == name:
                cert_user = identity[1]
        req = Request(scope["method"], "/" + rest, query, headers, bytes(body), cert_user)
        resp = await self.api.handle(cluster, req)
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
