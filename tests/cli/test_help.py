"""``--help`` on an 80-column terminal, the global options in every command's help, ``halyard --version``."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

import halyard

pytestmark = pytest.mark.e2e


def _halyard(*args: str, columns: int = 80) -> str:
    env = {**os.environ, "COLUMNS": str(columns)}
    done = subprocess.run([sys.executable, "-m", "halyard", *args], capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return done.stdout


def test_help_at_80_columns_keeps_option_names_and_defaults_whole() -> None:
    text = _halyard("sim", "--help")
    assert max(len(line) for line in text.splitlines()) <= 80, text
    assert "…" not in text
    assert "--kubernetes-version <str>" in text and "[default: v1.31.2]" in text
    # Help text wraps at word boundaries under its option, never inside a name.
    upgrade = _halyard("connectedk8s", "upgrade", "--help")
    assert max(len(line) for line in upgrade.splitlines()) <= 80, upgrade
    assert "\n  --upgrade-timeout <int range>  " in upgrade


def test_every_command_that_takes_them_shows_the_global_options() -> None:
    for command in (["group", "create"], ["connectedk8s", "show"], ["ad", "sp", "list"], []):
        text = _halyard(*command, "--help")
        section = text.split("Global Options (anywhere on the line, as in az):\n", 1)
        assert len(section) == 2, text
        assert "-o, --output FORMAT" in section[1] and "--query JMESPATH" in section[1]
    # Long-running processes parse no global option: their help does not offer them.
    assert "Global Options" not in _halyard("up", "--help")


def test_version() -> None:
    assert _halyard("--version") == f"halyard {halyard.__version__}\n"
