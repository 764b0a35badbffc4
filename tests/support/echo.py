"""Bytes through a forwarded port and back: what port-forward tests send to an echoing container port."""

from __future__ import annotations

import hashlib
import os
import socket
import threading


def echo_round_trip(port: int, size: int = 10 * 1024 * 1024, timeout: float = 60) -> tuple[int, str, str]:
    """Send ``size`` random bytes to 127.0.0.1:``port`` while reading the echo: (bytes back, their sha256, the sent
    bytes' sha256)."""
    data = os.urandom(size)
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:

        def send() -> None:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        got, received = hashlib.sha256(), 0
        while chunk := s.recv(1 << 20):
            got.update(chunk)
            received += len(chunk)
        sender.join()
    return received, got.hexdigest(), hashlib.sha256(data).hexdigest()
