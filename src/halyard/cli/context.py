"""One command's run: its global options, the logged-in profile, the management client, and how it talks back.

Commands receive it as ``typer.Context.obj``; everything network-facing is created on first use, so ``--help`` and
local commands never read the profile or open a connection.
"""

from __future__ import annotations

import sys
from contextlib import nullcontext
from typing import Any

import typer
from rich.console import Console

from halyard.cli.argv import GlobalOptions
from halyard.cli.arm import ArmClient
from halyard.cli.errors import CliError
from halyard.cli.output import Columns, render
from halyard.cli.profile import Profile, ProfileStore, Subscription
from halyard.cli.progresslines import EVERY_SECONDS, ProgressLines
from halyard.cli.tokens import TokenProvider
from halyard.cli.transport import Transport, tls_verify


class Invocation:
    def __init__(
        self, options: GlobalOptions, store: ProfileStore | None = None, *, progress_every: float = EVERY_SECONDS
    ) -> None:
        self.options = options
        self.progress_every = progress_every
        self.store = store or ProfileStore()
        self._transport: Transport | None = None
        self._profile: Profile | None = None
        self._arm: ArmClient | None = None
        self.stderr = Console(stderr=True, highlight=False)

    @staticmethod
    def of(ctx: typer.Context) -> Invocation:
        obj = ctx.find_root().obj
        if not isinstance(obj, Invocation):
            raise RuntimeError("the halyard CLI must be started through halyard.cli.main.main()")
        return obj

    # -- network -------------------------------------------------------------------------------------------------
    def transport(self, ca_cert: str | None = None, *, use_profile: bool = True) -> Transport:
        """The HTTP session; ``ca_cert`` (login's ``--ca-cert``) wins over the profile's CA and the environment."""
        if self._transport is None:
            if ca_cert is None and use_profile:
                try:
                    ca_cert = self.profile.caCert
                except CliError:  # not logged in: the environment or the system store decide
                    ca_cert = None
            self._transport = Transport(tls_verify(ca_cert), debug=self.options.debug)
        return self._transport

    @property
    def profile(self) -> Profile:
        if self._profile is None:
            self._profile = self.store.current()
        return self._profile

    @property
    def arm(self) -> ArmClient:
        if self._arm is None:
            profile = self.profile
            transport = self.transport()
            self._arm = ArmClient(transport, profile.server, TokenProvider(self.store, profile, transport))
        return self._arm

    def subscription(self, name_or_id: str | None = None) -> Subscription:
        """The subscription of ``--subscription`` (or ``name_or_id``), else the profile's default."""
        return self.profile.subscription(name_or_id or self.options.subscription)

    @property
    def subscription_id(self) -> str:
        return self.subscription().id

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    # -- talking back --------------------------------------------------------------------------------------------
    def emit(self, result: Any, columns: Columns | None = None) -> None:
        """Print a command's result in the chosen output format (after ``--query``)."""
        text = render(
            result,
            self.options.output,
            query=self.options.query,
            columns=columns,
            color=sys.stdout.isatty(),
        )
        if text:
            sys.stdout.write(text)
            sys.stdout.flush()

    def warn(self, message: str) -> None:
        if not self.options.only_show_errors:
            print(f"WARNING: {message}", file=sys.stderr)

    def note(self, message: str) -> None:
        """What a command did besides its result (stderr, so output stays parseable)."""
        if not self.options.only_show_errors:
            print(message, file=sys.stderr)

    def progress(self, label: str) -> Any:
        """A spinner on stderr while a long operation runs; without a terminal, a line every ``progress_every``
        seconds instead (neither with ``-o none`` or ``--only-show-errors``)."""
        if self.options.only_show_errors or self.options.output == "none":
            return nullcontext()
        if not self.stderr.is_terminal:
            return ProgressLines(label, self.progress_every)
        return self.stderr.status(f"{label} ..", spinner="line")

    def confirm(self, question: str, yes: bool) -> None:
        """az's prompt before destructive commands; ``--yes`` skips it, and without a terminal it is required."""
        if yes:
            return
        if not sys.stdin.isatty():
            raise CliError("The command requires confirmation: add --yes to run it without a terminal.", "NoTTY")
        if not typer.confirm(question, default=False, prompt_suffix=" (y/n): ", show_default=False):
            raise typer.Exit(0)
