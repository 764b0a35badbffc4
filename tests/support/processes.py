"""Start the real ``halyard server`` as a separate process, and get tokens from it as any client would."""

from __future__ import annotations

import json
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

HALYARD = [sys.executable, "-m", "halyard"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LineReader:
    """The lines of a child's output, each waited for with a deadline of its own: a child that stops writing fails
    the test with what it was waited for, not at the suite's global timeout."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._pump, args=(stream,), daemon=True).start()

    def _pump(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line)
        self._lines.put("")  # end of output

    def next(self, timeout: float, waiting_for: str) -> str:
        """The next line ("" once the output has ended)."""
        try:
            return self._lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no output line within {timeout} s, waiting for {waiting_for}") from None


@dataclass
class ServerProcess:
    """A running control plane. ``admin`` is the content of ``<data-dir>/admin.json``."""

    data_dir: Path
    port: int
    database_url: str | None = None
    extra_args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    admin: dict[str, Any] = field(default_factory=dict)
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca(self) -> str:
        return str(self.data_dir / "tls" / "ca.pem")

    def start(self, timeout: float = 30.0) -> ServerProcess:
        args = [*HALYARD, "server", "--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra_args]
        if self.database_url:
            args += ["--database-url", self.database_url]
        self.log_path = self.data_dir.parent / f"server-{self.port}.log"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env})
        try:
            self.wait_ready(timeout)
        except BaseException:
            # The caller never gets this object back to stop: a server slow to start (a loaded machine) would
            # otherwise outlive the test or benchmark that gave up on it.
            self.stop(signal.SIGKILL)
            raise
        self.admin = json.loads((self.data_dir / "admin.json").read_text())
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.log()}")
            try:
                if httpx.get(f"{self.url}/readyz", verify=self.ca, timeout=1).status_code == 200:
                    return
            except (httpx.HTTPError, OSError, FileNotFoundError):
                pass
            time.sleep(0.1)
        raise TimeoutError(f"server not ready in {timeout}s: {self.log()}")

    def log(self) -> str:
        """The end of the server's log, for error messages."""
        return self.log_path.read_text()[-4000:] if self.log_path and self.log_path.exists() else ""

    def whole_log(self) -> str:
        """Everything this server's log file holds, from its first start on (it is appended to across restarts)."""
        assert self.log_path is not None, "not started"
        return self.log_path.read_text()

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        code = self.proc.returncode
        self.proc = None
        return code

    def token(self, client_id: str | None = None, secret: str | None = None, audience: str | None = None) -> str:
        """A token from the login service with the client-credentials grant (the admin's by default)."""
        scope = (audience or self.admin["audience"]) + ".default"
        response = httpx.post(
            f"{self.url}/{self.admin['tenant']}/oauth2/v2.0/token",
            data={
                "grant_type": "client_credentials",
                "client_id": client_id or self.admin["clientId"],
                "client_secret": secret or self.admin["clientSecret"],
                "scope": scope,
            },
            verify=self.ca,
        )
        response.raise_for_status()
        return str(response.json()["access_token"])

    def client(self, token: str | None = None) -> httpx.Client:
        """An HTTP client for the management API, authenticated as the admin unless given a token."""
        headers = {} if token == "" else {"Authorization": f"Bearer {token or self.token()}"}
        return httpx.Client(base_url=self.url, verify=self.ca, headers=headers, timeout=30)
