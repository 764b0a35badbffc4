"""What docs/azure-cli.md gives: its setup recipes, read from the page itself so the tests run exactly what users
copy."""

from __future__ import annotations

import re
from pathlib import Path

PAGE = Path(__file__).resolve().parents[2] / "docs" / "azure-cli.md"


def recipe(language: str) -> str:
    """The one fenced block of ``language`` on the page (``bash`` for az, ``python`` for the SDKs)."""
    blocks = re.findall(rf"^```{language}\n(.*?)^```", PAGE.read_text(), flags=re.DOTALL | re.MULTILINE)
    assert len(blocks) == 1, f"{PAGE} should hold exactly one ```{language} block, found {len(blocks)}"
    return str(blocks[0])
