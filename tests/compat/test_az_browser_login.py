"""The real Azure CLI signs a user in with ``az login`` and a browser (authorization code with PKCE, MSAL's
loopback receiver with response_mode=form_post). The "browser" is a script az launches (``$BROWSER``) that records
the URL; the test then does what a person's browser would: opens the sign-in page, posts the user's password, and
posts the answer page's form to az's loopback address."""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.compat.azcli import AzureCli, az_environment, az_executable
from tests.support.processes import ServerProcess
from tests.support.signin import DIRECTORY, DIRECTORY_VERSION, form_of, new_group, new_user

pytestmark = pytest.mark.e2e
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def test_az_login_with_a_browser_signs_a_user_in(server: ServerProcess, tmp_path: Path) -> None:
    sub = server.admin["subscription"]
    with server.client() as admin:
        group = new_group(admin)
        user, password = new_user(admin, group_id=group["id"])
        r = admin.put(
            f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            json={"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{READER}",
                                 "principalId": group["id"]}},
        )  # fmt: skip
        assert r.status_code in (200, 201), r.text
    executable = az_executable()
    az = AzureCli(executable, az_environment(executable, tmp_path, server.ca))
    az.run("cloud", "register", "-n", "halyard", "--endpoint-resource-manager", server.admin["server"] + "/")
    az.run("cloud", "set", "-n", "halyard")
    az.run("config", "set", "core.instance_discovery=false")
    opened = tmp_path / "opened-url"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    browser.chmod(0o755)
    login = subprocess.Popen(
        [str(executable), "login", "--tenant", server.admin["tenant"], "-o", "json"],
        env={**az.env, "BROWSER": str(browser)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not (opened.exists() and opened.read_text()) and time.monotonic() < deadline:
            assert login.poll() is None, login.communicate()
            time.sleep(0.1)
        url = opened.read_text()
        with httpx.Client(verify=server.ca, timeout=30, follow_redirects=True) as browser_client:
            page = browser_client.get(url)  # MSAL may open its loopback page first, which redirects to ours
            assert page.status_code == 200 and 'name="password"' in page.text, page.text[:500]
            form = form_of(page.text)
            signed = browser_client.post(
                str(page.url).split("?")[0],
                data={**form.fields, "username": user["userPrincipalName"], "password": password},
            )
            assert signed.status_code == 200, signed.text[:500]
            answer = form_of(signed.text)
            assert answer.action and re.match(r"http://localhost:\d+", answer.action), signed.text[:500]
            back = browser_client.post(answer.action, data=answer.fields)
            assert back.status_code == 200, back.text[:500]
        out, err = login.communicate(timeout=90)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, err
    mine = next(a for a in json.loads(out) if a["id"] == sub)
    assert mine["user"] == {"name": user["userPrincipalName"], "type": "user"}
    assert az.json("group", "list") is not None
    az.run("logout")
    with server.client() as admin:  # the session's server is shared: leave no role behind
        for kind, oid in (("users", user["id"]), ("groups", group["id"])):
            assert admin.delete(f"{DIRECTORY}/{kind}/{oid}", params=DIRECTORY_VERSION).status_code == 204
