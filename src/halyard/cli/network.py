"""``halyard network private-endpoint dns-config``: the DNS records a private endpoint needs, ready to paste into
the on-prem DNS server (or ``/etc/hosts``) when its zone is not forwarded to ``halyard dns``."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from halyard.cli.context import Invocation
from halyard.cli.dnsrecords import FORMATS, records, render
from halyard.cli.errors import CliError
from halyard.cli.resourceids import resource_id

API_VERSION = "2026-01-01"  # what az network private-endpoint sends
app = typer.Typer(help="Private networking: private endpoints and their DNS.", no_args_is_help=True)
endpoints = typer.Typer(help="Private endpoints.", no_args_is_help=True)
app.add_typer(endpoints, name="private-endpoint")


@endpoints.command("dns-config")
def dns_config(
    ctx: typer.Context,
    group: Annotated[str, typer.Option("--resource-group", "-g", help="The endpoint's resource group.")],
    name: Annotated[str, typer.Option("--name", "-n", help="The private endpoint's name.")],
    fmt: Annotated[
        str, typer.Option("--format", help="table, zone (a zone-file fragment), dnsmasq or hosts.")
    ] = "table",
) -> None:
    """Print the endpoint's FQDNs and address in a form to paste."""
    if fmt not in FORMATS:
        raise CliError(f"--format must be one of {', '.join(FORMATS)}.")
    inv = Invocation.of(ctx)
    endpoint = inv.arm.get(
        resource_id(inv.subscription_id, group, "Microsoft.Network", "privateEndpoints", name), API_VERSION
    )
    pairs = records(endpoint)
    if not pairs:
        raise CliError(f"Private endpoint '{name}' has no DNS records (no address was allocated to it).")
    sys.stdout.write(render(pairs, fmt))
