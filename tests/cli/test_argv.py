"""Global options pulled out of argv wherever they sit, and az-style multi-value options."""

from __future__ import annotations

import pytest

from halyard.cli.argv import expand_multi_values, split_global_options
from halyard.cli.errors import UsageError
from halyard.cli.keyvalues import parse_key_values, parse_tags

pytestmark = pytest.mark.unit


def test_global_options_anywhere_on_the_line() -> None:
    options, rest = split_global_options(
        ["group", "-o", "table", "list", "--query", "[].name", "--subscription", "dev", "--debug"]
    )
    assert rest == ["group", "list"]
    assert options.output == "table"
    assert options.query_text == "[].name"
    assert options.query is not None and options.query.search([{"name": "a"}]) == ["a"]
    assert options.subscription == "dev"
    assert options.debug and not options.only_show_errors


@pytest.mark.parametrize("spelling", [["--output=tsv"], ["-otsv"], ["--output", "tsv"], ["-o", "tsv"]])
def test_output_spellings(spelling: list[str]) -> None:
    options, rest = split_global_options(["account", "show", *spelling])
    assert (options.output, rest) == ("tsv", ["account", "show"])


def test_values_that_look_like_output_options_stay_with_their_option() -> None:
    options, rest = split_global_options(["login", "-p", "-oQ7x_secret"])
    assert options.output == "json" and rest == ["login", "-p", "-oQ7x_secret"]


def test_defaults_and_flags() -> None:
    options, rest = split_global_options(["group", "list", "--only-show-errors", "--verbose"])
    assert options.output == "json" and options.query is None and options.subscription is None
    assert options.only_show_errors and options.verbose and rest == ["group", "list"]


def test_long_running_processes_keep_their_own_options() -> None:
    argv = ["server", "--port", "1", "-o", "x"]
    assert split_global_options(argv)[1] == argv
    assert split_global_options(["sim", "--debug"])[1] == ["sim", "--debug"]


def test_double_dash_ends_global_options() -> None:
    _, rest = split_global_options(["rest", "--", "-o", "table"])
    assert rest == ["rest", "--", "-o", "table"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["group", "list", "-o", "xml"], "argument --output/-o: invalid choice: 'xml'"),
        (["group", "list", "--query", "[["], "argument --query: invalid jmespath_type value: '[['"),
        (["group", "list", "--output"], "argument --output/-o: expected one argument"),
    ],
)
def test_bad_global_options_are_usage_errors(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        split_global_options(argv)
    assert caught.value.exit_code == 2
    assert caught.value.line().startswith(f"ERROR: (UsageError) {message}")
    assert "\n" not in caught.value.line()


def test_multi_value_options_are_repeated_for_click() -> None:
    assert expand_multi_values(["group", "create", "--tags", "a=b", "c", "-l", "westus"]) == [
        "group",
        "create",
        "--tags",
        "a=b",
        "--tags",
        "c",
        "-l",
        "westus",
    ]
    assert expand_multi_values(["--ids", "/x", "/y"]) == ["--ids", "/x", "--ids", "/y"]
    # Other options keep a single value; the next word is not theirs.
    assert expand_multi_values(["-n", "a", "b"]) == ["-n", "a", "b"]


def test_tags_and_key_values() -> None:
    assert parse_tags(None) is None
    assert parse_tags([""]) == {}
    assert parse_tags(["env=prod", "team", "url=a=b"]) == {"env": "prod", "team": "", "url": "a=b"}
    assert parse_key_values(['{"a": 1}', "b=2"], "--headers") == {"a": "1", "b": "2"}
    with pytest.raises(UsageError, match="--headers"):
        parse_key_values(["novalue"], "--headers")
    with pytest.raises(UsageError, match="not valid JSON"):
        parse_key_values(["{bad"], "--headers")
