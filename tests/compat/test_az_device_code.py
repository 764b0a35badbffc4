"""The real Azure CLI signs a user in with ``az login --use-device-code``: az shows the device page and code, the
user enters them with their password (driven with httpx: a real browser is the portal's part), and az then lists
the subscriptions the user's group gives them, refreshing its tokens as it does on Azure."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path

import httpx
import pytest

from tests.compat.azcli import AzureCli, az_environment, az_executable
from tests.support.processes import ServerProcess
from tests.support.signin import DIRECTORY, DIRECTORY_VERSION, fill_device_page, new_group, new_user

pytestmark = pytest.mark.e2e
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"


def test_az_login_use_device_code_signs_a_user_in(server: ServerProcess, tmp_path: Path) -> None:
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
    login = subprocess.Popen(
        [str(executable), "login", "--use-device-code", "--tenant", server.admin["tenant"], "-o", "json"],
        env=az.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert login.stderr is not None
        seen = []
        for line in login.stderr:
            seen.append(line)
            found = re.search(r"open the page (\S+) and enter the code (\S+) ", line)
            if found:
                break
        assert found, "".join(seen)
        page, code = found.groups()
        with httpx.Client(verify=server.ca, timeout=30) as browser:
            entered = fill_device_page(
                browser, page, {"user_code": code, "username": user["userPrincipalName"], "password": password}
            )
        assert entered.status_code == 200, entered.text
        out, err = login.communicate(timeout=90)
    finally:
        if login.poll() is None:
            login.kill()
            login.wait()
    assert login.returncode == 0, "".join(seen) + err
    accounts = json.loads(out)
    mine = next(a for a in accounts if a["id"] == sub)
    assert mine["user"] == {"name": user["userPrincipalName"], "type": "user"}
    # Reader through the group: reads work with az's cached token, writes are refused.
    assert az.json("group", "list") is not None
    refused = az.run("group", "create", "-n", f"nope-{uuid.uuid4().hex[:6]}", "-l", "westus", ok=False)
    assert "AuthorizationFailed" in refused.stderr
    token = az.json("account", "get-access-token")
    assert token["subscription"] == sub and token["accessToken"].count(".") == 2
    az.run("logout")
    with server.client() as admin:  # the session's server is shared: leave no role behind
        for kind, oid in (("users", user["id"]), ("groups", group["id"])):
            assert admin.delete(f"{DIRECTORY}/{kind}/{oid}", params=DIRECTORY_VERSION).status_code == 204
