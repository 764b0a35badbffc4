"""``halyard group`` end to end, with every output format, ``--query`` and ``--no-wait``."""

from __future__ import annotations

import time

import pytest
import yaml

from tests.api.helpers import unique
from tests.cli.conftest import Cli

pytestmark = pytest.mark.e2e


def test_group_lifecycle_and_output_formats(admin: Cli) -> None:
    name = unique("rg")
    created = admin.json("group", "create", "-n", name, "-l", "westus", "--tags", "env=dev", "team")
    assert created["name"] == name and created["location"] == "westus"
    assert created["tags"] == {"env": "dev", "team": ""}
    assert created["properties"] == {"provisioningState": "Succeeded"}

    table = admin.ok("group", "list", "-o", "table").splitlines()
    assert table[0].split() == ["Name", "Location", "Status"]
    assert [name, "westus", "Succeeded"] in [line.split() for line in table[2:]]

    assert yaml.safe_load(admin.ok("group", "show", "-n", name, "-o", "yaml")) == created
    # As in az: a dict is one tab-separated row (values by sorted key), a list is one row per item.
    assert (
        admin.ok("-o", "tsv", "group", "show", "--query", "{n: name, w: location}", "-n", name) == f"{name}\twestus\n"
    )
    assert admin.ok("group", "show", "-n", name, "--query", "[name, location]", "-o", "tsv") == f"{name}\nwestus\n"
    assert admin.ok("group", "show", "-n", name, "--query", "tags.env", "-o", "tsv") == "dev\n"
    assert name in admin.json("group", "list", "--query", "[].name")
    assert admin.json("group", "list", "--tag", "env=dev", "--query", "[].name") == [name]
    assert admin.ok("group", "show", "-n", name, "-o", "none") == ""

    assert admin.json("group", "exists", "-n", name) is True
    assert admin.ok("group", "delete", "-n", name, "--yes") == ""
    # Without --no-wait the command returns when the group is gone.
    assert admin.json("group", "exists", "-n", name) is False
    missing = admin.run("group", "show", "-n", name)
    assert missing.error == f"ERROR: (ResourceGroupNotFound) Resource group '{name}' could not be found."


def test_delete_no_wait_returns_after_the_first_reply(admin: Cli) -> None:
    name = unique("rg")
    admin.ok("group", "create", "-n", name, "-l", "eastus", "-o", "none")
    assert admin.ok("group", "delete", "-n", name, "--yes", "--no-wait") == ""
    deadline = time.monotonic() + 20
    while admin.json("group", "exists", "-n", name):
        assert time.monotonic() < deadline, "the group was never deleted server-side"
        time.sleep(0.3)


def test_bad_input_gives_one_line_and_a_failing_exit(admin: Cli) -> None:
    no_name = admin.run("group", "show")
    assert no_name.code == 2 and no_name.error.startswith("ERROR: (UsageError) Missing option '--name'")
    bad_output = admin.run("group", "list", "-o", "xml")
    assert bad_output.code == 2 and "invalid choice: 'xml'" in bad_output.error
    bad_location = admin.run("group", "create", "-n", unique("rg"), "-l", "mars")
    assert bad_location.code == 1 and bad_location.error.startswith("ERROR: (LocationNotAvailableForResourceGroup)")
    bad_name = admin.run("group", "create", "-n", "bad/name", "-l", "westus")
    assert bad_name.code == 1 and bad_name.error.startswith("ERROR: (")
    unconfirmed = admin.run("group", "delete", "-n", "whatever")
    assert (
        unconfirmed.error == "ERROR: (NoTTY) The command requires confirmation: add --yes to run it without a terminal."
    )
    assert admin.run("group", "--no-such-option").code == 2
    other = admin.run("group", "list", "--subscription", "no-such-subscription")
    assert other.error.startswith("ERROR: (SubscriptionNotFound) Subscription 'no-such-subscription' not found.")


def test_monitor_activity_log_list(admin: Cli) -> None:
    """``halyard monitor activity-log list`` by group, correlation id and time, as az's options; a table newest
    first; a bad offset refused before any request."""
    name = unique("rg-log")
    admin.json("group", "create", "-n", name, "-l", "westus")
    admin.json("group", "create", "-n", name, "-l", "westus", "--tags", "step=2")
    events = admin.json("monitor", "activity-log", "list", "-g", name, "--offset", "1h")
    assert [e["status"]["value"] for e in events] == ["Succeeded", "Started", "Succeeded", "Started"]
    assert [e["properties"]["statusCode"] for e in events[::2]] == ["OK", "Created"]
    correlation = events[-1]["correlationId"]
    by_id = admin.json("monitor", "activity-log", "list", "--correlation-id", correlation, "--select", "status")
    assert by_id == [{"status": {"value": s, "localizedValue": s}} for s in ("Succeeded", "Started")]
    assert len(admin.json("monitor", "activity-log", "list", "-g", name, "--max-events", "3")) == 3
    table = admin.ok("monitor", "activity-log", "list", "-g", name, "-o", "table").splitlines()
    assert table[0].split() == ["Time", "Status", "Operation", "Caller", "ResourceId", "CorrelationId"]
    assert "Microsoft.Resources/subscriptions/resourceGroups/write" in table[2]
    long_ago = "2001-01-01T00:00:00Z"
    old = admin.run("monitor", "activity-log", "list", "-g", name, "--start-time", long_ago)
    assert old.code != 0 and "90 days" in old.error
    bad = admin.run("monitor", "activity-log", "list", "--offset", "soon")
    assert bad.code != 0 and "--offset 'soon'" in bad.error
