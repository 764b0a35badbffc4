"""``halyard provider list/show/register/unregister``: resource providers of the subscription, as ``az provider``."""

from __future__ import annotations

import time
from typing import Annotated

import typer

from halyard.cli.context import Invocation
from halyard.cli.resourceids import provider_id

API_VERSION = "2024-11-01"
app = typer.Typer(help="Manage resource providers.", no_args_is_help=True)
TABLE = (
    ("Namespace", "namespace"),
    ("RegistrationState", "registrationState"),
    ("RegistrationPolicy", "registrationPolicy"),
)
Namespace = Annotated[str, typer.Option("--namespace", "-n", help="The provider namespace, e.g. Microsoft.Kubernetes.")]
Wait = Annotated[bool, typer.Option("--wait", help="Wait for the registration to finish.")]


def _path(inv: Invocation, namespace: str | None = None) -> str:
    return provider_id(inv.subscription_id, namespace)


@app.command("list")
def list_providers(ctx: typer.Context) -> None:
    """List the resource providers and their registration state."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.list(_path(inv), API_VERSION), TABLE)


@app.command("show")
def show(ctx: typer.Context, namespace: Namespace) -> None:
    """Show a provider: its resource types, locations and api-versions."""
    inv = Invocation.of(ctx)
    inv.emit(inv.arm.get(_path(inv, namespace), API_VERSION), TABLE)


def _change(ctx: typer.Context, namespace: str, action: str, final: str, wait: bool) -> None:
    inv = Invocation.of(ctx)
    body = inv.arm.call("POST", f"{_path(inv, namespace)}/{action}", API_VERSION) or {}
    if not wait:
        return
    with inv.progress("Waiting"):
        while str(body.get("registrationState", final)).lower() != final.lower():
            time.sleep(2)
            body = inv.arm.get(_path(inv, namespace), API_VERSION)


@app.command("register")
def register(ctx: typer.Context, namespace: Namespace, wait: Wait = False) -> None:
    """Register a provider with the subscription."""
    _change(ctx, namespace, "register", "Registered", wait)


@app.command("unregister")
def unregister(ctx: typer.Context, namespace: Namespace, wait: Wait = False) -> None:
    """Unregister a provider from the subscription."""
    _change(ctx, namespace, "unregister", "Unregistered", wait)
