"""Keep the suite's name lookups on this machine.

Several tests make Halyard look up names that only a test's own DNS knows (the private zones under
``privatelink.halyard.local``, an endpoint map's names before an agent follows it). Through the machine's resolver such
a lookup is a query to the machine's DNS server, a packet off loopback, which the suite must never send. So the test
session runs in a mount namespace of its own in which ``/etc/resolv.conf`` names 127.0.0.1 only, where nothing answers
port 53: such a lookup fails at once, as it would at a site without that zone. ``/etc/hosts`` (``localhost``) is
untouched, and every process a test starts (servers, agents, the CLI, kubectl) inherits the namespace.

Needs root (CAP_SYS_ADMIN), as the network-namespace tests do; without it the session stops at once and says so rather
than run with lookups that leave the machine.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import tempfile
from pathlib import Path

RESOLV_CONF = Path("/etc/resolv.conf")
MARKER = "HALYARD_TEST_LOOPBACK_DNS"  # set once done: xdist workers inherit the namespace and need not do it again
_CLONE_NEWNS = 0x00020000
_MS_REC, _MS_PRIVATE, _MS_BIND = 0x4000, 1 << 18, 0x1000
CONTENT = "# the Halyard test session's resolver: lookups stay on this machine (tests/support/loopback_dns.py)\n" \
    "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n"  # fmt: skip


class LoopbackDnsError(RuntimeError):
    pass


def confine() -> None:
    """Move this process into a mount namespace of its own whose resolv.conf names only 127.0.0.1 (once per session)."""
    if os.environ.get(MARKER) == "1":
        return
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)

    def call(what: str, result: int) -> None:
        if result != 0:
            err = ctypes.get_errno()
            raise LoopbackDnsError(
                f"cannot keep the suite's DNS lookups on loopback ({what}: {os.strerror(err)}); the suite needs root "
                "(CAP_SYS_ADMIN), as its network-namespace tests do"
            )

    call("unshare(CLONE_NEWNS)", libc.unshare(_CLONE_NEWNS))
    # Private propagation: the bind below must not reach the machine's own mount namespace.
    call("mount --make-rprivate /", libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None))
    work_dir = Path(tempfile.mkdtemp(prefix="halyard-test-dns-"))
    conf = work_dir / "resolv.conf"
    conf.write_text(CONTENT)
    call("mount --bind resolv.conf", libc.mount(str(conf).encode(), str(RESOLV_CONF).encode(), None, _MS_BIND, None))
    conf.unlink()  # the mount holds the file; nothing is left behind when the session ends
    work_dir.rmdir()
    os.environ[MARKER] = "1"
