"""The suite's own guard: a name nobody on this machine knows fails to resolve without a packet leaving loopback."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.loopback_dns import CONTENT, RESOLV_CONF


def test_the_session_resolver_is_loopback_only() -> None:
    assert RESOLV_CONF.read_text() == CONTENT  # this worker runs in the session's namespace
    assert Path("/proc/self/mountinfo").read_text().count(" /etc/resolv.conf ") >= 1


def test_an_unknown_private_name_fails_at_once() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("nobody.dp.privatelink.halyard.local", 443, type=socket.SOCK_STREAM)
    assert socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)  # /etc/hosts still answers
