"""``KEY=VALUE`` arguments as az reads them: ``--tags a=b c``, ``--headers K=V`` or a JSON object."""

from __future__ import annotations

import json
from collections.abc import Sequence

from halyard.cli.errors import UsageError


def parse_tags(values: Sequence[str] | None) -> dict[str, str] | None:
    """``None`` when ``--tags`` was not given; ``{}`` for ``--tags ""`` (which clears the tags, as in az)."""
    if values is None:
        return None
    tags: dict[str, str] = {}
    for value in values:
        if not value:
            continue
        key, _, tag_value = value.partition("=")
        if not key:
            raise UsageError(f"argument --tags: '{value}' is not KEY[=VALUE].")
        tags[key] = tag_value
    return tags


def parse_key_values(values: Sequence[str] | None, option: str) -> dict[str, str]:
    """Each value is ``KEY=VALUE`` or a JSON object; later ones win."""
    result: dict[str, str] = {}
    for value in values or []:
        if value.lstrip().startswith("{"):
            try:
                data = json.loads(value)
            except ValueError as exc:
                raise UsageError(f"argument {option}: '{value}' is not valid JSON ({exc}).") from None
            if not isinstance(data, dict):
                raise UsageError(f"argument {option}: '{value}' is not a JSON object.")
            result.update({str(k): str(v) for k, v in data.items()})
            continue
        key, sep, item = value.partition("=")
        if not sep or not key:
            raise UsageError(f"argument {option}: '{value}' is not KEY=VALUE or a JSON object.")
        result[key] = item
    return result
