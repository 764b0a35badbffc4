"""A new service principal, a role at one group, and what it can then do (``ad sp`` and ``role`` commands)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.helpers import unique
from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def test_principal_with_a_role_on_one_group_reads_it_and_not_another(
    admin: Cli, server: ServerProcess, tmp_path: Path
) -> None:
    allowed, denied = unique("rg"), unique("rg")
    for group in (allowed, denied):
        admin.ok("group", "create", "-n", group, "-l", "westus", "-o", "none")

    created = admin.run("ad", "sp", "create", "--display-name", unique("ci-bot"))
    assert created.code == 0, created.stderr
    assert created.stderr.startswith("WARNING: The output includes credentials")
    sp = json.loads(created.stdout)
    assert set(sp) == {"appId", "displayName", "password", "tenant"} and sp["tenant"] == server.admin["tenant"]
    object_id = admin.json("ad", "sp", "show", "--id", sp["appId"])["id"]
    assert sp["appId"] in admin.json("ad", "sp", "list", "--query", "[].appId")

    scope = f"/subscriptions/{server.admin['subscription']}/resourceGroups/{allowed}"
    assignment = admin.json(
        "role", "assignment", "create", "--assignee", sp["appId"], "--role", "Reader", "--scope", scope
    )
    assert (assignment["principalId"], assignment["scope"], assignment["roleDefinitionName"]) == (
        object_id,
        scope,
        "Reader",
    )
    listed = admin.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", scope)
    assert [a["id"] for a in listed] == [assignment["id"]]
    assert "Reader" in admin.json("role", "definition", "list", "--query", "[].roleName")

    bot = Cli(tmp_path / "bot-config", {})
    assert bot.login(server, sp["appId"], sp["password"], "-o", "none").code == 0
    assert bot.json("group", "show", "-n", allowed)["name"] == allowed
    assert bot.json("group", "list", "--query", "[].name") == [allowed]
    refused = bot.run("group", "show", "-n", denied)
    assert refused.error.startswith(f"ERROR: (AuthorizationFailed) The client '{sp['appId']}'")
    assert f"/resourceGroups/{denied}" in refused.error
    # Reader: no writes even where it reads.
    assert bot.run("group", "create", "-n", allowed, "-l", "westus").error.startswith("ERROR: (AuthorizationFailed)")

    admin.ok("role", "assignment", "delete", "--assignee", sp["appId"], "--role", "Reader", "--scope", scope)
    assert admin.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", scope) == []
    assert bot.run("group", "show", "-n", allowed).error.startswith("ERROR: (AuthorizationFailed)")

    admin.ok("ad", "sp", "delete", "--id", sp["appId"])
    assert admin.run("ad", "sp", "show", "--id", sp["appId"]).error.startswith("ERROR: (PrincipalNotFound)")


def test_credential_reset_invalidates_the_old_secret(admin: Cli, server: ServerProcess, tmp_path: Path) -> None:
    quiet = admin.run("ad", "sp", "create", "--display-name", unique("rotated"), "--only-show-errors")
    assert quiet.code == 0 and quiet.stderr == ""  # no warning
    sp = json.loads(quiet.stdout)
    bot = Cli(tmp_path / "bot-config", {})
    # No role yet: it sees no subscription, which a login refuses unless told otherwise.
    assert bot.login(server, sp["appId"], sp["password"]).error.startswith("ERROR: (SubscriptionNotFound)")
    assert bot.login(server, sp["appId"], sp["password"], "--allow-no-subscriptions").stdout.strip() == "[]"
    subscription = f"/subscriptions/{server.admin['subscription']}"
    assignment = admin.json("role", "assignment", "create", "--assignee", sp["appId"], "--role", "Reader",
                            "--scope", subscription)  # fmt: skip
    assert bot.json("account", "list", "--refresh", "--query", "[].id") == [server.admin["subscription"]]

    reset = admin.run("ad", "sp", "credential", "reset", "--id", sp["appId"])
    assert reset.code == 0 and reset.stderr.startswith("WARNING: The output includes credentials")
    new = json.loads(reset.stdout)
    assert set(new) == {"appId", "password", "tenant"} and new["password"] != sp["password"]

    old = bot.login(server, sp["appId"], sp["password"])
    assert old.error.startswith("ERROR: (invalid_client) AADSTS7000215")
    # Logging in again to the same server keeps its CA (no --ca-cert this time).
    relogin = bot.run("login", "--service-principal", "-u", sp["appId"], "-p", new["password"],
                      "--tenant", server.admin["tenant"], "--server", server.url, "-o", "none")  # fmt: skip
    assert relogin.code == 0, relogin.stderr
    assert bot.ok("group", "list", "-o", "none") == ""

    admin.ok("role", "assignment", "delete", "--ids", assignment["id"])
    assert admin.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", subscription) == []


def test_role_input_errors(admin: Cli, server: ServerProcess) -> None:
    scope = f"/subscriptions/{server.admin['subscription']}"
    unknown_role = admin.run("role", "assignment", "create", "--assignee", server.admin["clientId"], "--role", "Nope", "--scope", scope)  # fmt: skip
    assert unknown_role.error == "ERROR: (RoleDefinitionDoesNotExist) Role 'Nope' doesn't exist."
    nobody = admin.run(
        "role", "assignment", "create", "--assignee", "no-such-app", "--role", "Reader", "--scope", scope
    )
    assert nobody.error.startswith("ERROR: (PrincipalNotFound) Cannot find user or service principal")
    no_scope = admin.run("role", "assignment", "create", "--assignee", "x", "--role", "Reader")
    assert no_scope.code == 2 and "--scope is required" in no_scope.error


def test_a_role_at_the_tenant_root_reaches_every_group(admin: Cli, server: ServerProcess, tmp_path: Path) -> None:
    group = unique("rg")
    admin.ok("group", "create", "-n", group, "-l", "westus", "-o", "none")
    sp = admin.json("ad", "sp", "create", "--display-name", unique("auditor"))
    assignment = admin.json(
        "role", "assignment", "create", "--assignee", sp["appId"], "--role", "Reader", "--scope", "/"
    )
    assert (assignment["scope"], assignment["id"].split("/roleAssignments/")[0]) == (
        "/",
        "/providers/Microsoft.Authorization",
    )
    listed = admin.json("role", "assignment", "list", "--assignee", sp["appId"], "--scope", "/")
    assert [a["id"] for a in listed] == [assignment["id"]]

    auditor = Cli(tmp_path / "auditor-config", {})
    assert auditor.login(server, sp["appId"], sp["password"], "-o", "none").code == 0
    assert auditor.json("group", "show", "-n", group)["name"] == group

    admin.ok("role", "assignment", "delete", "--assignee", sp["appId"], "--role", "Reader", "--scope", "/")
    assert auditor.run("group", "show", "-n", group).error.startswith("ERROR: (AuthorizationFailed)")
    admin.ok("ad", "sp", "delete", "--id", sp["appId"])
