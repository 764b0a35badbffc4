"""The pure parts of users and sign-in: user codes, user names, password rules and the device page's escaping."""

from __future__ import annotations

import pytest

from halyard.controlplane.identity import pages
from halyard.controlplane.identity.people import check_password_rules, normalize_user_name
from halyard.controlplane.identity.signin import (
    USER_CODE_LENGTH,
    display_user_code,
    new_user_code,
    normalize_user_code,
)
from halyard.core.errors import InvalidRequest


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
    page = pages.form_page(user_code=payload, user_name=payload, error=payload)
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert 'type="password" required' in page and "value=" not in page.split('name="password"')[1].split(">")[0]
    assert "<script>" not in pages.done_page(payload)
    assert "default-src 'none'" in pages.HEADERS["Content-Security-Policy"]
    assert "script-src" not in pages.HEADERS["Content-Security-Policy"]  # no script at all
