"""The authorization code flow with PKCE (RFC 6749 §4.1, RFC 7636), as MSAL's public clients run it: which
requests are acceptable, where the user may be sent back to, and the PKCE check. Pure: no I/O.

Only public clients exist (no app registrations), so what keeps a code from reaching someone else is the redirect
URI: a loopback address (``http://localhost:<port>``, what ``az login`` and MSAL desktop apps listen on, RFC 8252
§7.3; https too) or this server's own origin (the portal). PKCE with S256 is required, so a code intercepted on its way back
is useless without the verifier that only the client holds.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from halyard.core.errors import OAuthError

_LOOPBACK = ("localhost", "127.0.0.1", "::1")
MAX_FIELD = 2048


@dataclass(frozen=True)
class AuthorizeRequest:
    client_id: str
    redirect_uri: str
    scope: str
    state: str
    code_challenge: str
    nonce: str
    response_mode: str = "query"  # or form_post: what MSAL's loopback receiver requires since 1.3x

    def fields(self) -> dict[str, str]:
        """What the sign-in form carries back (hidden fields), to be checked again when it is posted."""
        return {
            "client_id": self.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": self.scope,
            "state": self.state,
            "code_challenge": self.code_challenge,
            "code_challenge_method": "S256",
            "nonce": self.nonce,
            "response_mode": self.response_mode,
        }


def parse_authorize(params: dict[str, str], base_url: str) -> AuthorizeRequest:
    """An authorization request, or the OAuthError that says what is wrong with it (shown, never redirected: a
    request that fails here may name a redirect URI nobody vouches for)."""
    if any(len(v) > MAX_FIELD for v in params.values()):
        raise OAuthError("invalid_request", "A parameter of the request is too long.")
    client_id = params.get("client_id", "")
    if not client_id or len(client_id) > 64:
        raise OAuthError("invalid_request", "client_id is required.", aadsts=900144)
    redirect_uri = check_redirect(params.get("redirect_uri", ""), base_url)
    if params.get("response_type") != "code":
        raise OAuthError(
            "unsupported_response_type", "Halyard's sign-in answers with a code only (response_type=code).",
            aadsts=700054,
        )  # fmt: skip
    response_mode = params.get("response_mode") or "query"
    if response_mode not in ("query", "form_post"):
        raise OAuthError("invalid_request", "response_mode must be query or form_post.", aadsts=900144)
    challenge = params.get("code_challenge", "")
    if params.get("code_challenge_method") != "S256" or not 43 <= len(challenge) <= 128:
        raise OAuthError(
            "invalid_request", "PKCE is required: send code_challenge with code_challenge_method=S256.",
            aadsts=9002325,
        )  # fmt: skip
    return AuthorizeRequest(
        client_id,
        redirect_uri,
        params.get("scope", ""),
        params.get("state", ""),
        challenge,
        params.get("nonce", ""),
        response_mode,
    )


def check_redirect(redirect_uri: str, base_url: str) -> str:
    """``redirect_uri`` if the user may be sent there with a code: loopback (any port), or this server's origin."""
    parts = urlsplit(redirect_uri)
    own = urlsplit(base_url)
    # Loopback over https too: a code sent there reaches a process of this machine exactly as over http (a local
    # service with TLS, such as another Halyard federating its sign-in to this one).
    loopback = parts.scheme in ("http", "https") and parts.hostname in _LOOPBACK
    same_origin = (parts.scheme, parts.netloc.lower()) == (own.scheme, own.netloc.lower())
    if not redirect_uri or parts.fragment or parts.username or parts.password or not (loopback or same_origin):
        raise OAuthError(
            "invalid_request",
            f"The redirect URI '{redirect_uri[:200]}' is not allowed: use http://localhost:<port>/... or a page of "
            "this server.",
            aadsts=50011,
        )
    return redirect_uri


def redirect_to(redirect_uri: str, params: dict[str, str]) -> str:
    """``redirect_uri`` with ``params`` added to its query."""
    joiner = "&" if urlsplit(redirect_uri).query else "?"
    return redirect_uri + joiner + urlencode({k: v for k, v in params.items() if v})


def form_action_origin(redirect_uri: str) -> str:
    """The origin a sign-in page's form may end up at (CSP ``form-action`` governs the redirect after the post)."""
    parts = urlsplit(redirect_uri)
    return f"{parts.scheme}://{parts.netloc}"


def pkce_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: BASE64URL(SHA256(verifier)) without padding equals the challenge sent at the start."""
    if not 43 <= len(verifier) <= 128:
        return False
    digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii", "replace")).digest()).rstrip(b"=")
    return hmac.compare_digest(digest.decode(), challenge)
