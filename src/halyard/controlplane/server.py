"""Runs the control plane: TLS material, the ASGI app on uvicorn (uvloop), graceful shutdown."""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import os
import resource
import socket
import time
from collections.abc import Callable
from typing import Any

import uvicorn

from halyard.controlplane.admission import AcceptLimiter, exempt_networks
from halyard.controlplane.agentfacing.listening import bound_socket, endpoint_listeners, parse_address
from halyard.controlplane.app import create_app
from halyard.controlplane.connections import ConnectionGuard
from halyard.controlplane.privatelink.endpointpki import ca_files, ensure_ca
from halyard.controlplane.privatelink.ingress import Ingress, ingress_context
from halyard.controlplane.privatelink.names import MEMBERS as PRIVATE_MEMBERS
from halyard.controlplane.privatelink.names import zone as private_zone
from halyard.controlplane.privatelink.revocation import Revocations
from halyard.core.files import make_private_tree
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
    # The names private endpoints answer for (docs/private-link.md): agents reach the services under them.
    dns += [f"*.{member}.{private_zone(settings)}" for member in PRIVATE_MEMBERS]
    if settings.endpoint_ingress:  # forwarders check the ingress's address against the certificate
        ingress_host = settings.endpoint_ingress.rpartition(":")[0].strip("[]")
        try:
            if not ipaddress.ip_address(ingress_host).is_unspecified:
                ips.append(ingress_host)
        except ValueError:
            dns.append(ingress_host)
    try:
        address = ipaddress.ip_address(settings.host)
        if not address.is_unspecified:
            ips.append(str(address))
    except ValueError:
        dns.append(settings.host)
    files = ensure_server_tls(settings.data_dir / "tls", "halyard", sorted(set(dns)), sorted(set(ips)))
    settings.ca_bundle = files.ca_cert
    return str(files.cert), str(files.key)


log = logging.getLogger("halyard.server")


def build_server(settings: Settings) -> uvicorn.Server:
    settings.check()
    # Every file this process creates from here on (the database and its -wal/-shm, keys, TLS) is owner-only,
    # whatever the umask it was started with; what an earlier start left readable is fixed, and said.
    os.umask(0o077)
    changed = make_private_tree(settings.data_dir)
    if changed:
        log.warning(
            "data directory was readable by other users; made owner-only (0700 directories, 0600 files)",
            extra={"data_dir": str(settings.data_dir), "changed": "; ".join(changed[:20])},
        )
    cert, key = prepare_tls(settings)
    app = create_app(settings)
    descriptors = _raise_descriptor_limit()
    per_address = settings.connections_per_address
    if per_address and per_address > descriptors // 4:
        # One address must never hold the descriptors every other client (and the database) needs.
        log.warning(
            "connections per address lowered to a quarter of the descriptor limit",
            extra={"configured": per_address, "descriptors": descriptors},
        )
        per_address = max(1, descriptors // 4)
    limiter = AcceptLimiter(
        settings.new_connections_per_address_rate,
        settings.new_connections_per_address_burst,
        settings.refused_connection_penalty,
        time.monotonic,
        exempt=exempt_networks(settings.connection_limits_exempt),
    )
    guard = ConnectionGuard(
        header_timeout_seconds=settings.header_timeout_seconds,
        header_limit_bytes=settings.header_limit_bytes,
        header_count_limit=settings.header_count_limit,
        per_address=per_address,
        limiter=limiter,
        handshake_timeout_seconds=settings.tls_handshake_timeout_seconds,
        divert=app.state.relay.accept,
        on_drain=app.state.configuration.drain,
    )
    app.state.refusals.listeners.append(guard.request_refused)
    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        ssl_certfile=cert,
        ssl_keyfile=key,
        loop="uvloop",
        http=guard.protocol(),
        lifespan="on",
        log_config=None,
        access_log=False,
        server_header=False,
        timeout_keep_alive=settings.keep_alive_seconds,
        timeout_graceful_shutdown=30,  # in-flight requests finish; new connections are refused
        proxy_headers=False,
    )
    server = _Server(config)
    server.guard = guard
    server.ingress_files = (cert, key)
    server.halyard_settings = settings
    return server


