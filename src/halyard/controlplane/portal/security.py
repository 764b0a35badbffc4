"""What every portal answer carries (a strict Content-Security-Policy and its companions) and the CSRF check of
every state-changing request. Pure: no I/O."""

from __future__ import annotations

import hmac
from urllib.parse import urlsplit

# No inline script or style anywhere, no eval (htmx is configured with allowEval false), nothing from elsewhere:
# whatever a resource name or tag smuggles into a page can neither run nor load.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: with no-referrer Chromium sends "Origin: null" on the portal's own form posts,
    # and the Origin check below needs the real one.
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
PAGE_HEADERS = {**HEADERS, "Cache-Control": "no-store"}
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"


def csrf_ok(expected: str, sent: str | None, origin: str | None, own_origin: str) -> bool:
    """A state-changing request is the portal's own: it carries the session's token (a hidden field or htmx's
    header), and its Origin, when the browser sends one, is this server's. SameSite=Strict already keeps the session
    cookie off other sites' requests; this is the second lock."""
    if not expected or not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
        return False
    if origin is None:  # an older browser or a non-browser client: the token alone decides
        return True
    parts, own = urlsplit(origin), urlsplit(own_origin)
    return (parts.scheme, parts.netloc.lower()) == (own.scheme, own.netloc.lower())
