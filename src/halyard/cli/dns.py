"""``halyard dns``: the private DNS zones of the store, served authoritatively (UDP and TCP) for an on-prem DNS
server to forward them to (conditional forwarding, as the private link guide's DNS section describes)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from halyard.core.logconfig import configure
from halyard.core.settings import Settings


def command(
    host: Annotated[str, typer.Option(help="Address to answer on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to answer on (UDP and TCP).")] = 53,
    data_dir: Annotated[Path | None, typer.Option(help="The server's data directory (its SQLite store).")] = None,
    database_url: Annotated[str | None, typer.Option(help="The server's database, when not SQLite.")] = None,
    virtual_network: Annotated[
        str | None,
        typer.Option(help="Serve only the zones linked to this virtual network (its resource id), as Azure does."),
    ] = None,
) -> None:
    """Answer for the private DNS zones (private link) from the control plane's store."""
    from halyard.controlplane.dns.service import run

    overrides = {"data_dir": data_dir, "database_url": database_url}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    configure(settings.log_level, settings.log_format)
    run(settings.database, host, port, virtual_network)
