"""A real squid (Debian's squid-openssl) as the enterprise proxy, started by a test on loopback: it allows CONNECT
to the gateway's name and port and nothing else, optionally bumping TLS (ssl_bump: a TLS-inspecting proxy with its
own CA). Its access log records every CONNECT with the bytes each way."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from halyard.core.pki import cert_to_pem, create_ca, key_to_pem
from tests.support.processes import free_port

SQUID = shutil.which("squid") or "/usr/sbin/squid"
CERTGEN = "/usr/lib/squid/security_file_certgen"


@dataclass
class Squid:
    directory: Path
    port: int
    proc: subprocess.Popen[bytes]
    ca_pem: str | None  # the bumping CA, when ssl_bump is on
    listen: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.listen}:{self.port}"

    def access(self) -> list[dict[str, str]]:
        """Access log entries: method, url, status, bytes from the client, bytes to the client."""
        path = self.directory / "access.log"
        if not path.exists():
            return []
        rows = []
        for line in path.read_text().splitlines():
            method, url, status, up, down = line.split()[:5]
            rows.append({"method": method, "url": url, "status": status, "up": up, "down": down})
        return rows

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        shutil.rmtree(self.directory, ignore_errors=True)


def available() -> bool:
    return os.path.exists(SQUID)


def start_squid(
    gateway_name: str,
    gateway_port: int,
    *,
    bump: bool = False,
    also: tuple[str, int] | None = None,
    listen: str = "127.0.0.1",
) -> Squid:
    """squid allowing CONNECT to the gateway's name and port (and, for benchmarks, ``also``: one more address)."""
    # squid drops root for its 'proxy' user, which must reach and write this directory: not under pytest's
    # owner-only tmp tree. Removed by stop().
    directory = Path(tempfile.mkdtemp(prefix="halyard-squid-"))
    directory.chmod(0o777)
    port = free_port()
    (directory / "hosts").write_text(f"127.0.0.1 {gateway_name}\n")
    lines = [
        f"http_port {listen}:{port}" + (f" ssl-bump tls-cert={directory / 'bump.pem'} generate-host-certificates=on"
                                          if bump else ""),
        f"pid_filename {directory / 'squid.pid'}",
        "logformat gw %rm %ru %>Hs %>st %<st",
        f"access_log stdio:{directory / 'access.log'} gw",
        f"cache_log {directory / 'cache.log'}",
        "cache deny all",
        f"hosts_file {directory / 'hosts'}",
        f"coredump_dir {directory}",
        "shutdown_lifetime 0 seconds",
        "buffered_logs off",
        f"acl gateway dstdomain {gateway_name}",
        f"acl gateway_port port {gateway_port}",
        "acl CONNECT method CONNECT",
        "http_access allow CONNECT gateway gateway_port",
        "http_access allow gateway gateway_port",  # what a bumping squid decrypts inside: requests to the gateway
    ]  # fmt: skip
    if also is not None:
        lines += [
            f"acl also dst {also[0]}",
            f"acl also_port port {also[1]}",
            "http_access allow CONNECT also also_port",
        ]
    lines.append("http_access deny all")
    ca_pem = None
    if bump:
        key, cert = create_ca("Enterprise inspecting proxy CA")
        ca_pem = cert_to_pem(cert).decode()
        (directory / "bump.pem").write_bytes(cert_to_pem(cert) + key_to_pem(key))
        db = directory / "ssl_db"
        subprocess.run([CERTGEN, "-c", "-s", str(db), "-M", "4MB"], check=True, capture_output=True)
        shutil.chown(db, "proxy") if _has_user("proxy") else None
        for root, dirs, files in os.walk(db):
            for name in dirs + files:
                shutil.chown(os.path.join(root, name), "proxy") if _has_user("proxy") else None
        lines += [
            f"sslcrtd_program {CERTGEN} -s {db} -M 4MB",
            "sslcrtd_children 2 startup=1 idle=1",
            "acl step1 at_step SslBump1",
            "ssl_bump peek step1",
            "ssl_bump bump all",
            "http_upgrade_request_protocols websocket allow all",  # as the seed asks proxies to allow websockets
            "tls_outgoing_options flags=DONT_VERIFY_PEER",  # the gateway's own CA is the test's, not the system's
        ]
    (directory / "squid.conf").write_text("\n".join(lines) + "\n")
    proc = subprocess.Popen(
        [SQUID, "-N", "-f", str(directory / "squid.conf")],
        stdout=subprocess.DEVNULL,
        stderr=open(directory / "stderr.log", "wb"),
    )
    deadline = time.monotonic() + 20
    import socket

    while True:
        try:
            socket.create_connection((listen, port), timeout=0.2).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                log = (directory / "cache.log").read_text() if (directory / "cache.log").exists() else ""
                raise RuntimeError(f"squid did not start: {(directory / 'stderr.log').read_text()} {log[-2000:]}")
            time.sleep(0.1)
    return Squid(directory, port, proc, ca_pem, listen)


def _has_user(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
