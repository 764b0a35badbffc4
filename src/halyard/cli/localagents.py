"""Local agents (``connectedk8s connect --agent-mode local``): the ``halyard agent run`` process of one connected
cluster, started detached and stopped, found through its state directory.

The process outlives the CLI: it is a session leader of its own, with its pid in ``<state-dir>/agent.pid`` and its
log in ``<state-dir>/agent.log``. ``halyard agent start/stop`` and the ``connectedk8s`` commands use these.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from halyard.agent.options import pid_path

LOG_FILE = "agent.log"
TARGET_FILE = "target.json"  # the kubeconfig and context the agents were started with (for delete's clean-up)
STATE_ROOT = Path(os.environ.get("HALYARD_AGENT_DIR", Path.home() / ".local" / "share" / "halyard" / "agents"))


def state_dir_for(resource_id: str) -> Path:
    """The default state directory of one connected cluster's local agents."""
    name = resource_id.rstrip("/").rsplit("/", 1)[-1]
    digest = hashlib.sha256(resource_id.lower().encode()).hexdigest()[:12]
    return STATE_ROOT / f"{name}-{digest}"


def running_pid(state_dir: Path) -> int | None:
    """The pid of the agents of ``state_dir`` if they are alive."""
    try:
        pid = int(pid_path(state_dir).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return pid
    return pid if _is_agent(pid) else None


def start_detached(
    state_dir: Path, kubeconfig: Path | None, context: str | None, *, extra_args: list[str] | None = None
) -> int:
    """Start (or keep) the local agents of one cluster; idempotent: a live process is left alone."""
    pid = running_pid(state_dir)
    if pid is not None:
        return pid
    state_dir.mkdir(parents=True, exist_ok=True)
    target = {"kubeconfig": str(kubeconfig.resolve()) if kubeconfig else None, "context": context}
    (state_dir / TARGET_FILE).write_text(json.dumps(target))
    args = [sys.executable, "-m", "halyard", "agent", "run", "--state-dir", str(state_dir)]
    if kubeconfig is not None:
        args += ["--kubeconfig", str(kubeconfig.resolve())]
    if context:
        args += ["--kube-context", context]
    args += extra_args or []
    with open(state_dir / LOG_FILE, "ab") as log:
        proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, close_fds=True
        )
    # The agent writes its own pid file as it starts; wait for it so a stop right after a start finds it.
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (state_dir / LOG_FILE).read_text(errors="replace")[-1500:]
            raise RuntimeError(f"the local agents exited at start ({proc.returncode}):\n{tail}")
        if running_pid(state_dir) == proc.pid:
            return proc.pid
        time.sleep(0.05)
    return proc.pid


def started_target(state_dir: Path) -> tuple[Path | None, str | None] | None:
    """The kubeconfig and context local agents were last started with here, if any were."""
    try:
        target = json.loads((state_dir / TARGET_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return (Path(target["kubeconfig"]) if target.get("kubeconfig") else None), target.get("context")


def stop_detached(state_dir: Path, timeout: float = 15.0) -> bool:
    """Stop the local agents of ``state_dir`` (SIGTERM, then SIGKILL after ``timeout``). True if one was running."""
    pid = running_pid(state_dir)
    if pid is None:
        return False
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return True


def _alive(pid: int) -> bool:
    # A child of ours that exited stays a zombie until reaped; reap it if it is ours.
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return _is_agent(pid)


def _is_agent(pid: int) -> bool:
    """Guards against a recycled pid: the process must be a ``halyard agent run``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return True  # no /proc (not Linux): trust the pid file
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        state = ""
    return state != "Z" and b"agent" in cmdline and b"run" in cmdline
