"""OData ``$filter`` literals, as ARM list calls take them (``az group list --tag``, ``az resource list``)."""

from __future__ import annotations


def odata_quote(value: str) -> str:
    """A string literal of an OData ``$filter``."""
    return "'" + value.replace("'", "''") + "'"
