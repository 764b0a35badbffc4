"""``halyard agent``: run the cluster agents as a local process (``--agent-mode local``), start and stop it detached.

Starting, finding and stopping the detached process is ``cli/localagents.py``, which ``connectedk8s`` uses too.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.agent.options import AgentOptions
from halyard.agent.runner import run_agents
from halyard.agent.upgrade import DEFAULT_CHECK_SECONDS, RESTARTED_FOR_ENV
from halyard.cli.errors import CliError
from halyard.cli.eventloop import run_on_own_loop
from halyard.cli.localagents import LOG_FILE, start_detached, stop_detached
from halyard.kube.client import KubeConfigError

app = typer.Typer(no_args_is_help=True, help="Run Halyard's cluster agents outside the cluster (local agent mode).")
KubeConfigOpt = Annotated[Path | None, typer.Option("--kubeconfig", "--kube-config", help="The cluster's kubeconfig.")]
ContextOpt = Annotated[str | None, typer.Option("--kube-context", "--context", help="The kubeconfig context.")]
StateDirOpt = Annotated[Path, typer.Option("--state-dir", help="Where the agents keep their pid, log and ports.")]


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
    gateway: Annotated[
        str | None,
        typer.Option("--gateway", envvar="HALYARD_AGENT_GATEWAY", help="host:port of the cluster's gateway."),
    ] = None,
    gateway_address: Annotated[
        str | None,
        typer.Option(
            "--gateway-address",
            envvar="HALYARD_AGENT_GATEWAY_ADDRESS",
            help="host:port to dial for the gateway when its name does not resolve here.",
        ),
    ] = None,
    proxy: Annotated[
        str | None,
        typer.Option("--proxy", envvar="HALYARD_AGENT_PROXY", help="The enterprise proxy, http://[user:pw@]host:port."),
    ] = None,
    proxy_skip_range: Annotated[
        str | None,
        typer.Option("--proxy-skip-range", envvar="HALYARD_AGENT_PROXY_SKIP_RANGE", help="Reached directly."),
    ] = None,
    proxy_cert: Annotated[
        Path | None,
        typer.Option("--proxy-cert", envvar="HALYARD_AGENT_PROXY_CERT", help="PEM CA of a TLS-inspecting proxy."),
    ] = None,
    arc_proxy_listen: Annotated[
        str,
        typer.Option(
            "--arc-proxy-listen",
            envvar="HALYARD_AGENT_ARC_PROXY_LISTEN",
            help="HOST:PORT arc-proxy listens on (in-cluster: 0.0.0.0:PORT behind its Service; default loopback).",
        ),
    ] = "127.0.0.1:0",
    arc_proxy_url: Annotated[
        str | None,
        typer.Option(
            "--arc-proxy-url",
            envvar="HALYARD_AGENT_ARC_PROXY_URL",
            help="arc-proxy's URL when it runs in another pod (in-cluster): every connection of these agents uses it.",
        ),
    ] = None,
) -> None:
    """Run the agents in the foreground until SIGTERM or Ctrl-C. With a gateway or a proxy, arc-proxy runs too and
    every agent's connection goes through it."""
    from halyard.core.logconfig import configure

    configure("info", log_format)
    for noisy in ("httpx", "httpx2"):  # one line per request: heartbeats would drown the log
        logging.getLogger(noisy).setLevel(logging.WARNING)
    listen_host, _, listen_port_text = arc_proxy_listen.rpartition(":")
    listen_host = listen_host.strip("[]")
    if not listen_host or not listen_port_text.isdigit() or int(listen_port_text) > 65535:
        raise CliError(f"--arc-proxy-listen is HOST:PORT, not {arc_proxy_listen!r}.", "InvalidArcProxyListen")
    listen_port = int(listen_port_text)
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
        network=_network(gateway, gateway_address, proxy, proxy_skip_range, proxy_cert),
        arc_proxy_host=listen_host,
        arc_proxy_port=listen_port,
        arc_proxy_url=arc_proxy_url or None,
    )
    restart_onto = None
    try:
        with contextlib.suppress(KeyboardInterrupt):
            restart_onto = run_on_own_loop(lambda: run_agents(options))
    except KubeConfigError as exc:
        raise CliError(f"The kubeconfig cannot be used: {exc}.", "KubeconfigError") from None
    if restart_onto is not None:
        _restart_onto_installed(restart_onto)


def _network(gateway: str | None, address: str | None, proxy: str | None, skip: str | None, cert: Path | None) -> Any:
    """arc-proxy's first settings (the control plane's /gw/v1/network replaces them at every heartbeat)."""
    if not (gateway or proxy):
        return None
    from halyard.agent.arcproxy import NetworkSettings

    pem = cert.read_text() if cert is not None else None
    return NetworkSettings(gateway=gateway, proxy=proxy, skip_range=skip, proxy_cert=pem, gateway_address=address)


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
