"""The options every ``az`` command accepts anywhere on the line, taken out before typer parses the rest.

``az`` lets ``-o table`` or ``--query`` sit before or after the command's own options; click only accepts a group's
options before the subcommand. Pulling them out of ``argv`` first keeps every command free of the five options.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import jmespath
from jmespath.exceptions import JMESPathError
from jmespath.parser import ParsedResult

from halyard.cli.errors import UsageError

OUTPUT_FORMATS = ("json", "jsonc", "table", "tsv", "yaml", "none")
# Commands whose options are their own (long-running processes with their own flags): left untouched.
PASSTHROUGH_COMMANDS = frozenset({"server", "sim"})
# Options that take several values the az way (``--tags a=b c=d``); click wants the option repeated.
MULTI_VALUE_OPTIONS = frozenset({"--tags", "--ids", "--headers", "--uri-parameters", "--features"})


@dataclass(frozen=True)
class GlobalOptions:
    output: str = "json"
    query: ParsedResult | None = None
    query_text: str | None = None
    subscription: str | None = None
    debug: bool = False
    verbose: bool = False
    only_show_errors: bool = False


_VALUED = {"--output": "output", "-o": "output", "--query": "query", "--subscription": "subscription"}
_FLAGS = {"--debug": "debug", "--verbose": "verbose", "--only-show-errors": "only_show_errors"}


def split_global_options(argv: Sequence[str]) -> tuple[GlobalOptions, list[str]]:
    """(the global options, the remaining arguments). Raises :class:`UsageError` for a bad value."""
    values: dict[str, str] = {}
    flags: dict[str, bool] = {}
    rest: list[str] = []
    args = list(argv)
    if args and args[0] in PASSTHROUGH_COMMANDS:
        return GlobalOptions(), args
    i = 0
    while i < len(args):
        arg = args[i]
        if arg == "--":
            rest.extend(args[i:])
            break
        name, eq, inline = arg.partition("=")
        if name in _VALUED:
            if eq:
                value = inline
            elif i + 1 < len(args):
                i += 1
                value = args[i]
            else:
                raise UsageError(f"argument {_spelling(name)}: expected one argument")
            values[_VALUED[name]] = value
        elif arg.startswith("-o") and arg[2:] in OUTPUT_FORMATS:
            # ``-otable``, as argparse allows; only a real format, so a value such as a secret "-oXy..." stays put
            values["output"] = arg[2:]
        elif arg in _FLAGS:
            flags[_FLAGS[arg]] = True
        else:
            rest.append(arg)
        i += 1
    output = values.get("output", "json")
    if output not in OUTPUT_FORMATS:
        raise UsageError(
            f"argument --output/-o: invalid choice: '{output}' (choose from {', '.join(map(repr, OUTPUT_FORMATS))})"
        )
    query_text = values.get("query")
    query = None
    if query_text is not None:
        try:
            query = jmespath.compile(query_text)
        except JMESPathError as exc:
            reason = " ".join(str(exc).split())
            raise UsageError(f"argument --query: invalid jmespath_type value: {query_text!r} ({reason})") from None
    return (
        GlobalOptions(
            output=output,
            query=query,
            query_text=query_text,
            subscription=values.get("subscription"),
            **flags,
        ),
        expand_multi_values(rest),
    )


def expand_multi_values(args: Sequence[str]) -> list[str]:
    """``--tags a=b c=d`` → ``--tags a=b --tags c=d``: every value up to the next option keeps its option."""
    out: list[str] = []
    current: str | None = None
    for arg in args:
        if arg.startswith("-") and arg != "-":
            name = arg.partition("=")[0]
            current = name if name in MULTI_VALUE_OPTIONS and "=" not in arg else None
            out.append(arg)
            continue
        if current is not None and out and out[-1] != current:
            out.append(current)
        out.append(arg)
    return out


def _spelling(name: str) -> str:
    return {"--output": "--output/-o", "-o": "--output/-o"}.get(name, name)
