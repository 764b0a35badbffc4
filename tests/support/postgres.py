"""A real PostgreSQL server for the tests and the benchmark: initdb, start, createdb; stopped and removed after.

PostgreSQL refuses to run as root (as CI does), so when we are root the server runs as the ``postgres`` system
user with its data directory in a private temporary directory chowned to it. It listens only on 127.0.0.1 on a
free port, with password authentication and ``fsync`` on, so what it acknowledges is as durable as in production.
"""

from __future__ import annotations

import glob
import os
import pwd
import secrets
import shutil
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.support.processes import free_port

INSTALL_HINT = "install PostgreSQL (scripts/install-system-deps.sh does: apt-get install postgresql)"
SUPERUSER = "halyard"
TOOLS = ("initdb", "pg_ctl", "postgres", "createdb", "pg_dump", "pg_restore")
# The storage backends a ``db_server`` test runs on; ``-m "not postgres"`` leaves out the PostgreSQL half.
BACKENDS = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


def find_bin_dir() -> Path:
    """The directory holding ``initdb``, ``pg_ctl`` and ``createdb``: on PATH, else the newest Debian layout."""
    candidates: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        candidates.append(Path(os.path.realpath(on_path)).parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_major, reverse=True)]
    for directory in candidates:
        if all((directory / tool).is_file() for tool in TOOLS):
            return directory
    raise RuntimeError(
        f"PostgreSQL binaries ({', '.join(TOOLS)}) not found on PATH or in /usr/lib/postgresql; {INSTALL_HINT}"
    )


def _major(path: str) -> int:
    version = Path(path).parent.name
    return int(version) if version.isdigit() else 0


@dataclass
class PostgresServer:
    """One PostgreSQL cluster in a temporary directory. ``url(db)`` is the SQLAlchemy URL of a database in it."""

    bin_dir: Path = field(default_factory=find_bin_dir)
    port: int = field(default_factory=free_port)
    password: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    root: Path | None = None
    _run_as: list[str] = field(default_factory=list)

    @property
    def data_dir(self) -> Path:
        assert self.root is not None, "not started"
        return self.root / "data"

    @property
    def pid(self) -> int:
        """The postmaster's process id (its backends are its children)."""
        return int((self.data_dir / "postmaster.pid").read_text().split()[0])

    def url(self, database: str, driver: str = "postgresql+asyncpg") -> str:
        return f"{driver}://{SUPERUSER}:{self.password}@127.0.0.1:{self.port}/{database}"

    def start(self) -> PostgresServer:
        self.root = Path(tempfile.mkdtemp(prefix="halyard-pg-"))
        owner: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            try:
                owner = pwd.getpwnam("postgres")
            except KeyError:
                raise RuntimeError(
                    f"running as root and there is no 'postgres' user to run PostgreSQL as; {INSTALL_HINT}"
                ) from None
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            self._run_as = ["runuser", "-u", "postgres", "--"]
        pwfile = self.root / "pwfile"
        pwfile.write_text(self.password + "\n")
        if owner is not None:
            os.chown(pwfile, owner.pw_uid, owner.pw_gid)
        pwfile.chmod(0o600)
        try:
            self._run(
                "initdb", "-D", str(self.data_dir), "-U", SUPERUSER, f"--pwfile={pwfile}", "--auth=scram-sha-256",
                "--encoding=UTF8", "--locale=C",
            )  # fmt: skip
            pwfile.unlink()
            options = " ".join(
                [
                    "-c listen_addresses=127.0.0.1",
                    f"-c port={self.port}",
                    f"-c unix_socket_directories={self.root}",
                    "-c fsync=on",
                    "-c synchronous_commit=on",
                    "-c max_connections=200",
                ]
            )
            self._run("pg_ctl", "-D", str(self.data_dir), "-l", str(self.root / "postgres.log"), "-o", options,
                      "-w", "-t", "60", "start")  # fmt: skip
        except BaseException:
            self.stop()
            raise
        return self

    def create_database(self, name: str) -> str:
        """Create a database (its name must be a plain identifier) and return its asyncpg URL."""
        self._run("createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, name)
        return self.url(name)

    def dump(self, database: str) -> Path:
        """``pg_dump -Fc`` of a database (a consistent snapshot, taken while it serves) into the server's directory."""
        assert self.root is not None, "not started"
        path = self.root / f"{database}.dump"
        self._run("pg_dump", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-Fc", "-f", str(path), database)
        return path

    def restore(self, dump: Path, database: str) -> str:
        """Create ``database`` and ``pg_restore`` a dump into it; returns its URL."""
        url = self.create_database(database)
        self._run("pg_restore", "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "--no-owner",
                  "-d", database, str(dump))  # fmt: skip
        return url

    def stop(self) -> None:
        """Stop the server (fast shutdown) and remove its directory. Safe to call twice."""
        if self.root is None:
            return
        if (self.data_dir / "postmaster.pid").exists():
            self._run("pg_ctl", "-D", str(self.data_dir), "-m", "fast", "-w", "-t", "60", "stop", check=False)
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def log(self) -> str:
        path = self.root / "postgres.log" if self.root else None
        return path.read_text()[-4000:] if path and path.exists() else ""

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "PGPASSWORD": self.password}
        result = subprocess.run(
            [*self._run_as, str(self.bin_dir / tool), *args],
            env=env,
            cwd=self.root,  # the postgres user may not be able to enter ours
            capture_output=True,
            text=True,
            timeout=120,
        )
        if check and result.returncode != 0:
            raise RuntimeError(f"{tool} failed ({result.returncode}): {result.stderr.strip()}\n{self.log()}")
        return result
