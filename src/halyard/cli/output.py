"""Result formats, as ``az`` prints them: json (sorted keys, 2-space indent), jsonc, table, tsv, yaml, none.

A ``--query`` (JMESPath) applies first. As in az, a query replaces a command's curated table columns: the table
is then built from whatever the query returned.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import yaml
from jmespath.parser import ParsedResult

# (header, dotted path into each item): the curated columns of one command's table.
Columns = Sequence[tuple[str, str]]
# The fields az leaves out of automatic tables: long, and in every row.
_SKIPPED_IN_TABLES = ("id", "type", "etag")


def render(
    result: Any,
    output: str,
    *,
    query: ParsedResult | None = None,
    columns: Columns | None = None,
    color: bool = False,
) -> str | None:
    """The text to print for ``result``, or ``None`` when nothing is printed."""
    if result is None or output == "none":
        return None
    if query is not None:
        result = query.search(result)
        columns = None
        if result is None:
            return None
    if output == "json":
        return to_json(result)
    if output == "jsonc":
        return to_jsonc(result, color)
    if output == "yaml":
        return yaml.safe_dump(result, default_flow_style=False, allow_unicode=True)
    if output == "tsv":
        return to_tsv(result)
    if output == "table":
        return to_table(result, columns)
    raise ValueError(f"unknown output format {output!r}")


def to_json(result: Any) -> str:
    return json.dumps(result, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def to_jsonc(result: Any, color: bool) -> str:
    text = to_json(result)
    if not color:
        return text
    from pygments import highlight
    from pygments.formatters import TerminalFormatter
    from pygments.lexers import JsonLexer

    return str(highlight(text, JsonLexer(), TerminalFormatter()))


def to_tsv(result: Any) -> str:
    """One line per item; a dict's values by sorted key, a nested object as an empty cell, a list as its length."""
    rows = result if isinstance(result, list) else [result]
    return "".join(_tsv_row(row) + "\n" for row in rows)


def _tsv_row(row: Any) -> str:
    if isinstance(row, dict):
        return "\t".join(_tsv_cell(v) for _, v in sorted(row.items()))
    if isinstance(row, list):
        return "\t".join(_tsv_cell(v) for v in row)
    return _tsv_cell(row)


def _tsv_cell(value: Any) -> str:
    if isinstance(value, dict):
        return ""
    if isinstance(value, list):
        return str(len(value))
    return value if isinstance(value, str) else str(value)


def to_table(result: Any, columns: Columns | None = None) -> str:
    items = result if isinstance(result, list) else [result]
    if not items:
        return ""
    rows = [_curated_row(item, columns) if columns else _auto_row(item) for item in items]
    headers: list[str] = []
    for row in rows:
        headers += [h for h in row if h not in headers]
    if not headers:  # nothing scalar to show (az prints nothing either)
        return ""
    cells = [[_table_cell(row.get(h)) for h in headers] for row in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, h in enumerate(headers)]
    lines = [
        "  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)),
        "  ".join("-" * w for w in widths),
        *("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in cells),
    ]
    return "".join(line.rstrip() + "\n" for line in lines)


def _curated_row(item: Any, columns: Columns) -> dict[str, Any]:
    return {header: lookup(item, path) for header, path in columns}


def _auto_row(item: Any) -> dict[str, Any]:
    if isinstance(item, dict):
        return {
            k[:1].upper() + k[1:]: v
            for k, v in item.items()
            if k not in _SKIPPED_IN_TABLES and not isinstance(v, (dict, list))
        }
    if isinstance(item, list):
        return {f"Column{i + 1}": v for i, v in enumerate(item)}
    return {"Result": item}


def _table_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True)
    return str(value)


def lookup(item: Any, path: str) -> Any:
    """``item["a"]["b"]`` for ``"a.b"``; ``None`` where a step is missing."""
    value = item
    for step in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(step)
    return value
