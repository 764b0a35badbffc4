"""Runs the control plane: TLS material, the ASGI app on uvicorn (uvloop), graceful shutdown."""

from __future__ import annotations

import gc
import ipaddress
import socket

import uvicorn
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from halyard.controlplane.app import create_app
from halyard.core.logconfig import configure
from halyard.core.pki import ensure_server_tls
from halyard.core.settings import Settings


def prepare_tls(settings: Settings) -> tuple[str | None, str | None]:
    """The certificate and key to serve: the operator's, or generated under ``<data-dir>/tls`` on first start."""
    if settings.insecure_http:
        return None, None
    if settings.tls_cert and settings.tls_key:
        if settings.ca_bundle is None:
            settings.ca_bundle = settings.tls_cert
        return str(settings.tls_cert), str(settings.tls_key)
    dns = ["localhost", socket.gethostname()]
    ips = ["127.0.0.1", "::1"]
    if settings.domain:
        dns += [
            settings.domain,
            f"*.{settings.domain}",
            f"management.{settings.domain}",
            f"login.{settings.domain}",
        ]
    try:
        address = ipaddress.ip_address(settings.host)
        if not address.is_unspecified:
            ips.append(str(address))
    except ValueError:
        dns.append(settings.host)
    files = ensure_server_tls(settings.data_dir / "tls", "halyard", sorted(set(dns)), sorted(set(ips)))
    settings.ca_bundle = files.ca_cert
    return str(files.cert), str(files.key)


class _HttpProtocol(HttpToolsProtocol):
    """Drops idle keep-alive connections at once when the server shuts down.

    A TLS close waits for the peer's close_notify, which an idle pooled client (an SDK session) never sends, so a
    plain close held the graceful shutdown for the 30 s SSL shutdown timeout. An idle connection has nothing in flight.
    """

    def shutdown(self) -> None:
        idle = self.cycle is None or self.cycle.response_complete
        if idle and self.transport.get_write_buffer_size() == 0:
            self.transport.abort()
        else:
            super().shutdown()


def build_server(settings: Settings) -> uvicorn.Server:
    settings.check()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    cert, key = prepare_tls(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        loop="uvloop",
        http=_HttpProtocol,
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_graceful_shutdown=30,  # in-flight requests finish; new connections are refused
        proxy_headers=False,
    )
    return _Server(config)


class _Server(uvicorn.Server):
    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        # What start-up built (modules, schemas, compiled queries, the app) lives as long as the process. Frozen,
        # it is never scanned again, so a full garbage collection, which stops the event loop and every request in
        # flight, walks only the working set: at 10,000 heartbeating clusters full collections went from 60-290 ms
        # to mostly under 30 ms (docs/benchmarks.md, fleet).
        gc.collect()
        gc.freeze()


def run(settings: Settings) -> None:
    configure(settings.log_level, settings.log_format)
    build_server(settings).run()
