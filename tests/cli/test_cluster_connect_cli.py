"""Cluster connect's commands as users run them, against the real control plane: ``get-token`` (kubectl's exec
plugin) from the token cache and refreshed near expiry, and the control plane's refusals of ``proxy`` and
``get-credentials`` shown as one ``ERROR:`` line before anything listens or is written."""

from __future__ import annotations

import json
import os
import socket
import stat
import time
from pathlib import Path

import httpx
import pytest

from tests.api.helpers import unique
from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


def _token_file(cli: Cli) -> Path:
    (path,) = (cli.config_dir / "tokens").glob("*.json")
    return path


def test_get_token_prints_an_exec_credential_the_management_api_accepts(admin: Cli, server: ServerProcess) -> None:
    for argv in (("get-token",), ("get-token", "--output", "json"), ("get-token", "-o", "json")):
        credential = json.loads(admin.ok(*argv))
        assert credential["kind"] == "ExecCredential"
        assert credential["apiVersion"] == "client.authentication.k8s.io/v1"
        assert credential["spec"] == {"interactive": False}
        assert set(credential["status"]) == {"token", "expirationTimestamp"}
    expires = time.mktime(time.strptime(credential["status"]["expirationTimestamp"], "%Y-%m-%dT%H:%M:%SZ"))
    assert expires - time.timezone > time.time() + 300
    answer = httpx.get(
        f"{server.url}/subscriptions?api-version=2022-12-01",
        headers={"Authorization": f"Bearer {credential['status']['token']}"},
        verify=server.ca,
    )
    assert answer.status_code == 200, answer.text
    # --server picks the login of that server (a kubeconfig may pin it); an unknown one is one clear line.
    assert json.loads(admin.ok("get-token", "--server", server.url + "/"))["status"]["token"]
    unknown = admin.run("get-token", "--server", "https://127.0.0.1:9")
    assert unknown.error == (
        "ERROR: (NotLoggedIn) No login for https://127.0.0.1:9: run 'halyard login --server https://127.0.0.1:9' first."
    )
    assert admin.run("get-token", "-o", "table").error.startswith("ERROR: (UsageError) get-token prints")


def test_get_token_answers_from_the_cache_until_five_minutes_before_expiry(
    server: ServerProcess, tmp_path: Path
) -> None:
    cli = Cli(tmp_path / "config", {})
    assert cli.login(server, server.admin["clientId"], server.admin["clientSecret"], "-o", "none").code == 0
    cache = _token_file(cli)
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    # A cached token with an hour left is handed out as it is: no request (it is not even a real token).
    cache.write_text(json.dumps({"accessToken": "cached-token", "expiresOn": time.time() + 3600}))
    assert json.loads(cli.ok("get-token"))["status"]["token"] == "cached-token"
    # Four minutes left: a new token, cached for the next call.
    cache.write_text(json.dumps({"accessToken": "cached-token", "expiresOn": time.time() + 240}))
    fresh = json.loads(cli.ok("get-token"))["status"]["token"]
    assert fresh != "cached-token" and fresh.count(".") == 2
    stored = json.loads(cache.read_text())
    assert stored["accessToken"] == fresh and stored["expiresOn"] > time.time() + 600
    assert stat.S_IMODE(os.stat(cache).st_mode) == 0o600
    assert json.loads(cli.ok("get-token"))["status"]["token"] == fresh


def test_get_token_without_a_login_says_to_log_in(cli: Cli) -> None:
    assert cli.run("get-token").error == "ERROR: (NotLoggedIn) Please run 'halyard login' to setup account."


def test_proxy_and_get_credentials_show_the_control_planes_refusal_and_start_nothing(
    admin: Cli, server: ServerProcess, tmp_path: Path
) -> None:
    group = unique("rg")
    admin.ok("group", "create", "-n", group, "-l", "westus", "-o", "none")
    kubeconfig = tmp_path / "kubeconfig"
    for command in (("proxy", "--port", str(free_port())), ("get-credentials",)):
        missing = admin.run("connectedk8s", *command, "-g", group, "-n", "nowhere", "-f", str(kubeconfig))
        assert missing.error.startswith("ERROR: (ResourceNotFound)"), missing.stderr
        assert missing.stdout == "" and not kubeconfig.exists()

    # A Reader of the group may read clusters but not list their user credentials: refused before anything else.
    sp = json.loads(admin.run("ad", "sp", "create", "--display-name", unique("reader")).stdout)
    scope = f"/subscriptions/{server.admin['subscription']}/resourceGroups/{group}"
    admin.ok("role", "assignment", "create", "--assignee", sp["appId"], "--role", "Reader", "--scope", scope)
    reader = Cli(tmp_path / "reader", {})
    assert reader.login(server, sp["appId"], sp["password"], "-o", "none").code == 0
    for command in (("proxy",), ("get-credentials",)):
        refused = reader.run("connectedk8s", *command, "-g", group, "-n", "c1", "-f", str(kubeconfig))
        assert refused.error.startswith("ERROR: (AuthorizationFailed)"), refused.stderr
        assert "listClusterUserCredential/action" in refused.error
    assert not kubeconfig.exists()


def test_proxy_refuses_a_port_in_use_before_anything_else(admin: Cli) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = admin.run("connectedk8s", "proxy", "-g", "rg", "-n", "c1", "--port", str(port))
    assert result.error == (
        f"ERROR: (PortInUse) Port {port} is already in use. Please select a different port with the --port option."
    )
