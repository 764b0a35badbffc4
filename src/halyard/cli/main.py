"""The ``halyard`` entry point."""

from __future__ import annotations

import typer

from halyard.cli import server, sim

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    help="Halyard: Kubernetes clusters anywhere, one control plane.",
)


@app.callback()
def _root() -> None:
    """Halyard: Kubernetes clusters anywhere, one control plane."""


app.command("server")(server.command)
app.command("sim")(sim.command)


def main() -> None:
    app()
