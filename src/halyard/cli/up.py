"""``halyard up`` (what ``make up`` runs): the control plane in the foreground on its embedded default.

SQLite in the data directory, first-start bootstrap, one simulated Kubernetes cluster beside it (``halyard sim``,
persisted in the data directory), connected with local agents exactly as a user would connect it
(``halyard login``, ``group create``, ``connectedk8s connect --agent-mode local``, then ``connectedk8s show``), and
the URL, the admin credentials file and the next commands to try. Ctrl-C (or SIGTERM) stops the agents, the
simulator and the control plane; the next ``up`` resumes the same cluster and resource.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from halyard.cli.errors import CliError


def command(
    data_dir: Annotated[Path, typer.Option(help="Where the database, keys, TLS files and admin.json live.")] = Path(
        ".halyard-data"
    ),
    port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1).")] = 8443,
) -> None:
    """Run the control plane in the foreground (SQLite in --data-dir) and print how to use it."""
    from halyard.controlplane.server import build_server
    from halyard.core.logconfig import configure
    from halyard.core.settings import Settings

    settings = Settings(data_dir=data_dir.expanduser().resolve(), port=port, host="127.0.0.1")
    configure(settings.log_level, settings.log_format)
    server = build_server(settings)
    # Our own signal handlers stop the server; uvicorn's would re-raise SIGINT after shutdown (a traceback).
    server.capture_signals = contextlib.nullcontext  # type: ignore[method-assign,assignment]
    try:
        with asyncio.Runner(loop_factory=server.config.get_loop_factory()) as runner:
            runner.run(_serve(server, settings))
    except SystemExit:  # uvicorn's way of saying it could not listen
        raise CliError(
            f"The control plane did not start on {settings.base_url} (see the log above; is the port in use?).",
            "StartFailed",
        ) from None


async def _serve(server: Any, settings: Any) -> None:
    loop = asyncio.get_running_loop()

    def stop() -> None:
        if server.should_exit:  # a second Ctrl-C: do not wait for in-flight requests
            server.force_exit = True
        server.should_exit = True

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop)
    announcer = asyncio.create_task(_announce(server, settings))
    # If the simulator cannot start, stop the control plane too, and report why (below).
    announcer.add_done_callback(_stop_on_failure(stop))
    try:
        await server.serve()
    finally:
        announcer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await announcer


def _stop_on_failure(stop: Callable[[], None]) -> Callable[[asyncio.Task[None]], None]:
    def check(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            stop()

    return check


async def _announce(server: Any, settings: Any) -> None:
    """Once the control plane listens: a simulated cluster beside it, then the banner."""
    from halyard.sim.server import SimOptions, SimServer

    while not server.started:
        await asyncio.sleep(0.05)
    # Persisted objects keep the onboarded cluster from one `up` to the next; the kubeconfig (same path) is rewritten
    # with whatever free port the simulator gets, so no second fixed port can collide.
    sim = SimServer(SimOptions(clusters=1, port=0, data_dir=settings.data_dir / "sim", persist=True))
    try:
        await sim.start()
    except (OSError, RuntimeError) as exc:
        raise CliError(f"The simulated cluster did not start: {exc}", "StartFailed") from None
    try:
        cluster = next(iter(sim.clusters))
        kubeconfig = sim.kubeconfig_path(cluster)
        print(banner(settings.base_url, settings.data_dir, cluster, kubeconfig), flush=True)
        await _connect_demo(settings.data_dir, cluster, kubeconfig)
        print("\nPress Ctrl-C to stop.", flush=True)
        await asyncio.Event().wait()  # until the server stops and cancels this task
    finally:
        await asyncio.to_thread(_stop_agents, settings.data_dir)
        await sim.stop()


DEMO_GROUP = "demo"


def _cli_env(data_dir: Path) -> dict[str, str]:
    """The CLI as a user runs it, with its profile and the local agents' state inside the data directory."""
    return {**os.environ, "HALYARD_CONFIG_DIR": str(data_dir / "cli"), "HALYARD_AGENT_DIR": str(data_dir / "agents")}


