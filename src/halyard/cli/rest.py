"""``halyard rest``: any request to the management API with the login's token, as ``az rest``.

Like az: relative URLs resolve against the server, ``{subscriptionId}`` in the URL becomes the current
subscription, the api-version is not added, nothing is polled, and the token goes only to the server's own origin.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.cli.arm import ArmClient, arm_error
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError, UsageError
from halyard.cli.keyvalues import parse_key_values

METHODS = ("get", "put", "post", "delete", "patch", "head", "options")


def read_body(value: str | None) -> tuple[bytes | None, bool]:
    """(the body bytes, whether it is JSON). ``@path`` reads a file, as az does."""
    if value is None:
        return None, False
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            text = path.read_text()
        except OSError as exc:
            raise UsageError(f"argument --body/-b: cannot read {path}: {exc.strerror or exc}.") from None
    else:
        text = value
    try:
        json.loads(text)
    except ValueError:
        return text.encode(), False
    return text.encode(), True


def command(
    ctx: typer.Context,
    url: Annotated[
        str, typer.Option("--url", "--uri", "-u", help="Absolute URL, or a path on the server (/subscriptions/...).")
    ],
    method: Annotated[str, typer.Option("--method", "-m", help="HTTP method.")] = "get",
    body: Annotated[
        str | None, typer.Option("--body", "-b", help="Request body: JSON text, or @file to read it from a file.")
    ] = None,
    headers: Annotated[
        list[str] | None, typer.Option(help="Space-separated headers KEY=VALUE, or a JSON object.")
    ] = None,
    uri_parameters: Annotated[
        list[str] | None,
        typer.Option("--uri-parameters", "--url-parameters", help="Query parameters KEY=VALUE, or a JSON object."),
    ] = None,
    skip_authorization_header: Annotated[bool, typer.Option(help="Send no Authorization header.")] = False,
) -> None:
    """Send a request to the management API and print the answer: halyard rest -m get -u /subscriptions?api-version=2022-12-01."""
    inv = Invocation.of(ctx)
    verb = method.lower()
    if verb not in METHODS:
        raise UsageError(f"argument --method/-m: invalid choice: '{method}' (choose from {', '.join(METHODS)})")
    if "{subscriptionId}" in url:
        url = url.replace("{subscriptionId}", inv.subscription_id)
    content, is_json = read_body(body)
    all_headers = parse_key_values(headers, "--headers")
    if is_json and not any(k.lower() == "content-type" for k in all_headers):
        all_headers["Content-Type"] = "application/json"
    params = parse_key_values(uri_parameters, "--uri-parameters")
    if skip_authorization_header:
        try:
            server = inv.profile.server
        except CliError:  # an absolute URL needs no login
            server = ""
        arm = ArmClient(inv.transport(), server, None)
    else:
        arm = inv.arm
    if not skip_authorization_header and not arm.is_ours(arm.url(url)):
        raise CliError(
            f"'{url}' is not on the logged-in server {arm.server}: the token is sent only there. "
            "Add --skip-authorization-header to call it without one.",
            "UnknownResource",
        )
    response = arm.send(verb.upper(), url, params=params or None, content=content, headers=all_headers)
    if response.status_code >= 400:
        raise arm_error(response)
    if not response.content:
        return
    try:
        result: Any = response.json()
    except ValueError:
        inv.warn("Not a json response, outputting to stdout.")
        sys.stdout.write(response.text + ("" if response.text.endswith("\n") else "\n"))
        return
    inv.emit(result)
