"""``halyard gateway run``: the gateway service alone, for an edge host in front of the control plane.

It shares the control plane's store (``--database-url``, PostgreSQL for a separate host; the same SQLite file on
one machine) and data directory (its sealing key, the CA that issues the gateway's certificate), verifies agent
tokens with the signing keys in the store, writes the audit there, and splices allowed connections to
``--upstream`` (the control plane's listener), which agents know by its public URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

import typer

from halyard.cli.errors import UsageError

app = typer.Typer(help="The gateway service (docs/gateway.md).", no_args_is_help=True)


@app.command("run")
def run(
    data_dir: Annotated[Path, typer.Option("--data-dir", help="The control plane's data directory (or a copy).")],
    upstream: Annotated[str, typer.Option("--upstream", help="The control plane's listener, https://host:port.")],
    port: Annotated[int, typer.Option("--port", help="Port of the gateway service.")] = 443,
    host: Annotated[str, typer.Option("--host", help="Address of the gateway service.")] = "127.0.0.1",
    public_url: Annotated[
        str | None, typer.Option("--public-url", help="The control plane's URL as agents know it (default: upstream).")
    ] = None,
    database_url: Annotated[str | None, typer.Option("--database-url", help="The control plane's store.")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="The control plane's domain.")] = None,
) -> None:
    """Serve gateways until SIGTERM or Ctrl-C."""
    from halyard.controlplane.catalog import declare_types
    from halyard.controlplane.gateway.audit import AuditLog
    from halyard.controlplane.gateway.service import GatewayService, Upstream
    from halyard.controlplane.gateway.serving import gateway_tls
    from halyard.controlplane.plane import ControlPlane
    from halyard.core.clock import SystemClock
    from halyard.core.logconfig import configure
    from halyard.core.sealing import Sealer
    from halyard.core.settings import Settings
    from halyard.store import Database
    from halyard.tunnel.proxyconnect import authority

    configure("info", "keyvalue")
    inner, public = urlsplit(upstream), urlsplit(public_url or upstream)
    if inner.scheme != "https" or not inner.hostname or not public.hostname:
        raise UsageError("argument --upstream: the control plane's listener as https://host:port.")
    settings = Settings(
        data_dir=data_dir, database_url=database_url, domain=domain, gateway_port=port, gateway_host=host,
        public_url=public_url or upstream,
    )  # fmt: skip
    name = authority(public.hostname.lower(), public.port or 443)

    async def serve() -> None:
        db = Database(settings.database)
        cp = ControlPlane.build(settings, db, SystemClock(), Sealer.from_data_dir(data_dir), declare_types)
        service = GatewayService(cp, AuditLog(db), {name: Upstream(name, inner.hostname or "", inner.port or 443)})
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await service.start(host, port, gateway_tls(settings))
        try:
            await stop.wait()
        finally:
            await service.close()
            await db.close()

    asyncio.run(serve())
