"""The test session cannot send a packet off this machine.

Tests listen and connect on loopback, or inside network namespaces they create. That is a rule each test keeps; this
module makes it a property of the session: before any test or xdist worker starts, the session moves into a network
namespace of its own holding only a loopback interface (up), so nothing it starts (servers, agents, the CLI,
kubectl, a browser, the namespaces and veth pairs tests create) has a route anywhere else.

It also moves into a mount namespace of its own in which ``/etc/resolv.conf`` names 127.0.0.1 only, where nothing
answers port 53: several tests make Halyard look up names that only a test's own DNS knows (the private zones under
``privatelink.halyard.local``), and such a lookup must fail at once, as at a site without that zone, not wait for a
server it cannot reach. ``/etc/hosts`` (``localhost``) is untouched. Neither change is seen outside the session.

Needs root (CAP_SYS_ADMIN), as the network-namespace tests do; without it the session stops at once and says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import subprocess
import tempfile
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")
MARKER = "HALYARD_TEST_ISOLATED"  # set once done: xdist workers inherit the namespaces and need not do it again
_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_MS_REC, _MS_PRIVATE, _MS_BIND = 0x4000, 1 << 18, 0x1000
CONTENT = "# the Halyard test session's resolver: lookups stay on this machine (tests/support/isolation.py)\n" \
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"  # fmt: skip


class IsolationError(RuntimeError):
    pass


def isolate() -> None:
    """Move this process into network and mount namespaces of its own: loopback only, resolv.conf on 127.0.0.1."""
    if os.environ.get(MARKER) == "1":
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def call(what: str, result: int) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise IsolationError(
                f"cannot isolate the test session from the network ({what}: {os.strerror(err)}); the suite needs "
                "root (CAP_SYS_ADMIN), as its network-namespace tests do"
            )

    call("unshare(CLONE_NEWNS | CLONE_NEWNET)", libc.unshare(_CLONE_NEWNS | _CLONE_NEWNET))
    # Private propagation: the bind below must not reach the machine's own mount namespace.
    call("mount --make-rprivate /", libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None))
    lo = subprocess.run(["ip", "link", "set", "lo", "up"], capture_output=True, text=True, timeout=30)
    if lo.returncode != 0:
        raise IsolationError(f"cannot bring up the session's loopback interface: {lo.stderr.strip()}")
    work_dir = Path(tempfile.mkdtemp(prefix="halyard-test-dns-"))
    conf = work_dir / "resolv.conf"
    conf.write_text(CONTENT)
    call("mount --bind resolv.conf", libc.mount(str(conf).encode(), str(RESOLV_CONF).encode(), None, _MS_BIND, None))
    conf.unlink()  # the mount holds the file; nothing is left behind when the session ends
    work_dir.rmdir()
    os.environ[MARKER] = "1"
