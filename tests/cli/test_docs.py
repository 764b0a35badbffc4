"""The documented commands run as written after ``make up``, so the pages cannot drift from the code.

The convention (README.md, "Documentation"): a fenced block marked ```` ```sh ```` holds commands that run as
written, in order, in a fresh shell in the checkout once ``make up`` runs; ```` ```text ```` holds synopses with
placeholders, file layouts and commands that need more than ``make up`` gives (a real cluster, a second server);
the one ```` ```bash ```` block of docs/azure-cli.md is the Azure CLI recipe tests/compat runs with the real ``az``.

Each page's ``sh`` blocks run as one bash script (``set -euo pipefail``: the first failing command fails the page),
in a stand-in for the checkout (this virtual environment as ``.venv``, the charts, ``.halyard-data`` of a real
``halyard up``), with nothing of this process's environment but a fresh HOME and the system PATH (plus the kubectl
and helm the tests use).
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import clean_shell_env, start_up
from tests.sim.conftest import helm_path, kubectl_path
from tests.support.processes import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\S*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
# What a fence may be marked with; an unmarked block is read as text (shown, not run).
KNOWN = {"sh", "text", "bash", "python", "json", "yaml", ""}


def runnable_blocks(page: Path) -> list[tuple[int, str]]:
    """(line number, content) of each ``sh`` block of the page, in order."""
    text = page.read_text()
    return [(text.count("\n", 0, m.start()) + 1, m.group(2)) for m in FENCE.finditer(text) if m.group(1) == "sh"]


def page_script(page: Path) -> str:
    """The page's ``sh`` blocks as one script that names each block on stderr before running it."""
    parts = ["set -euo pipefail"]
    for line, block in runnable_blocks(page):
        parts.append(f"echo '### {page.relative_to(ROOT)}:{line}' >&2")
        parts.append(block)
    return "\n".join(parts)


@pytest.mark.unit
def test_fences_are_marked_as_the_convention_says() -> None:
    for page in PAGES:
        marks = {m.group(1) for m in FENCE.finditer(page.read_text())}
        assert marks <= KNOWN, f"{page}: fences marked {marks - KNOWN}; use sh (runs) or text (does not)"
    assert any(runnable_blocks(page) for page in PAGES)


@pytest.mark.unit
def test_the_azure_cli_page_sets_its_variables_from_admin_json_in_one_line(tmp_path: Path) -> None:
    (_, block), *others = runnable_blocks(ROOT / "docs" / "azure-cli.md")
    assert not others and block.count("\n") == 1, "one line"
    admin = {"server": "https://127.0.0.1:8443", "caCert": "/data dir/tls/ca.pem", "tenant": "t-1", "clientId": "c-1",
             "clientSecret": "it's \"quoted\" $(and not run)"}  # fmt: skip
    (tmp_path / ".halyard-data").mkdir()
    (tmp_path / ".halyard-data" / "admin.json").write_text(json.dumps(admin))
    names = "HALYARD_URL HALYARD_CA TENANT CLIENT_ID CLIENT_SECRET".split()
    script = block + "".join(f'printf "%s\\n" "${n}"\n' for n in names)
    done = subprocess.run(["bash", "-euo", "pipefail", "-c", script], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [admin[k] for k in ("server", "caCert", "tenant", "clientId", "clientSecret")]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A checkout after ``make up``: the real ``halyard up`` serving from its ``.halyard-data``."""
    root = tmp_path_factory.mktemp("checkout")
    (root / ".venv").symlink_to(Path(sys.prefix))
    (root / "charts").symlink_to(ROOT / "charts")
    tools = root / "tools"
    tools.mkdir()
    (tools / "kubectl").symlink_to(kubectl_path("1.33"))
    (tools / "helm").symlink_to(helm_path())
    proc, _ = start_up(root / ".halyard-data", free_port())
    try:
        yield root
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("page", [p for p in PAGES if runnable_blocks(p)], ids=lambda p: p.name)
def test_documented_commands_run_as_written_after_make_up(page: Path, checkout: Path, tmp_path: Path) -> None:
    env = clean_shell_env(tmp_path / "home")
    env["PATH"] = f"{checkout / 'tools'}:{env['PATH']}"
    done = subprocess.run(
        ["bash", "-c", page_script(page)], capture_output=True, text=True, env=env, cwd=checkout, timeout=300
    )
    failed_in = [line for line in done.stderr.splitlines() if line.startswith("### ")][-1:]
    assert done.returncode == 0, f"{failed_in} exit {done.returncode}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    assert "Traceback" not in done.stderr
