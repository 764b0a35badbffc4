"""``halyard login`` / ``account`` / ``logout`` against a real server, and the login errors users meet first."""

from __future__ import annotations

import json
import stat
import time

import pytest

from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def test_login_stores_an_owner_only_profile_and_lists_subscriptions(cli: Cli, server: ServerProcess) -> None:
    admin = server.admin
    result = cli.login(server, admin["clientId"], admin["clientSecret"])
    assert result.code == 0, result.stderr
    accounts = json.loads(result.stdout)
    assert {
        "id": admin["subscription"],
        "tenantId": admin["tenant"],
        "homeTenantId": admin["tenant"],
        "isDefault": True,
        "state": "Enabled",
        "server": server.url,
        "user": {"name": admin["clientId"], "type": "servicePrincipal"},
    }.items() <= next(a for a in accounts if a["id"] == admin["subscription"]).items()

    assert stat.S_IMODE(cli.config_dir.stat().st_mode) == 0o700
    files = [p for p in cli.config_dir.rglob("*") if p.is_file()]
    assert {p.parent.name for p in files} == {cli.config_dir.name, "profiles", "tokens"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)

    shown = cli.json("account", "show")
    assert shown["id"] == admin["subscription"] and shown["isDefault"] is True
    assert cli.ok("account", "list", "--query", "[?isDefault].id", "-o", "tsv").strip() == admin["subscription"]
    assert admin["subscription"] in cli.ok("account", "list", "-o", "table")
    name = shown["name"]
    assert cli.ok("account", "set", "-s", name) == ""
    assert cli.ok("account", "show", "--subscription", name, "--query", "name", "-o", "tsv").strip() == name

    token = cli.json("account", "get-access-token")
    assert token["tokenType"] == "Bearer" and token["subscription"] == admin["subscription"]
    assert token["expiresOn"] > time.time() + 600 and token["accessToken"].count(".") == 2  # a JWT

    assert cli.ok("logout") == ""
    assert cli.run("account", "show").error == "ERROR: (NotLoggedIn) Please run 'halyard login' to setup account."


def test_token_cached_then_refreshed_before_expiry(cli: Cli, server: ServerProcess) -> None:
    assert cli.login(server, server.admin["clientId"], server.admin["clientSecret"], "-o", "none").code == 0
    (token_file,) = (cli.config_dir / "tokens").iterdir()
    first = json.loads(token_file.read_text())
    cli.ok("group", "list", "-o", "none")
    assert json.loads(token_file.read_text()) == first  # the cached token served
    # A token about to lapse is replaced before the call, not after a failure.
    token_file.write_text(json.dumps({**first, "expiresOn": time.time() + 30}))
    cli.ok("group", "list", "-o", "none")
    refreshed = json.loads(token_file.read_text())
    assert refreshed["accessToken"] != first["accessToken"] and refreshed["expiresOn"] > time.time() + 600


def test_ca_from_requests_ca_bundle(tmp_path, server: ServerProcess) -> None:  # type: ignore[no-untyped-def]
    cli = Cli(tmp_path / "config", {"REQUESTS_CA_BUNDLE": server.ca})
    result = cli.run(
        "login", "--service-principal", "-u", server.admin["clientId"], "-p", server.admin["clientSecret"],
        "--tenant", server.admin["tenant"], "--server", server.url, "-o", "none",
    )  # fmt: skip
    assert result.code == 0, result.stderr
    assert cli.ok("group", "list", "-o", "none") == ""


def test_login_errors_are_one_clear_line(cli: Cli, server: ServerProcess) -> None:
    admin = server.admin
    wrong = cli.login(server, admin["clientId"], "not-the-secret")
    assert wrong.error.startswith("ERROR: (invalid_client) AADSTS7000215: Invalid client secret")
    assert wrong.stdout == ""

    nobody = f"https://127.0.0.1:{free_port()}"
    refused = cli.run("login", "--service-principal", "-u", "a", "-p", "b", "--tenant", "t", "--server", nobody)
    assert refused.error.startswith(f"ERROR: (ConnectionError) Cannot connect to {nobody}")

    untrusted = cli.run(
        "login", "--service-principal", "-u", "a", "-p", "b", "--tenant", "t", "--server", server.url,
    )  # fmt: skip
    assert untrusted.error.startswith(f"ERROR: (CertificateVerificationFailed) The certificate of {server.url}")

    # http:// to the TLS listener: the server hangs up unanswered, and the error says to use https.
    plain = server.url.replace("https://", "http://")
    unanswered = cli.run("login", "--service-principal", "-u", "a", "-p", "b", "--tenant", "t", "--server", plain)
    assert unanswered.error == (
        f"ERROR: (HttpsRequired) {plain} closed the connection without answering a plain-HTTP request: Halyard "
        f"serves HTTPS (unless started with --insecure-http). Use {server.url}."
    )

    not_url = cli.run("login", "--service-principal", "-u", "a", "-p", "b", "--tenant", "t", "--server", "nope")
    assert (
        not_url.code == 2 and not_url.error == "ERROR: (UsageError) argument --server: 'nope' is not an https:// URL."
    )

    # Nothing was stored by the failed attempts.
    assert cli.run("account", "show").error.startswith("ERROR: (NotLoggedIn)")


def test_debug_logs_requests_but_never_secrets_or_tokens(cli: Cli, server: ServerProcess) -> None:
    secret = server.admin["clientSecret"]
    result = cli.login(server, server.admin["clientId"], secret, "--debug", "-o", "none")
    assert result.code == 0, result.stderr
    assert f"DEBUG: Request: POST {server.url}/{server.admin['tenant']}/oauth2/v2.0/token" in result.stderr
    assert f"DEBUG: Response: 200 GET {server.url}/subscriptions?api-version=2022-12-01" in result.stderr
    (token_file,) = (cli.config_dir / "tokens").iterdir()
    token = json.loads(token_file.read_text())["accessToken"]
    listed = cli.run("group", "list", "--debug", "-o", "none")
    for stderr in (result.stderr, listed.stderr):
        assert secret not in stderr and token not in stderr and "Bearer" not in stderr
