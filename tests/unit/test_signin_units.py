"""The pure parts of users and sign-in: user codes, user names, password rules and the device page's escaping."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.fernet import Fernet

from halyard.controlplane.identity import pages
from halyard.controlplane.identity.authcode import check_redirect, parse_authorize, pkce_matches
from halyard.controlplane.identity.csrf import DEVICE_PAGE, FormGuard, binding_of
from halyard.controlplane.identity.people import check_password_rules, normalize_user_name
from halyard.controlplane.identity.signin import (
    USER_CODE_LENGTH,
    display_user_code,
    new_user_code,
    normalize_user_code,
)
from halyard.core.clock import ManualClock
from halyard.core.errors import InvalidRequest, OAuthError
from halyard.core.sealing import Sealer


def test_user_codes_are_read_and_typed_forgivingly() -> None:
    codes = {new_user_code() for _ in range(200)}
    assert len(codes) == 200 and all(len(c) == USER_CODE_LENGTH for c in codes)
    assert not any(ch in code for code in codes for ch in "01OIL")  # nothing to misread
    code = next(iter(codes))
    shown = display_user_code(code)
    assert shown[4] == "-" and normalize_user_code(shown) == code
    assert normalize_user_code(f" {shown.lower()} ") == code
    assert normalize_user_code("ab cd-ef gh") == "ABCDEFGH"


def test_user_names_look_like_mail_addresses_and_compare_lower_cased() -> None:
    assert normalize_user_name("Alice@Contoso.Example") == "alice@contoso.example"
    for bad in ("alice", "@contoso", "alice@", "a b@c.d", "<script>@x.y", "a@b@c"):
        with pytest.raises(InvalidRequest):
            normalize_user_name(bad)


def test_password_rules_never_echo_the_password() -> None:
    check_password_rules("twelve chars")
    for bad in ("short", "x" * 257):
        with pytest.raises(InvalidRequest) as caught:
            check_password_rules(bad)
        assert bad not in str(caught.value)


def test_the_device_page_escapes_what_it_echoes_and_keeps_no_password() -> None:
    payload = '"><script>alert(1)</script>'
    page = pages.form_page(csrf=payload, user_code=payload, user_name=payload, error=payload)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'type="password" required' in page and "value=" not in page.split('name="password"')[1].split(">")[0]
    assert "<script>" not in pages.done_page(payload)
    assert "default-src 'none'" in pages.HEADERS["Content-Security-Policy"]
    assert "script-src" not in pages.HEADERS["Content-Security-Policy"]  # no script at all


def test_redirect_uris_are_loopback_or_this_server() -> None:
    base = "https://halyard.example:8443"
    for ok in (
        "http://localhost:8400/", "http://127.0.0.1:5000/cb", "http://[::1]:1/", f"{base}/portal/signed-in",
        "https://127.0.0.1:8400/federation/callback",  # loopback with TLS (another Halyard federating to this one)
    ):  # fmt: skip
        assert check_redirect(ok, base) == ok
    for bad in (
        "https://evil.example/cb",
        "ftp://localhost:8400/",
        "http://localhost.evil.example/",
        "http://user@localhost:80/",
        "http://localhost:8400/#fragment",
        "https://halyard.example:9443/portal",
        "",
    ):
        with pytest.raises(OAuthError):
            check_redirect(bad, base)


def test_pkce_s256_is_required_and_checked() -> None:
    verifier = "v" * 43
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    assert pkce_matches(verifier, challenge)
    assert not pkce_matches("w" * 43, challenge)
    assert not pkce_matches(verifier[:42], challenge)  # too short to be a verifier
    params = {
        "client_id": "c", "redirect_uri": "http://localhost:1/", "response_type": "code",
        "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    assert parse_authorize(params, "https://h").response_mode == "query"
    for change in ({"code_challenge_method": "plain"}, {"response_type": "token"}, {"response_mode": "fragment"}):
        with pytest.raises(OAuthError):
            parse_authorize({**params, **change}, "https://h")


def test_the_form_post_page_allows_its_own_script_only() -> None:
    page = pages.form_post_page("http://localhost:1/", {"code": "c", "state": '"><script>x</script>'})
    assert "<script>x" not in page and page.count("<script>") == 1
    csp = pages.form_post_headers("http://localhost:1")["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"].startswith("'sha256-") and "unsafe" not in directives["script-src"]
    assert "form-action 'self' http://localhost:1" in csp


def test_csrf_tokens_belong_to_one_browser_one_form_and_one_hour() -> None:
    clock = ManualClock()
    guard = FormGuard(Sealer(Fernet.generate_key()), clock, secure=True)
    browser = guard.browser({})
    assert browser.new and guard.set_cookie(browser)["Set-Cookie"].startswith("__Host-halyard-signin=")
    cookies = {guard.cookie: browser.id}
    assert not guard.browser(cookies).new and guard.set_cookie(guard.browser(cookies)) == {}
    request = binding_of({"client_id": "c", "state": "s"})
    token = guard.issue(browser, request)
    assert guard.check(cookies, token, request)
    assert not guard.check({}, token, request)  # no cookie: another browser, or a cross-site post
    assert not guard.check({guard.cookie: guard.browser({}).id}, token, request)
    assert not guard.check(cookies, token, binding_of({"client_id": "c", "state": "t"}))
    assert not guard.check(cookies, token, DEVICE_PAGE)
    other_server = FormGuard(Sealer(Fernet.generate_key()), clock, secure=True)
    assert not other_server.check(cookies, token, request)
    for garbage in ("", "x", "é" * 10, "A" * 2000):
        assert not guard.check(cookies, garbage, request)
    clock.advance(3601)
    assert not guard.check(cookies, token, request)
    assert FormGuard(Sealer(Fernet.generate_key()), clock, secure=False).cookie == "halyard-signin"
