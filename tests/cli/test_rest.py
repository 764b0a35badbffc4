"""``halyard rest``: any management call with the login's token, as ``az rest``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.api.helpers import cluster_body, cluster_path, make_group, unique
from tests.cli.conftest import Cli
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def test_rest_relative_urls_bodies_and_errors(admin: Cli, server: ServerProcess, tmp_path: Path) -> None:
    subs = admin.json("rest", "--url", "/subscriptions?api-version=2022-12-01")
    assert server.admin["subscription"] in [s["subscriptionId"] for s in subs["value"]]

    name = unique("rg")
    body = tmp_path / "group.json"
    body.write_text(json.dumps({"location": "westus", "tags": {"via": "rest"}}))
    url = f"/subscriptions/{{subscriptionId}}/resourcegroups/{name}"
    created = admin.json("rest", "-m", "put", "-u", url, "-b", f"@{body}", "--uri-parameters", "api-version=2024-11-01")
    assert created["name"] == name and created["tags"] == {"via": "rest"}
    assert admin.json("rest", "-u", f"{server.url}{url.replace('{subscriptionId}', server.admin['subscription'])}?api-version=2024-11-01", "--query", "location") == "westus"  # fmt: skip

    # az rest adds no api-version: the server's error comes back as one line.
    missing = admin.run("rest", "-u", url)
    assert missing.error.startswith("ERROR: (MissingApiVersionParameter)")
    bad_json = admin.run("rest", "-m", "put", "-u", url + "?api-version=2024-11-01", "-b", "{not json")
    assert bad_json.error.startswith("ERROR: (")
    # The token goes only to the logged-in server.
    elsewhere = admin.run("rest", "-u", "https://example.invalid/x")
    assert elsewhere.error.startswith("ERROR: (UnknownResource)")
    # DELETE answers 202 without a body: nothing printed, and nothing polled.
    assert admin.ok("rest", "-m", "delete", "-u", url + "?api-version=2024-11-01") == ""


def test_rest_sends_the_given_headers(admin: Cli, server: ServerProcess, tmp_path: Path) -> None:
    group, name = make_group(server), unique("cc")
    body = tmp_path / "cluster.json"
    body.write_text(json.dumps(cluster_body()))
    url = cluster_path(server, group, name) + "?api-version=2026-05-01"
    admin.ok("rest", "-m", "put", "-u", url, "-b", f"@{body}", "-o", "none")
    # If-None-Match: * on an existing resource is refused: the header reached the server.
    again = admin.run("rest", "-m", "put", "-u", url, "-b", f"@{body}", "--headers", "If-None-Match=*", "x-ms-test=1")
    assert again.error.startswith("ERROR: (PreconditionFailed)")
    admin.ok("rest", "-m", "delete", "-u", url)
