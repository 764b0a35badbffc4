"""ARM list paging: ``nextLink`` URLs carrying an opaque ``$skipToken`` (the last key of the page)."""

from __future__ import annotations

import base64
from urllib.parse import quote

from halyard.core.errors import InvalidRequest


def encode_skip_token(last_key: str) -> str:
    return base64.urlsafe_b64encode(last_key.encode()).decode()


def decode_skip_token(token: str | None) -> str | None:
    if not token:
        return None
    try:
        key = base64.b64decode(token.encode(), altchars=b"-_", validate=True).decode()
    except (ValueError, UnicodeDecodeError):
        key = ""
    if not key:
        raise InvalidRequest("The $skipToken is not valid.", code="InvalidSkipToken")
    return key


def next_link(
    base_url: str,
    path: str,
    api_version: str,
    last_key: str,
    top: int | None,
    filter_: str | None = None,
    orderby: str | None = None,
    expand: str | None = None,
) -> str:
    """The next page's URL: the same query (``$top``, ``$filter``, ``$orderby``, ``$expand``) after ``last_key``."""
    link = f"{base_url}{path}?api-version={api_version}&%24skipToken={encode_skip_token(last_key)}"
    link += f"&%24top={top}" if top else ""
    link += f"&%24filter={quote(filter_, safe='')}" if filter_ else ""
    link += f"&%24orderby={quote(orderby, safe='')}" if orderby else ""
    return link + (f"&%24expand={quote(expand, safe='')}" if expand else "")
