"""The pure parts of ``halyard login`` with a browser: the authorization request, the redirect's verdict, and
whether a browser may be opened."""

from __future__ import annotations

import base64
import hashlib
import sys
import webbrowser
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import pytest

from halyard.cli.browserlogin import can_launch_browser, code_from_redirect, new_request, open_browser
from halyard.cli.errors import CliError

pytestmark = pytest.mark.unit


def test_the_request_carries_pkce_s256_state_and_nonce() -> None:
    request = new_request("https://h.example:8443", "t1", "client", "aud/.default openid", "http://127.0.0.1:5000/")
    parts = urlsplit(request.url)
    assert parts.path == "/t1/oauth2/v2.0/authorize"
    query = dict(parse_qsl(parts.query))
    digest = base64.urlsafe_b64encode(hashlib.sha256(request.verifier.encode()).digest()).decode().rstrip("=")
    assert query["code_challenge"] == digest and query["code_challenge_method"] == "S256"
    assert (query["state"], query["nonce"], query["redirect_uri"]) == (
        request.state, request.nonce, "http://127.0.0.1:5000/"
    )  # fmt: skip
    assert 43 <= len(request.verifier) <= 128
    assert new_request("https://h", "t", "c", "s", "r").state != request.state


def test_only_a_redirect_with_this_sign_ins_state_gives_a_code() -> None:
    assert code_from_redirect("/favicon.ico", "s1") is None
    assert code_from_redirect("/?code=abc&state=s1", "s1") == "abc"
    with pytest.raises(CliError, match="state mismatch"):
        code_from_redirect("/?code=abc&state=other", "s1")
    with pytest.raises(CliError, match="denied") as caught:
        code_from_redirect("/?error=access_denied&error_description=denied&state=s1", "s1")
    assert caught.value.code == "access_denied"


@pytest.mark.parametrize(
    ("environ", "platform", "expected"),
    [
        ({}, "linux", False),  # a server without a display: print the URL only
        ({"DISPLAY": ":0"}, "linux", True),
        ({"WAYLAND_DISPLAY": "wayland-0"}, "linux", True),
        ({"DISPLAY": ":0", "SSH_CONNECTION": "1.2.3.4 5 6.7.8.9 22"}, "linux", False),
        ({"BROWSER": "/usr/bin/firefox", "SSH_TTY": "/dev/pts/0"}, "linux", True),  # the user said which
        ({}, "darwin", True),
        ({"SSH_CLIENT": "1.2.3.4 5 22"}, "darwin", False),
        ({}, "win32", True),
    ],
)
def test_a_browser_is_opened_only_where_there_is_one(environ: dict[str, str], platform: str, expected: bool) -> None:
    assert can_launch_browser(environ, platform) is expected


def test_the_users_browser_is_opened_at_the_url_only_when_there_is_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = tmp_path / "opened"
    script = tmp_path / "browser.sh"
    script.write_text(f'#!/bin/sh\nprintf "%s" "$1" > {opened}\n')
    script.chmod(0o755)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "SSH_CONNECTION", "SSH_CLIENT", "SSH_TTY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.delenv("BROWSER", raising=False)
    assert open_browser("https://h.example/t/oauth2/v2.0/authorize?x=1") is False and not opened.exists()
    monkeypatch.setenv("BROWSER", str(script))
    monkeypatch.setattr(webbrowser, "_tryorder", None)  # read $BROWSER again, as a new process would
    assert open_browser("https://h.example/t/oauth2/v2.0/authorize?x=1") is True
    assert opened.read_text() == "https://h.example/t/oauth2/v2.0/authorize?x=1"
