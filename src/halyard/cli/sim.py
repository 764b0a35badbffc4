"""``halyard sim``: serve simulated Kubernetes clusters over the real Kubernetes API, for demos and tests."""

from __future__ import annotations

import asyncio
import contextlib
import re
import signal
from pathlib import Path
from typing import Annotated

import typer

from halyard.core.logconfig import configure
from halyard.sim.server import DEFAULT_DATA_DIR, SimOptions, SimServer


def command(
    clusters: Annotated[int, typer.Option("--clusters", min=1, help="How many virtual clusters to serve.")] = 1,
    nodes: Annotated[int, typer.Option("--nodes", min=0, help="Nodes in each virtual cluster.")] = 3,
    kubernetes_version: Annotated[
        str, typer.Option("--kubernetes-version", help="Version the clusters report (/version, kubelets).")
    ] = "v1.31.2",
    distribution: Annotated[
        str,
        typer.Option(
            "--distribution",
            help="How the nodes look (names, providerID, OS, kubelet): generic, kind, k3s, rke2, aks, eks, gke, "
            "openshift.",
        ),
    ] = "generic",
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="HTTPS port; 0 picks a free one.")] = 6443,
    data_dir: Annotated[
        Path, typer.Option("--data-dir", help="Where the CA, kubeconfigs, sim.json (and saved state) go.")
    ] = DEFAULT_DATA_DIR,
    persist: Annotated[
        bool, typer.Option("--persist/--no-persist", help="Save objects to --data-dir at exit and reload them.")
    ] = False,
    pod_start_delay: Annotated[
        float, typer.Option("--pod-start-delay", help="Seconds from scheduling to Running and Ready.")
    ] = 0.5,
    name_prefix: Annotated[str, typer.Option("--name-prefix", help="Clusters are named <prefix>-01, -02...")] = "sim",
    log_lines: Annotated[
        int, typer.Option("--log-lines", min=0, help="Lines of simulated log per container (kubectl logs).")
    ] = 10,
    watch_history: Annotated[
        int,
        typer.Option("--watch-history", min=1, help="Writes per cluster a watch can resume from (older: 410)."),
    ] = 200,
    flux: Annotated[
        bool,
        typer.Option(
            "--flux/--no-flux",
            help="Install Flux's CRDs in every cluster; the simulated Flux controllers "
            "fetch GitRepositories with git and apply Kustomizations (docs/sim.md).",
        ),
    ] = False,
    flux_max_artifact_size: Annotated[
        float, typer.Option("--flux-max-artifact-size", min=0.001, help="MiB: a larger git repository fails to fetch.")
    ] = 50.0,
    flux_requeue_dependency: Annotated[
        float,
        typer.Option(
            "--flux-requeue-dependency",
            min=0.01,
            help="Seconds before a Kustomization waiting on dependsOn retries (Flux's default: 30).",
        ),
    ] = 30.0,
) -> None:
    """Serve virtual Kubernetes clusters that kubectl, helm and client libraries use unchanged."""
    options = SimOptions(
        clusters=clusters,
        nodes=nodes,
        kubernetes_version=kubernetes_version,
        distribution=distribution,
        host=host,
        port=port,
        data_dir=data_dir,
        persist=persist,
        pod_start_delay=pod_start_delay,
        name_prefix=name_prefix,
        log_lines=log_lines,
        watch_history=watch_history,
        flux=flux,
        flux_max_artifact_mb=flux_max_artifact_size,
        flux_requeue_dependency=flux_requeue_dependency,
    )
    if not re.fullmatch(r"v\d+\.\d+\.\d+(\S*)", kubernetes_version):
        raise typer.BadParameter("expected a version like v1.31.2", param_hint="--kubernetes-version")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(options))


async def _serve(options: SimOptions) -> None:
    # No event-loop policy change here: set inside the running loop, uvloop's policy never switched that loop and only
    # made its asyncio subprocesses fail (NotImplementedError from the policy's missing child watcher), which the
    # simulated Flux controllers need for git and kustomize.
    configure("warning")
    server = SimServer(options)
    await server.start()
    names = list(server.clusters)
    typer.echo(f"halyard sim: {len(names)} virtual cluster(s) at {server.url}{'/clusters/<name>'}", err=True)
    for name in names[:10]:
        typer.echo(f"  {name}: export KUBECONFIG={server.kubeconfig_path(name)}")
    if len(names) > 10:
        typer.echo(f"  ... and {len(names) - 10} more in {server.data_dir / 'kubeconfigs'}")
    typer.echo(f"index: {server.data_dir / 'sim.json'} (started in {server.started_in:.2f}s)", err=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        # Also when started in the background, where SIGINT arrives ignored: stop cleanly (and save with --persist).
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await server.stop()
