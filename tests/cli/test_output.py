"""Output formats as az prints them."""

from __future__ import annotations

import jmespath
import pytest
import yaml

from halyard.cli.output import render

pytestmark = pytest.mark.unit

GROUPS = [
    {
        "id": "/subscriptions/s/resourceGroups/alpha",
        "name": "alpha",
        "location": "westus",
        "type": "Microsoft.Resources/resourceGroups",
        "tags": {"env": "dev"},
        "properties": {"provisioningState": "Succeeded"},
        "managedBy": None,
    },
    {
        "id": "/subscriptions/s/resourceGroups/b",
        "name": "b",
        "location": "eastus",
        "type": "Microsoft.Resources/resourceGroups",
        "tags": {},
        "properties": {"provisioningState": "Deleting"},
        "managedBy": None,
    },
]
COLUMNS = (("Name", "name"), ("Location", "location"), ("Status", "properties.provisioningState"))


def test_json_sorted_keys_two_space_indent() -> None:
    assert render({"b": 1, "a": [True, None]}, "json") == '{\n  "a": [\n    true,\n    null\n  ],\n  "b": 1\n}\n'


def test_jsonc_is_json_without_a_terminal_and_colored_with_one() -> None:
    assert render({"a": 1}, "jsonc") == render({"a": 1}, "jsonc", color=False) == render({"a": 1}, "json")
    colored = render({"a": 1}, "jsonc", color=True)
    assert colored is not None and "\x1b[" in colored


def test_curated_table() -> None:
    assert render(GROUPS, "table", columns=COLUMNS) == (
        "Name   Location  Status\n-----  --------  ---------\nalpha  westus    Succeeded\nb      eastus    Deleting\n"
    )


def test_automatic_table_takes_top_level_scalars_and_skips_id_type_etag() -> None:
    text = render([{"id": "x", "type": "t", "etag": "e", "name": "n", "count": 3, "nested": {"a": 1}}], "table")
    assert text == "Name  Count\n----  -----\nn     3\n"
    assert render(True, "table") == "Result\n------\nTrue\n"
    assert render([], "table") == ""
    assert render([{"nested": {"a": 1}}], "table") == ""


def test_query_replaces_curated_columns() -> None:
    query = jmespath.compile("[].{group: name, where: location}")
    assert render(GROUPS, "table", query=query, columns=COLUMNS) == (
        "Group  Where\n-----  ------\nalpha  westus\nb      eastus\n"
    )


def test_tsv_values_by_sorted_key_nested_empty_lists_as_length() -> None:
    text = render([{"name": "n", "tags": {"a": "b"}, "ids": [1, 2], "on": True, "none": None}], "tsv")
    assert text == "2\tn\tNone\tTrue\t\n"
    assert render("plain", "tsv") == "plain\n"
    assert render(GROUPS, "tsv", query=jmespath.compile("[].name")) == "alpha\nb\n"


def test_yaml_round_trips() -> None:
    text = render(GROUPS, "yaml")
    assert text is not None and yaml.safe_load(text) == GROUPS


def test_none_prints_nothing() -> None:
    assert render(GROUPS, "none") is None
    assert render(None, "json") is None
    assert render(GROUPS[0], "json", query=jmespath.compile("missing")) is None
