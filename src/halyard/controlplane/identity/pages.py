"""The login service's pages: the device-code page (RFC 8628's verification URI) and the sign-in page of the
authorization code flow; forms for a code or a redirect, the user name and the password.

Plain HTML, no script, no external resource: it works air-gapped and its Content-Security-Policy allows nothing but
its own inline style and posting the form back to itself. Everything echoed is escaped.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from html import escape

from halyard.controlplane.identity.csrf import FIELD

FEDERATION_FIELD = "federation"  # the button of "Sign in with <provider>": the provider's id

CSP = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:26rem;margin:3rem auto;padding:0 1rem}"
    "label{display:block;margin-top:1rem}input{width:100%;padding:.4rem;font-size:1rem;box-sizing:border-box}"
    "button{margin-top:1.2rem;padding:.5rem 1.2rem;font-size:1rem}.error{color:#a00}"
)


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" '
        f'content="width=device-width,initial-scale=1"><title>{escape(title)}</title><style>{_STYLE}</style></head>'
        f"<body><h1>{escape(title)}</h1>{body}</body></html>"
    )


_NEW_PASSWORD = (
    '<label>New password <input name="new_password" type="password" required minlength="12" '
    'autocomplete="new-password"></label>'
)


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{escape(name)}" value="{escape(value)}">'


def form_page(
    *,
    csrf: str,
    providers: Sequence[tuple[str, str]] = (),
    user_code: str = "",
    user_name: str = "",
    error: str = "",
    ask_new: bool = False,
) -> str:
    """The form; ``error`` (already worded for people) shown above it, the user's entries kept but the password;
    ``csrf``: the token its post must carry back; ``providers`` (id, name): "Sign in with <name>" buttons, which
    post the code only."""
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    federated = "".join(
        f'<button type=submit name="{FEDERATION_FIELD}" value="{escape(pid)}" formnovalidate>'
        f"Sign in with {escape(name)}</button> "
        for pid, name in providers
    )
    return _page(
        "Sign in to Halyard",
        f"{message}<p>Enter the code shown by the application or device, then your user name and password.</p>"
        f'<form method="post" autocomplete="on">{_hidden(FIELD, csrf)}'
        f'<label>Code <input name="user_code" value="{escape(user_code)}" required autofocus '
        'autocomplete="one-time-code" autocapitalize="characters"></label>'
        f'<label>User name <input name="username" value="{escape(user_name)}" required autocomplete="username" '
        'type="email"></label>'
        '<label>Password <input name="password" type="password" required autocomplete="current-password"></label>'
        f"{_NEW_PASSWORD if ask_new else ''}<button type=submit>Sign in</button>"
        f"{'<p>Or, with the code above:</p>' + federated if federated else ''}</form>",
    )


def headers(form_origin: str = "") -> dict[str, str]:
    """The pages' headers; ``form_origin``: where a posted form may be redirected to (a client's loopback)."""
    if not form_origin:
        return HEADERS
    return {
        **HEADERS,
        "Content-Security-Policy": CSP.replace("form-action 'self'", f"form-action 'self' {form_origin}"),
    }


def signin_page(
    fields: dict[str, str],
    *,
    csrf: str,
    providers: Sequence[tuple[str, str]] = (),
    user_name: str = "",
    error: str = "",
    ask_new: bool = False,
) -> str:
    """The authorization code flow's sign-in form: the request's parameters ride along as hidden fields, with the
    CSRF token; ``providers`` (id, name): a "Sign in with <name>" button each, for federated sign-in."""
    message = f'<p class="error" role="alert">{escape(error)}</p>' if error else ""
    hidden = "".join(_hidden(k, v) for k, v in fields.items()) + _hidden(FIELD, csrf)
    federated = "".join(
        f'<form method="post">{hidden}<button type=submit name="{FEDERATION_FIELD}" value="{escape(pid)}">'
        f"Sign in with {escape(name)}</button></form>"
        for pid, name in providers
    )
    return _page(
        "Sign in to Halyard",
        f"{message}<p>Sign in to continue to the application ({escape(fields.get('client_id', ''))}).</p>"
        f'<form method="post" autocomplete="on">{hidden}'
        f'<label>User name <input name="username" value="{escape(user_name)}" required autofocus '
        'autocomplete="username" type="email"></label>'
        '<label>Password <input name="password" type="password" required autocomplete="current-password"></label>'
        f"{_NEW_PASSWORD if ask_new else ''}<button type=submit>Sign in</button></form>{federated}",
    )


def refused_page(message: str) -> str:
    """A plain page that says why a post was refused (a form without a valid CSRF token, a failed federated
    sign-in): no form to resubmit, only what to do next."""
    return _page("Sign-in refused", f'<p class="error" role="alert">{escape(message)}</p>')


# The one script of any page: submitting a form_post answer without a click. Allowed by its hash, nothing else.
_SUBMIT = "document.forms[0].submit()"
_SUBMIT_HASH = "'sha256-" + base64.b64encode(hashlib.sha256(_SUBMIT.encode()).digest()).decode() + "'"


def form_post_headers(form_origin: str) -> dict[str, str]:
    page = headers(form_origin)
    return {**page, "Content-Security-Policy": page["Content-Security-Policy"] + f"; script-src {_SUBMIT_HASH}"}


def form_post_page(redirect_uri: str, fields: dict[str, str]) -> str:
    """OAuth 2.0 Form Post Response Mode: the code posted to the client's redirect URI by the browser (a button
    when scripts are off)."""
    hidden = "".join(f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in fields.items() if v)
    return _page(
        "Signing in",
        f'<form method="post" action="{escape(redirect_uri)}">{hidden}<button type=submit>Continue</button></form>'
        f"<script>{_SUBMIT}</script>",
    )


def done_page(user_name: str) -> str:
    return _page(
        "You are signed in",
        f"<p>Signed in to Halyard as <strong>{escape(user_name)}</strong>. Return to the application or device; "
        "you may close this window.</p>",
    )