def _raise_descriptor_limit(wanted: int = 65536) -> int:
    """Raise the open-file soft limit toward the hard one (many systems start processes at 256 or 1024, a few hundred
    stalled clients' worth); the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return wanted if soft == resource.RLIM_INFINITY else soft


class _Server(uvicorn.Server):
    ingress_files: tuple[str | None, str | None] = (None, None)
    halyard_settings: Settings | None = None
    endpoint_ingress: asyncio.Server | None = None
    guard: ConnectionGuard | None = None
    http_protocol: Any = None  # the HTTP protocol class, under the accept gate's

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        config = self.config
        tls = config.ssl
        self.http_protocol = config.http_protocol_class
        if self.guard is not None:
            # The listeners get the accept gate, which runs the TLS handshake itself once an address is admitted
            # (uvicorn's own would run it before anything of ours sees the connection). uvicorn reads ``ssl`` once,
            # here, and the protocol class at every connection; the gateway's and the ingress's in-process
            # connections get the HTTP protocol itself and the TLS context (``_http_protocols``).
            config.ssl = None
            config.http_protocol_class = self.guard.gated(self.http_protocol, tls)  # type: ignore[assignment]
        try:
            await super().startup(sockets)
        finally:
            config.ssl = tls
        _app_of(self).state.gateway.serve_in_process(_http_protocols(self), self.config.ssl)
        await _start_ingress(self)
        # What start-up built (modules, schemas, compiled queries, the app) lives as long as the process. Frozen,
        # it is never scanned again, so a full garbage collection, which stops the event loop and every request in
        # flight, walks only the working set: at 10,000 heartbeating clusters full collections went from 60-290 ms
        # to mostly under 30 ms (docs/benchmarks.md, fleet).
        gc.collect()
        gc.freeze()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        if self.guard is not None:
            self.guard.drain()  # a connection whose handshake ends from now on is closed (no connection told it yet)
        if self.endpoint_ingress is not None:
            self.endpoint_ingress.close()  # no new endpoint connections; those open end with the HTTP stack's
        await super().shutdown(sockets)


def run(settings: Settings) -> None:
    configure(settings.log_level, settings.log_format)
    server = build_server(settings)
    extra = endpoint_listeners(settings)
    if not extra:
        server.run()
        return
    # The public address and each private endpoint served directly, one socket each: the arrival is told apart by
    # the local address a connection came in on (agentfacing/arrival.py).
    addresses = [(settings.host, settings.port), *((host, port) for host, port, _ in extra)]
    server.run(sockets=[bound_socket(host, port) for host, port in addresses])


async def _start_ingress(server: _Server) -> None:
    """The endpoint forwarders' ingress, when configured: served by this server's own HTTP stack."""
    settings = server.halyard_settings
    cert, key = server.ingress_files
    if settings is None or not settings.endpoint_ingress:
        return
    if cert is None or key is None:
        raise SystemExit("--endpoint-ingress needs TLS (it is mutual TLS); it cannot run with --insecure-http")
    host, port = parse_address(settings.endpoint_ingress)
    ensure_ca(settings.data_dir)
    context = ingress_context(cert, key, str(ca_files(settings.data_dir)[0]))
    plane = _app_of(server).state.plane
    revocations = Revocations(plane.db, plane.enforcement)
    ingress = Ingress(plane.listeners, _http_protocols(server), server.config.ssl, context, revocations)
    server.endpoint_ingress = await ingress.start(host, port)


def _http_protocols(server: _Server) -> Callable[[], asyncio.Protocol]:
    """A maker of this server's HTTP protocol, for connections it did not accept on a socket of its own."""
    config = server.config
    http: Any = server.http_protocol or config.http_protocol_class

    def create_protocol() -> asyncio.Protocol:
        protocol: asyncio.Protocol = http(
            config=config, server_state=server.server_state, app_state=server.lifespan.state
        )
        return protocol

    return create_protocol


def _app_of(server: _Server) -> Any:
    app: Any = server.config.app
    while not hasattr(app, "state") and hasattr(app, "app"):  # under uvicorn's wrappers
        app = app.app
    return app
