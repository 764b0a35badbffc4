"""The ``halyard`` command tree: global options out of argv, the commands, errors as one ``ERROR:`` line.

Loaded by ``main`` for every command line but the exec credential plugin's (``get-token``), which kubectl runs per
process and which must not pay for these imports.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Sequence
from typing import Annotated, Any

import typer
import typer.core

import halyard
from halyard.cli import (
    account,
    ad,
    arcgateway,
    clusterconnect,
    clusterfeatures,
    connectedk8s,
    dns,
    endpoint,
    gettoken,
    group,
    k8sconfiguration,
    k8sextension,
    login,
    monitor,
    network,
    privatelinkscope,
    provider,
    resource,
    rest,
    role,
    server,
    troubleshoot,
    up,
)
from halyard.cli.argv import PASSTHROUGH_COMMANDS, GlobalOptions, split_global_options
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError

app = typer.Typer(
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    # click's plain help, as az and kubectl print theirs: rich's boxed tables cut option names and defaults short
    # (`--kubernetes-vers…`) on an 80-column terminal, where click wraps the help text and keeps the names whole.
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},  # as az
    help="Halyard: Kubernetes clusters anywhere, one control plane.",
)


def _print_version(value: bool) -> None:
    if value:
        print(f"halyard {halyard.__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=_print_version, help="Print halyard's version and exit."),
    ] = False,
) -> None:
    """Halyard: Kubernetes clusters anywhere, one control plane."""


app.command("server")(server.command)
app.command("up")(up.command)
app.command("dns")(dns.command)
app.command("login")(login.login)
app.command("logout")(login.logout)
app.command("rest")(rest.command)
app.command("get-token")(gettoken.command)
app.add_typer(account.app, name="account")
app.add_typer(group.app, name="group")
app.add_typer(network.app, name="network")
app.add_typer(endpoint.app, name="endpoint")
app.add_typer(privatelinkscope.app, name="private-link-scope")
app.add_typer(connectedk8s.app, name="connectedk8s")
app.add_typer(arcgateway.app, name="arcgateway")
connectedk8s.app.command("proxy")(clusterconnect.proxy)
connectedk8s.app.command("get-credentials")(clusterconnect.get_credentials)
connectedk8s.app.command("enable-features")(clusterfeatures.enable_features)
connectedk8s.app.command("disable-features")(clusterfeatures.disable_features)
connectedk8s.app.command("troubleshoot")(troubleshoot.troubleshoot)
app.add_typer(provider.app, name="provider")
app.add_typer(resource.app, name="resource")
app.add_typer(monitor.app, name="monitor")
app.add_typer(ad.app, name="ad")
app.add_typer(role.app, name="role")
app.add_typer(k8sextension.app, name="k8s-extension")
app.add_typer(k8sconfiguration.app, name="k8s-configuration")
app.add_typer(k8sextension.types_app, name="extension-type")  # `halyard extension-type publish …`, as issue 15 says

# Commands whose modules import the control plane, the agents or the simulator (about a second of imports):
# loaded only when the command line names them, so everyday commands start fast.
LIGHT_CONNECTEDK8S = frozenset(
    {"show", "list", "delete", "update", "proxy", "get-credentials", "enable-features", "disable-features"}
)


def load_commands_for(words: Sequence[str]) -> None:
    """Register the heavy commands this command line needs (all of them for the top-level help)."""
    names = [w for w in words if not w.startswith("-")]
    if not names and "--version" in words:
        return
    first = names[0] if names else None
    second = names[1] if len(names) > 1 else None
    if first in (None, "connectedk8s") and second not in LIGHT_CONNECTEDK8S:
        _register(connectedk8s.app, "connect", "halyard.cli.onboarding", "connect")
    if first in (None, "agent") and not any(g.name == "agent" for g in app.registered_groups):
        app.add_typer(importlib.import_module("halyard.cli.agent").app, name="agent")
    if first in (None, "gateway") and not any(g.name == "gateway" for g in app.registered_groups):
        app.add_typer(importlib.import_module("halyard.cli.gatewayserver").app, name="gateway")
    # ``halyard sim`` joins as soon as its module exists (it is written alongside).
    if first in (None, "sim") and importlib.util.find_spec("halyard.cli.sim") is not None:
        _register(app, "sim", "halyard.cli.sim", "command")


# What argv.split_global_options takes out of every command line before click parses it, as click's help shows
# options (az calls them "Global Arguments").
GLOBAL_OPTIONS = (
    ("-o, --output FORMAT", "json, jsonc, table, tsv, yaml or none.  [default: json]"),
    ("--query JMESPATH", "Filter and reshape the result first (https://jmespath.org)."),
    ("--subscription NAME_OR_ID", "The subscription to act on (default: the one `account set` chose)."),
    ("--debug", "Log every HTTP request to stderr; tracebacks of unexpected errors."),
    ("--only-show-errors", "No warnings on stderr."),
)
# Commands that take none of them (their own options are all there is): long-running processes.
NO_GLOBAL_OPTIONS = PASSTHROUGH_COMMANDS | {"up", "agent"}


def _show_global_options(command: Any) -> None:
    """Every command's help (typer's click commands) ends with the global options it accepts."""

    def format_epilog(ctx: Any, formatter: Any) -> None:
        with formatter.section("Global Options (anywhere on the line, as in az)"):
            formatter.write_dl(GLOBAL_OPTIONS)

    # Set on the built click commands rather than through a command class: the commands are declared in every
    # command module, and this is the one place that knows the global options.
    pending = [command]
    while pending:
        current = pending.pop()
        current.format_epilog = format_epilog
        if isinstance(current, typer.core.TyperGroup):
            pending.extend(c for name, c in current.commands.items() if name not in NO_GLOBAL_OPTIONS)


def _register(group: typer.Typer, name: str, module: str, attribute: str) -> None:
    if not any(c.name == name for c in group.registered_commands):
        group.command(name)(getattr(importlib.import_module(module), attribute))


def run(argv: Sequence[str]) -> int:
    """Run one command line; returns the exit code. Nothing but ``ERROR: ...`` reaches the user on failure."""
    options = GlobalOptions()
    invocation: Invocation | None = None
    try:
        options, rest = split_global_options(argv)
        invocation = Invocation(options)
        load_commands_for(rest)
        command = typer.main.get_command(app)
        _show_global_options(command)
        result = command.main(args=rest, prog_name="halyard", standalone_mode=False, obj=invocation)
        return result if isinstance(result, int) else 0
    except CliError as exc:
        _debug_traceback(options)
        print(exc.line(), file=sys.stderr)
        return exc.exit_code
    except typer.TyperException as exc:  # typer's (vendored click) parse errors
        return _parse_error(exc)
    except (typer.Abort, KeyboardInterrupt):
        print("ERROR: (Interrupted) The command was interrupted.", file=sys.stderr)
        return 130
    except Exception as exc:  # the last line of defence: a clear line, the traceback only with --debug
        _debug_traceback(options)
        print(f"ERROR: (InternalError) {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if invocation is not None:
            invocation.close()


def _parse_error(exc: typer.TyperException) -> int:
    ctx = getattr(exc, "ctx", None)
    if type(exc).__name__ == "NoArgsIsHelpError":  # a group alone: az prints its help and succeeds
        if exc.format_message().strip():
            print(exc.format_message())
        return 0
    message = " ".join(exc.format_message().split())
    if message and message[-1] not in ".!?":
        message += "."
    if exc.exit_code == 2:
        hint = f" See '{ctx.command_path} --help'." if ctx is not None else ""
        print(f"ERROR: (UsageError) {message}{hint}", file=sys.stderr)
        return 2
    print(f"ERROR: {message}", file=sys.stderr)
    return exc.exit_code


def _debug_traceback(options: GlobalOptions) -> None:
    if options.debug:
        traceback.print_exc(file=sys.stderr)