async def _halyard(data_dir: Path, *args: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "halyard",
        *args,
        env=_cli_env(data_dir),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode(errors="replace")


async def _connect_demo(data_dir: Path, cluster: str, kubeconfig: Path) -> None:
    """Connect the simulated cluster with the CLI and show the result; a failure is reported, not hidden."""
    admin = json.loads((data_dir / "admin.json").read_text())
    steps = [
        [*_login(admin, admin["server"], admin["caCert"]), "-o", "none"],
        ["group", "create", "-n", DEMO_GROUP, "-l", "eastus", "-o", "none"],
        [
            "connectedk8s",
            "connect",
            "-g",
            DEMO_GROUP,
            "-n",
            cluster,
            "--kube-config",
            str(kubeconfig),
            "--agent-mode",
            "local",
            "--yes",
            "-o",
            "none",
        ],
        [
            "connectedk8s",
            "show",
            "-g",
            DEMO_GROUP,
            "-n",
            cluster,
            "-o",
            "table",
            "--query",
            "{name:name, connectivityStatus:connectivityStatus, kubernetesVersion:kubernetesVersion, "
            "totalNodeCount:totalNodeCount, totalCoreCount:totalCoreCount, agentVersion:agentVersion}",
        ],
    ]
    print(f"Connecting the simulated cluster {cluster} as {DEMO_GROUP}/{cluster} (local agents)...", flush=True)
    for step in steps:
        code, out = await _halyard(data_dir, *step)
        if code != 0:
            print(
                f"ERROR: `halyard {shlex.join(step[:2])}` failed while connecting the simulated cluster:\n{out}",
                file=sys.stderr,
                flush=True,
            )
            return
    print(f"\n$ halyard connectedk8s show -g {DEMO_GROUP} -n {cluster} -o table\n{out}", flush=True)
    code, principal = await _halyard(
        data_dir, "ad", "sp", "show", "--id", admin["clientId"], "--query", "id", "-o", "tsv"
    )
    if code == 0:
        await _let_admin_in(kubeconfig, principal.strip())


async def _let_admin_in(kubeconfig: Path, principal_id: str) -> None:
    """The cluster's owner makes the admin principal cluster-admin in the simulated cluster, so cluster connect
    (which impersonates the principal) works from the first try, as the banner suggests. Idempotent."""
    from lightkube.core.exceptions import ApiError
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.models.rbac_v1 import RoleRef, Subject
    from lightkube.resources.rbac_authorization_v1 import ClusterRoleBinding

    from halyard.kube.client import connect

    binding = ClusterRoleBinding(
        metadata=ObjectMeta(name="halyard-demo-admin", labels={"app.kubernetes.io/managed-by": "halyard"}),
        roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name="cluster-admin"),
        subjects=[Subject(apiGroup="rbac.authorization.k8s.io", kind="User", name=principal_id)],
    )
    client = connect(kubeconfig)
    try:
        await client.create(binding)
    except ApiError as exc:
        if exc.status.code != 409:
            print(f"WARNING: cluster connect's demo binding was not created: {exc}", file=sys.stderr, flush=True)
    finally:
        await client.close()


def _stop_agents(data_dir: Path) -> None:
    from halyard.cli.localagents import stop_detached

    root = data_dir / "agents"
    for state_dir in sorted(root.iterdir()) if root.is_dir() else []:
        stop_detached(state_dir)


def _login(admin: dict[str, str], server: str, ca: str) -> list[str]:
    """The arguments of ``halyard login`` as the bootstrap admin of ``admin.json``."""
    return [
        "login", "--service-principal", "-u", admin["clientId"], "-p", admin["clientSecret"], "--tenant",
        admin["tenant"], "--server", server, "--ca-cert", ca,
    ]  # fmt: skip


CONNECT_KUBECONFIG = "halyard-demo.kubeconfig"  # written in the directory the commands are pasted in


def banner(url: str, data_dir: Path, cluster: str, kubeconfig: Path) -> str:
    """What to do next: commands that run as printed in another terminal (a fresh shell, without this virtual
    environment on its PATH), with the exact login line (from ``admin.json``) and the CA to trust."""
    admin_file = data_dir / "admin.json"
    admin = json.loads(admin_file.read_text())
    ca = admin.get("caCert") or str(data_dir / "tls" / "ca.pem")
    login = ["halyard", *_login(admin, url, ca)]
    path = path_line()
    commands = [
        *([path] if path else []),
        shlex.join(login),
        "halyard connectedk8s list -o table",
        f"halyard connectedk8s show -g {DEMO_GROUP} -n {cluster} -o table",
        f"export KUBECONFIG={shlex.quote(str(kubeconfig))}",
        *(["kubectl get nodes -o wide"] if shutil.which("kubectl") else []),
        # Cluster connect: the same cluster through the agents' tunnel, as the admin principal (impersonated).
        f"halyard connectedk8s get-credentials -g {DEMO_GROUP} -n {cluster} -f {CONNECT_KUBECONFIG}",
        *([f"kubectl --kubeconfig {CONNECT_KUBECONFIG} get nodes -o name"] if shutil.which("kubectl") else []),
    ]
    lines = [
        "",
        f"Halyard is running at {url}",
        f"  admin credentials: {admin_file} (readable only by you)",
        f"  CA certificate:    {ca}",
        f"  simulated cluster: {cluster}, kubeconfig {kubeconfig}",
        "",
        "Try, in another terminal:",
        *(f"  {c}" for c in commands),
        "",
    ]
    return "\n".join(lines)


def path_line() -> str | None:
    """``export PATH=...`` that makes ``halyard`` this installation's, when a fresh shell would not find it by name.

    A virtual environment (what ``make up`` runs from: ``.venv/bin/halyard``) is on no other shell's PATH, so its
    bin directory is exported; a system or pipx installation found on PATH as it is needs nothing."""
    bin_dir = Path(sys.executable).absolute().parent  # not resolved: a venv's python is a link to the system's
    script = bin_dir / "halyard"
    if not script.exists():
        return None
    found = shutil.which("halyard")
    in_venv = sys.prefix != sys.base_prefix
    if not in_venv and found and Path(found).resolve() == script.resolve():
        return None
    return f'export PATH={shlex.quote(str(bin_dir))}:"$PATH"'
