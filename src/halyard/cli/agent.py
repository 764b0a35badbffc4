"""``halyard agent``: run the cluster agents as a local process (``--agent-mode local``), start and stop it detached.

``connectedk8s connect`` starts the agents with :func:`start_detached`; ``connectedk8s delete`` stops them with
:func:`stop_detached`. The process outlives the CLI: it is a session leader of its own, with its pid in
``<state-dir>/agent.pid`` and its log in ``<state-dir>/agent.log``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from halyard.agent.options import AgentOptions
from halyard.agent.runner import pid_path, run_agents
from halyard.agent.upgrade import DEFAULT_CHECK_SECONDS, RESTARTED_FOR_ENV
from halyard.cli.errors import CliError
from halyard.kube.client import KubeConfigError

app = typer.Typer(no_args_is_help=True, help="Run Halyard's cluster agents outside the cluster (local agent mode).")
LOG_FILE = "agent.log"
TARGET_FILE = "target.json"  # the kubeconfig and context the agents were started with (for delete's clean-up)
STATE_ROOT = Path(os.environ.get("HALYARD_AGENT_DIR", Path.home() / ".local" / "share" / "halyard" / "agents"))

KubeConfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", "--kube-config", help="The cluster's kubeconfig.")]
ContextOpt = Annotated[str | None, typer.Option("--kube-context", "--context", help="The kubeconfig context.")]
StateDirOpt = Annotated[Path, typer.Option("--state-dir", help="Where the agents keep their pid, log and ports.")]


def state_dir_for(resource_id: str) -> Path:
    """The default state directory of one connected cluster's local agents."""
    name = resource_id.rstrip("/").rsplit("/", 1)[-1]
    digest = hashlib.sha256(resource_id.lower().encode()).hexdigest()[:12]
    return STATE_ROOT / f"{name}-{digest}"


@app.command("run")
def run(
    state_dir: StateDirOpt,
    kubeconfig: KubeConfigOpt = None,
    context: ContextOpt = None,
    heartbeat_seconds: Annotated[
        float | None, typer.Option("--heartbeat-seconds", help="Heartbeat interval (default: as the server asks).")
    ] = None,
    renew_fraction: Annotated[
        float,
        typer.Option("--renew-fraction", envvar="HALYARD_AGENT_RENEW_FRACTION", help="Renew at this part of life."),
    ] = 0.5,
    metrics_port: Annotated[int, typer.Option("--metrics-port", help="Loopback metrics port (0: any free).")] = 0,
    log_format: Annotated[str, typer.Option("--log-format", help="keyvalue or json.")] = "keyvalue",
    agents: Annotated[
        str | None,
        typer.Option("--agents", help="Comma-separated agents to run (one pod's share in-cluster); default: all."),
    ] = None,
    in_cluster: Annotated[bool, typer.Option("--in-cluster", help="Use the pod's service account.")] = False,
    upgrade_check_seconds: Annotated[
        float,
        typer.Option(
            "--upgrade-check-seconds",
            envvar="HALYARD_AGENT_UPGRADE_CHECK_SECONDS",
            min=1,
            help="How often controller-manager re-checks the agent version the control plane wants.",
        ),
    ] = DEFAULT_CHECK_SECONDS,
) -> None:
    """Run the agents in the foreground until SIGTERM or Ctrl-C."""
    from halyard.core.logconfig import configure

    configure("info", log_format)
    for noisy in ("httpx", "httpx2"):  # one line per request: heartbeats would drown the log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    options = AgentOptions(
        kubeconfig=kubeconfig,
        context=context,
        state_dir=state_dir,
        heartbeat_seconds=heartbeat_seconds,
        renew_fraction=renew_fraction,
        metrics_port=metrics_port,
        agents=tuple(a.strip() for a in agents.split(",") if a.strip()) if agents else None,
        in_cluster=in_cluster,
        upgrade_check_seconds=upgrade_check_seconds,
        restarted_for=os.environ.pop(RESTARTED_FOR_ENV, None),
    )
    restart_onto = None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            restart_onto = asyncio.run(run_agents(options))
    except KubeConfigError as exc:
        raise CliError(f"The kubeconfig cannot be used: {exc}.", "KubeconfigError") from None
    if restart_onto is not None:
        _restart_onto_installed(restart_onto)


def _restart_onto_installed(version: str) -> None:
    """Local mode's upgrade: the loop has stopped cleanly; become a fresh ``halyard agent run`` with the same
    arguments, importing the halyard installed now. Same pid (the pid file stays valid, ``agent stop`` still
    works), same session and log."""
    logging.getLogger("halyard.agent").warning(
        "agents restarting onto the installed halyard", extra={"version": version}
    )
    for handler in logging.getLogger().handlers:
        handler.flush()
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[RESTARTED_FOR_ENV] = version
    os.execv(sys.executable, [sys.executable, "-m", "halyard", *sys.argv[1:]])  # noqa: S606 - our own interpreter and arguments


@app.command("start")
def start(state_dir: StateDirOpt, kubeconfig: KubeConfigOpt = None, context: ContextOpt = None) -> None:
    """Start the agents in the background (they keep running after this command exits)."""
    pid = start_detached(state_dir, kubeconfig, context)
    typer.echo(f"agents running (pid {pid}); log: {state_dir / LOG_FILE}")


@app.command("stop")
def stop(state_dir: StateDirOpt) -> None:
    """Stop background agents started with ``start`` or by ``connectedk8s connect --agent-mode local``."""
    typer.echo("agents stopped" if stop_detached(state_dir) else "no agents were running")


@app.command("health")
def health(state_dir: StateDirOpt) -> None:
    """Exit 0 if the agents of ``state_dir`` serve their metrics on loopback (the in-cluster probes use this)."""
    import httpx

    try:
        port = int((state_dir / "metrics.port").read_text())
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).raise_for_status()
    except (OSError, ValueError, httpx.HTTPError) as exc:
        typer.echo(f"unhealthy: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo("healthy")


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
