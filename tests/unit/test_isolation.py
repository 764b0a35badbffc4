"""The suite's own guard (tests/support/isolation.py): the session has no way off this machine."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from tests.support.isolation import CONTENT, RESOLV_CONF


def test_the_session_has_only_a_loopback_interface() -> None:
    assert sorted(name for _, name in socket.if_nameindex()) == ["lo"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, pytest.raises(OSError):
        udp.connect(("192.0.2.1", 9))  # TEST-NET-1: no route, so not even a connected UDP socket


def test_the_session_resolver_is_loopback_only() -> None:
    assert RESOLV_CONF.read_text() == CONTENT
    assert Path("/proc/self/mountinfo").read_text().count(" /etc/resolv.conf ") >= 1


def test_an_unknown_private_name_fails_at_once() -> None:
    with pytest.raises(socket.gaierror):
        socket.getaddrinfo("nobody.dp.privatelink.halyard.local", 443, type=socket.SOCK_STREAM)
    assert socket.getaddrinfo("localhost", 443, type=socket.SOCK_STREAM)  # /etc/hosts still answers
