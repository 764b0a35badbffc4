"""``halyard ad user``/``ad group`` and ``halyard login --use-device-code`` against a real server: a user in a group
holding Reader signs in on the device page, reads, is refused writes, refreshes with rotation and logs out."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess
from tests.support.signin import fill_device_page, form_of

pytestmark = pytest.mark.e2e


def test_a_user_logs_in_with_a_device_code(admin: Cli, cli: Cli, server: ServerProcess) -> None:
    suffix = uuid.uuid4().hex[:8]
    name, password = f"dana-{suffix}@example.test", f"a fine password {suffix}"
    user = admin.json(
        "ad", "user", "create", "--display-name", "Dana", "--user-principal-name", name, "--password", password
    )
    assert user["userPrincipalName"] == name and "password" not in user
    group = admin.json("ad", "group", "create", "--display-name", f"ops-{suffix}")
    admin.ok("ad", "group", "member", "add", "--group", f"ops-{suffix}", "--member-id", user["id"])
    members = admin.json("ad", "group", "member", "list", "--group", group["id"])
    assert [m["id"] for m in members] == [user["id"]]
    assert name in admin.ok("ad", "user", "list", "-o", "table")
    sub = server.admin["subscription"]
    admin.ok("role", "assignment", "create", "--assignee", f"ops-{suffix}", "--role", "Reader",
             "--scope", f"/subscriptions/{sub}", "-o", "none")  # fmt: skip

    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "HALYARD_SERVER")}
    env["HALYARD_CONFIG_DIR"] = str(cli.config_dir)
    login = subprocess.Popen(
        [sys.executable, "-m", "halyard", "login", "--use-device-code", "--tenant", server.admin["tenant"],
         "--server", server.url, "--ca-cert", server.ca],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        assert login.stderr is not None
        message = login.stderr.readline()
        found = re.search(r"open the page (\S+) and enter the code (\S+) ", message)
        assert found, message
        page, code = found.groups()
        with httpx.Client(verify=server.ca, timeout=30) as browser:
            r = fill_device_page(browser, page, {"user_code": code, "username": name, "password": password})
        assert r.status_code == 200 and "signed in" in r.text.lower()
        out, err = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, err
    accounts = json.loads(out)
    assert next(a for a in accounts if a["id"] == sub)["user"] == {"name": name, "type": "user"}

    # Reader through the group: lists, cannot create.
    cli.ok("group", "list", "-o", "none")
    refused = cli.run("group", "create", "-n", f"nope-{suffix}", "-l", "westeurope")
    assert refused.code != 0 and "AuthorizationFailed" in refused.stderr

    # An access token about to lapse is renewed with the refresh token, which rotates.
    (profile_file,) = (cli.config_dir / "profiles").iterdir()
    first = json.loads(profile_file.read_text())["refreshToken"]
    (token_file,) = (cli.config_dir / "tokens").iterdir()
    token_file.write_text(json.dumps({**json.loads(token_file.read_text()), "expiresOn": time.time() + 30}))
    cli.ok("group", "list", "-o", "none")
    second = json.loads(profile_file.read_text())["refreshToken"]
    assert second and second != first
    token_endpoint = f"{server.url}/{server.admin['tenant']}/oauth2/v2.0/token"
    form = {"grant_type": "refresh_token", "client_id": first and json.loads(profile_file.read_text())["clientId"]}
    old = httpx.post(
        token_endpoint,
        data={**form, "refresh_token": first, "scope": server.admin["audience"] + ".default"},
        verify=server.ca,
    )
    assert old.json()["error"] == "invalid_grant"  # and that replay revoked the family: the CLI must sign in again
    token_file.write_text(json.dumps({**json.loads(token_file.read_text()), "expiresOn": time.time() + 30}))
    again = cli.run("group", "list", "-o", "none")
    assert again.code != 0 and "login --use-device-code" in again.stderr

    # Removing the user from the group ends the access its role gave; deleting the user removes them.
    admin.ok("ad", "group", "member", "remove", "--group", group["id"], "--member-id", user["id"])
    assert admin.json("ad", "group", "member", "list", "--group", group["id"]) == []
    admin.ok("ad", "user", "delete", "--id", name)
    assert admin.run("ad", "user", "show", "--id", name).code != 0
    admin.ok("ad", "group", "delete", "--group", group["id"])
    assert cli.ok("logout") == ""


def test_a_user_logs_in_with_a_browser(admin: Cli, cli: Cli, server: ServerProcess, tmp_path: Path) -> None:
    """``halyard login --tenant T``: authorization code with PKCE, the code brought back to the CLI's loopback
    listener by the browser's redirect. The "browser" is httpx doing what one does: open the URL, post the form."""
    suffix = uuid.uuid4().hex[:8]
    name, password = f"erin-{suffix}@example.test", f"a fine password {suffix}"
    user = admin.json(
        "ad", "user", "create", "--display-name", "Erin", "--user-principal-name", name, "--password", password
    )
    sub = server.admin["subscription"]
    admin.ok("role", "assignment", "create", "--assignee", user["id"], "--role", "Reader",
             "--scope", f"/subscriptions/{sub}", "-o", "none")  # fmt: skip
    # A browser is available ($BROWSER, a script recording what it is asked to open; tests/unit/test_browser_login.py
    # shows the CLI opens it without --no-browser).
    opened = tmp_path / "opened-url"
    browser_script = tmp_path / "browser.sh"
    browser_script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    browser_script.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if k not in ("REQUESTS_CA_BUNDLE", "HALYARD_SERVER")}
    env.update(HALYARD_CONFIG_DIR=str(cli.config_dir), BROWSER=str(browser_script))
    command = [sys.executable, "-m", "halyard", "login", "--tenant", server.admin["tenant"], "--server", server.url,
               "--ca-cert", server.ca]  # fmt: skip

    # With --no-browser it only prints the URL, browser or not.
    login = subprocess.Popen(
        [*command, "--no-browser"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    try:
        assert login.stderr is not None
        message = login.stderr.readline()
        found = re.search(r"open this URL in a web browser on this machine: (\S+) ", message)
        assert found, message
        url = found.group(1)
        query = dict(parse_qsl(urlsplit(url).query))
        assert query["code_challenge_method"] == "S256" and re.fullmatch(
            r"http://127\.0\.0\.1:\d+/", query["redirect_uri"]
        )
        with httpx.Client(verify=server.ca, timeout=30, follow_redirects=True) as browser:
            page = browser.get(url)
            assert page.status_code == 200 and 'name="password"' in page.text
            back = browser.post(
                url.split("?")[0], data={**form_of(page.text).fields, "username": name, "password": password}
            )
            assert back.status_code == 200 and "signed in" in back.text, back.text
            assert str(back.url).startswith(query["redirect_uri"])
        out, err = login.communicate(timeout=60)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, err
    assert not opened.exists()  # no browser was opened
    assert next(a for a in json.loads(out) if a["id"] == sub)["user"] == {"name": name, "type": "user"}
    cli.ok("group", "list", "-o", "none")  # the user's token works
    (profile_file,) = (cli.config_dir / "profiles").iterdir()
    assert json.loads(profile_file.read_text())["refreshToken"]
    assert cli.ok("logout") == ""
    admin.ok("ad", "user", "delete", "--id", name)
