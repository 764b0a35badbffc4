"""Halyard's directory of service principals, served by the management API under
``/providers/Halyard.Directory/servicePrincipals`` (``az ad`` talks to Microsoft Graph instead): the look-ups other
commands need (``role assignment`` names its assignee by app id)."""

from __future__ import annotations

from halyard.cli.arm import arm_error, json_body
from halyard.cli.context import Invocation
from halyard.cli.errors import CliError

API_VERSION = "2026-01-01"
BASE = "/providers/Halyard.Directory/servicePrincipals"


USERS = "/providers/Halyard.Directory/users"
GROUPS = "/providers/Halyard.Directory/groups"


def resolve_object_id(inv: Invocation, assignee: str) -> str:
    """The object id of a service principal (app id or object id), a user (object id or user principal name) or a
    group (object id or display name), looked up in that order, as az looks up an assignee."""
    for base in (BASE, USERS, GROUPS):
        response = inv.arm.send("GET", f"{base}/{assignee}", params={"api-version": API_VERSION})
        if response.status_code != 404:
            break
    if response.status_code == 404:
        raise CliError(
            f"Cannot find user or service principal in graph database for '{assignee}'.", "PrincipalNotFound"
        )
    if response.status_code == 403:
        raise CliError(
            f"Not allowed to look up '{assignee}' in the directory; give its object id with --assignee-object-id.",
            "AuthorizationFailed",
        )
    if response.status_code >= 400:
        raise arm_error(response)
    return str(json_body(response)["id"])
