"""Run the real Azure CLI (from PyPI, in its own venv) with a profile of its own, as a user would in a shell."""

from __future__ import annotations

import json
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

INSTALL_HINT = (
    "run `make az-cli` (scripts/install-azure-cli.sh .cache/azcli) and set HALYARD_AZ_CLI=<repo>/.cache/azcli/bin/az"
)


def az_executable() -> Path:
    """The az that HALYARD_AZ_CLI names; the test fails saying how to get it otherwise."""
    configured = os.environ.get("HALYARD_AZ_CLI")
    if not configured:
        pytest.fail(
            f"HALYARD_AZ_CLI is not set: the Azure CLI compatibility tests need the real az; {INSTALL_HINT}",
            pytrace=False,
        )
    path = Path(configured)
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"HALYARD_AZ_CLI={configured} is not an executable; {INSTALL_HINT}", pytrace=False)
    return path


def az_environment(executable: Path, home: Path, ca: str) -> dict[str, str]:
    """The environment of every az call: a HOME of its own (the documented AZURE_CONFIG_DIR lives under it), the
    server's CA, no telemetry upload (it would outlive the command and try the internet), and no AZURE_* settings
    leaking in from the developer's shell."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    env.update(
        HOME=str(home),
        PATH=f"{executable.parent}{os.pathsep}{env.get('PATH', '')}",
        AZURE_CONFIG_DIR=str(home / ".azure-halyard"),
        REQUESTS_CA_BUNDLE=ca,
        AZURE_CORE_COLLECT_TELEMETRY="false",
        AZURE_CORE_NO_COLOR="true",
    )
    return env


@dataclass
class Exchange:
    """One HTTP request az made and what it was answered, as its ``--debug`` log shows them."""

    method: str
    url: str
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)  # of the response, names lower-cased

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


def exchanges(debug_log: str) -> list[Exchange]:
    """The requests and responses in az's ``--debug`` output (azure.cli.core.sdk.policies logs each)."""
    found: list[Exchange] = []
    url, in_response_headers = "", False
    for line in debug_log.splitlines():
        if match := re.search(r"Request URL: '([^']*)'", line):
            url, in_response_headers = match[1], False
        elif (match := re.search(r"Request method: '([^']*)'", line)) and url:
            found.append(Exchange(match[1], url))
        elif (match := re.search(r"Response status: (\d+)", line)) and found:
            found[-1].status = int(match[1])
        elif "Response headers:" in line:
            in_response_headers = True
        elif "Response content:" in line:
            in_response_headers = False
        elif in_response_headers and (match := re.search(r"^.*?:\s+'([^']+)': '([^']*)'$", line)) and found:
            found[-1].headers[match[1].lower()] = match[2]
    return found


@dataclass
class AzureCli:
    executable: Path
    env: dict[str, str]

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
        """``az args...``; with ``ok`` it must succeed, otherwise it must fail (and the result says how)."""
        result = subprocess.run(
            [str(self.executable), *args], env=self.env, capture_output=True, text=True, timeout=120
        )
        succeeded = result.returncode == 0
        assert succeeded == ok, f"az {' '.join(args)} exited {result.returncode}\n{result.stdout}\n{result.stderr}"
        return result

    def traced(self, *args: str) -> tuple[Any, list[Exchange]]:
        """Run a successful ``az args... -o json --debug``: its parsed output (None if none) and the HTTP exchanges
        it made, in order."""
        result = self.run(*args, "-o", "json", "--debug")
        return (json.loads(result.stdout) if result.stdout.strip() else None), exchanges(result.stderr)

    def json(self, *args: str) -> Any:
        """The parsed JSON output of a successful ``az args... -o json``."""
        return json.loads(self.run(*args, "-o", "json").stdout)

    def script(self, text: str, variables: dict[str, str]) -> subprocess.CompletedProcess[str]:
        """Run shell lines (a documented recipe) with ``az`` on PATH, stopping at the first failing command. The
        recipe must set AZURE_CONFIG_DIR and REQUESTS_CA_BUNDLE itself: they are taken out of its environment."""
        env = {k: v for k, v in self.env.items() if k not in ("AZURE_CONFIG_DIR", "REQUESTS_CA_BUNDLE")}
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", text],
            env={**env, **variables},
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, (
            f"recipe failed with {result.returncode}:\n{text}\n{result.stdout}\n{result.stderr}"
        )
        return result
