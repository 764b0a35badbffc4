"""The gateway service inside the control plane: its listener's TLS (a certificate for ``*.gw.<domain>`` from the
control plane's own CA, so agents trust it as they trust the control plane), its start and stop, and retention."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import shutil
import ssl
from collections.abc import AsyncIterator

from halyard.controlplane.gateway.audit import AuditLog
from halyard.controlplane.gateway.service import GatewayService
from halyard.controlplane.plane import ControlPlane
from halyard.core.pki import ensure_server_tls
from halyard.core.settings import Settings

log = logging.getLogger("halyard.gateway")
PRUNE_INTERVAL = 3600.0


def gateway_names(settings: Settings) -> list[str]:
    return [f"*.gw.{settings.domain or 'halyard.local'}", "localhost"]


SNI_ATTRIBUTE = "halyard_server_name"


def _remember_sni(ssl_object: object, server_name: str | None, context: ssl.SSLContext) -> None:
    """A server-side TLS object does not keep the name the client asked for; the gateway's check needs it."""
    setattr(ssl_object, SNI_ATTRIBUTE, server_name or "")


def gateway_tls(settings: Settings) -> ssl.SSLContext | None:
    """None with ``--insecure-http`` (loopback tests); the operator's certificate (it must cover ``*.gw.<domain>``);
    else one issued by the control plane's generated CA under ``<data-dir>/tls-gw``."""
    if settings.insecure_http:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.sni_callback = _remember_sni  # type: ignore[assignment]
    if settings.tls_cert and settings.tls_key:
        context.load_cert_chain(str(settings.tls_cert), str(settings.tls_key))
        return context
    own, mine = settings.data_dir / "tls", settings.data_dir / "tls-gw"
    mine.mkdir(parents=True, exist_ok=True, mode=0o700)
    for name in ("ca.pem", "ca.key"):
        if (own / name).exists() and not (mine / name).exists():
            shutil.copy2(own / name, mine / name)
    files = ensure_server_tls(mine, "halyard gateway", gateway_names(settings), ["127.0.0.1"])
    context.load_cert_chain(str(files.cert), str(files.key))
    return context


def build_gateway(cp: ControlPlane) -> GatewayService:
    return GatewayService(cp, AuditLog(cp.db))


@contextlib.asynccontextmanager
async def serving(service: GatewayService, settings: Settings) -> AsyncIterator[None]:
    """The gateway listening on ``gateway_port`` (when set) for as long as the control plane runs."""
    if settings.gateway_port is None:
        yield
        return
    host = settings.gateway_host or settings.host
    bound = await service.start(host, settings.gateway_port, gateway_tls(settings))
    settings.gateway_port = bound[1]  # an ephemeral port (0) becomes the one bound
    pruning = asyncio.create_task(_prune(service, settings), name="gateway-audit-retention")
    try:
        yield
    finally:
        pruning.cancel()
        await service.close()


async def _prune(service: GatewayService, settings: Settings) -> None:
    while True:
        try:
            keep = dt.timedelta(days=settings.gateway_audit_retention_days)
            await service.audit.prune(dt.datetime.now(dt.UTC) - keep)
        except Exception as exc:
            log.error("gateway audit retention failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(PRUNE_INTERVAL)
