"""A user's sign-in with a browser, as ``az login`` does it: authorization code with PKCE (RFC 7636) and a loopback
redirect (RFC 8252 §7.3): the CLI listens on ``http://127.0.0.1:<random port>/`` for the one redirect that brings
the code back, the user signs in on the server's page in any browser on this machine.

The pieces that decide (the request's parameters, the redirect's verdict, whether a browser can be opened) are pure;
the listener is a plain ``http.server`` answering one redirect.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import sys
import time
import webbrowser
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlencode, urlsplit

from halyard.cli.errors import CliError

# How long the CLI waits for the browser to come back (az waits as long as it takes; a bound ends a forgotten login).
WAIT_SECONDS = 600.0
_DONE_PAGE = (
    b'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Halyard</title></head><body>'
    b"<p>%s</p></body></html>"
)


@dataclass(frozen=True)
class AuthorizationRequest:
    """One sign-in's secrets (kept by the CLI) and the URL the user opens."""

    url: str
    redirect_uri: str
    state: str
    nonce: str
    verifier: str


def new_request(server: str, tenant: str, client_id: str, scope: str, redirect_uri: str) -> AuthorizationRequest:
    verifier = secrets.token_urlsafe(48)  # 64 characters, within RFC 7636's 43-128
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    state, nonce = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    query = {
        "client_id": client_id,
        "response_type": "code",
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        "response_mode": "query",
    }
    url = f"{server}/{tenant}/oauth2/v2.0/authorize?{urlencode(query)}"
    return AuthorizationRequest(url, redirect_uri, state, nonce, verifier)


def code_from_redirect(path: str, state: str) -> str | None:
    """The code a redirect to the loopback listener brings, None for a request that is no redirect (a favicon);
    CliError for an error answer or a state that is not this sign-in's (another page posting to the port)."""
    parts = urlsplit(path)
    params = dict(parse_qsl(parts.query))
    if "code" not in params and "error" not in params:
        return None
    if not secrets.compare_digest(params.get("state", ""), state):
        raise CliError("The sign-in answer does not belong to this login (state mismatch); try again.", "StateMismatch")
    if "error" in params:
        raise CliError(params.get("error_description") or params["error"], params["error"])
    return params["code"]


def can_launch_browser(environ: Mapping[str, str], platform: str) -> bool:
    """Whether a browser can be opened here, as az decides: not over SSH, and on Linux only with a display (or a
    ``$BROWSER`` the user set); macOS and Windows always have one."""
    if environ.get("BROWSER"):
        return True
    if environ.get("SSH_CONNECTION") or environ.get("SSH_CLIENT") or environ.get("SSH_TTY"):
        return False
    if platform.startswith("linux"):
        return bool(environ.get("DISPLAY") or environ.get("WAYLAND_DISPLAY"))
    return platform in ("darwin", "win32", "cygwin")


def open_browser(url: str) -> bool:
    """Open ``url`` in the user's browser if one can be opened; False if not (the URL is printed either way)."""
    if not can_launch_browser(os.environ, sys.platform):
        return False
    try:
        return webbrowser.open(url)
    except webbrowser.Error:
        return False


class LoopbackReceiver:
    """``http://127.0.0.1:<port>/``, a port the system chooses, for the browser's one redirect."""

    def __init__(self) -> None:
        self._server = HTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
        self._server.timeout = 0.5
        self.redirect_uri = f"http://127.0.0.1:{self._server.server_address[1]}/"

    def wait_for_code(
        self, state: str, *, timeout: float = WAIT_SECONDS, clock: Callable[[], float] = time.monotonic
    ) -> str:
        """The code of the first redirect that carries this sign-in's state; CliError on an error answer or when
        nobody comes back within ``timeout``."""
        outcome: dict[str, str | CliError] = {}

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                try:
                    code = code_from_redirect(self.path, state)
                except CliError as exc:
                    outcome["error"] = exc
                    self._answer(400, b"Sign-in failed: return to the terminal.")
                    return
                if code is None:
                    self._answer(404, b"Not found.")
                    return
                outcome["code"] = code
                self._answer(200, b"You are signed in to Halyard. You may close this window.")

            def _answer(self, status: int, message: bytes) -> None:
                body = _DONE_PAGE % message
                self.send_response(status)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                return

        self._server.RequestHandlerClass = Handler
        deadline = clock() + timeout
        try:
            while not outcome:
                if clock() > deadline:
                    raise CliError("No sign-in came back from the browser in time; run the login again.", "Timeout")
                self._server.handle_request()
        finally:
            self._server.server_close()
        error = outcome.get("error")
        if isinstance(error, CliError):
            raise error
        return str(outcome["code"])

    def close(self) -> None:
        self._server.server_close()
