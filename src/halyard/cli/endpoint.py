"""``halyard endpoint certificate`` (on the control plane's host: a forwarder's certificate for one private endpoint)
and ``halyard endpoint run`` (on a host of the site's network: the forwarder at the endpoint's address)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated

import typer

from halyard.cli.endpointforwarder import Forwarder, address, client_context
from halyard.cli.errors import CliError
from halyard.core.logconfig import configure
from halyard.core.settings import Settings

app = typer.Typer(help="Private endpoint forwarders (private link).", no_args_is_help=True)
EndpointId = Annotated[str, typer.Option("--endpoint", help="The private endpoint's resource id.")]


@app.command("certificate")
def certificate(
    endpoint: EndpointId,
    out: Annotated[Path, typer.Option("--out", help="Directory for endpoint.pem, endpoint.key and ca.pem.")],
    data_dir: Annotated[Path | None, typer.Option(help="The control plane's data directory.")] = None,
    database_url: Annotated[str | None, typer.Option(help="The control plane's database, when not SQLite.")] = None,
) -> None:
    """Issue a forwarder certificate for an existing private endpoint (run where the control plane's data is)."""
    from halyard.controlplane.privatelink.forwarders import issue_for_endpoint

    overrides = {"data_dir": data_dir, "database_url": database_url}
    settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    try:
        key_pem, cert_pem, ca_pem = asyncio.run(issue_for_endpoint(settings, endpoint))
    except LookupError as exc:
        raise CliError(str(exc), "PrivateEndpointNotFound") from None
    out.mkdir(parents=True, exist_ok=True, mode=0o700)
    (out / "endpoint.key").write_bytes(key_pem)
    (out / "endpoint.key").chmod(0o600)
    (out / "endpoint.pem").write_bytes(cert_pem)
    server_ca = settings.data_dir / "tls" / "ca.pem"
    (out / "ca.pem").write_bytes(server_ca.read_bytes() if server_ca.exists() else ca_pem)
    print(f"{out / 'endpoint.pem'}\n{out / 'endpoint.key'}\n{out / 'ca.pem'}")


@app.command("run")
def run(
    endpoint: EndpointId,
    listen: Annotated[str, typer.Option("--listen", help="The endpoint's address, IP:PORT.")],
    ingress: Annotated[str, typer.Option("--ingress", help="The control plane's endpoint ingress, HOST:PORT.")],
    cert: Annotated[Path, typer.Option("--cert", help="The endpoint's certificate (halyard endpoint certificate).")],
    key: Annotated[Path, typer.Option("--key", help="Its key.")],
    ca: Annotated[Path, typer.Option("--ca", help="The control plane's CA.")],
) -> None:
    """Forward the endpoint's address to the control plane (until interrupted)."""
    configure("info", "keyvalue")
    try:
        forwarder = Forwarder(address(listen), address(ingress), endpoint, client_context(str(cert), str(key), str(ca)))
    except (ValueError, OSError) as exc:
        raise CliError(str(exc)) from None
    import uvloop  # the control plane's event loop too: a forwarder's every byte crosses it twice

    try:
        uvloop.run(forwarder.serve())
    except KeyboardInterrupt:
        pass
