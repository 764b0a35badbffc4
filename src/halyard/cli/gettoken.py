"""``halyard get-token``: the kubeconfig exec credential plugin of ``get-credentials`` kubeconfigs.

kubectl runs it for every command, so ``main`` serves the usual invocation with :func:`execcredential.fast` before
the command tree is loaded; this command is what ``--help`` and unusual command lines reach.
"""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from halyard.cli.context import Invocation
from halyard.cli.errors import UsageError
from halyard.cli.execcredential import current_token, exec_credential, profile_for, render


def command(
    ctx: typer.Context,
    server: Annotated[
        str | None,
        typer.Option("--server", help="The server whose login gives the token (default: the current login)."),
    ] = None,
) -> None:
    """Print an ExecCredential (client.authentication.k8s.io/v1) with the current login's management token:
    the kubeconfig exec plugin of halyard connectedk8s get-credentials. The token is cached (0600, in the config
    directory) until 5 minutes before it expires, so kubectl's repeated calls cost no request."""
    inv = Invocation.of(ctx)
    if inv.options.output != "json":
        raise UsageError("get-token prints an ExecCredential: only --output json is supported.")
    token = current_token(inv.store, profile_for(inv.store, server))
    sys.stdout.write(render(exec_credential(token.access_token, token.expires_on)))
