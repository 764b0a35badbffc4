"""The simulator process: TLS, one HTTPS listener for every virtual cluster, kubeconfigs and ``sim.json``.

Use :class:`SimServer` inside a running event loop (``await server.start()`` ... ``await server.stop()``),
:func:`run_sim` to serve until cancelled, or :class:`SimThread` to run it on a background thread (tests, agents).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from cryptography import x509

from halyard.core.clock import Clock, SystemClock
from halyard.core.files import write_private
from halyard.core.pki import ensure_server_tls, load_key
from halyard.sim import persistence, webhookauthz
from halyard.sim.api import ApiSettings, ClusterApi
from halyard.sim.app import PREFIX, SimApp, TlsHttpProtocol
from halyard.sim.cluster import VirtualCluster
from halyard.sim.controllers import ControllerManager, Timing
from halyard.sim.flux import FluxControllers, FluxSettings, install_crds
from halyard.sim.kubeconfig import issue_client_certificate, kubeconfig, write_kubeconfig
from halyard.sim.seed import seed_cluster

log = logging.getLogger(__name__)
DEFAULT_DATA_DIR = Path(os.environ.get("HALYARD_SIM_DIR", Path.home() / ".halyard" / "sim"))


@dataclass
class SimOptions:
    clusters: int = 1
    nodes: int = 3
    kubernetes_version: str = "v1.31.2"
    distribution: str = "generic"
    host: str = "127.0.0.1"
    port: int = 6443  # 0 picks a free port
    data_dir: Path = field(default_factory=lambda: DEFAULT_DATA_DIR)
    name_prefix: str = "sim"
    persist: bool = False  # save the clusters' objects to data_dir at stop, reload them at start
    persist_interval: float = 30.0  # and save this often while running, when something changed
    client_certificates: bool = True  # put a client certificate (as well as a token) in each kubeconfig
    pod_start_delay: float = 0.5
    job_pod_run: float = 1.0
    bookmark_interval: float = 60.0
    watch_history: int = 200
    log_lines: int = 10
    # Flux's CRDs in every cluster (the simulated Flux controllers serve any cluster that has them).
    flux: bool = False
    flux_max_artifact_mb: float = 50.0  # a git repository (or its unpacked tree) larger than this fails its reconcile
    flux_requeue_dependency: float = 30.0  # kustomize-controller's --requeue-dependency


def cluster_names(options: SimOptions) -> list[str]:
    width = max(2, len(str(options.clusters)))
    return [f"{options.name_prefix}-{i:0{width}d}" for i in range(1, options.clusters + 1)]


class _Server(uvicorn.Server):
    """uvicorn without its signal handling: whoever runs the simulator decides when it stops (and saves)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def serve(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's serve without its "Started/Finished server process" lines: the simulator is a listener inside
        a process (``halyard up`` runs it beside the control plane, whose uvicorn already says them), and says
        itself when it has started."""
        if not self.config.loaded:
            self.config.load()
        self.lifespan = self.config.lifespan_class(self.config)
        await self.startup(sockets=sockets)
        if not self.should_exit:
            await self.main_loop()
        if self.started:
            await self.shutdown(sockets=sockets)


class SimServer:
    """Many virtual clusters behind one HTTPS listener, each at ``https://host:port/clusters/<name>``."""

    def __init__(self, options: SimOptions, clock: Clock | None = None) -> None:
        self.options = options
        self.clock = clock or SystemClock()
        self.clusters: dict[str, VirtualCluster] = {}
        self.controllers = ControllerManager(Timing(options.pod_start_delay, options.job_pod_run))
        self.flux = FluxControllers(
            FluxSettings(
                storage=Path(options.data_dir) / "flux",
                max_artifact_bytes=int(options.flux_max_artifact_mb * 1024 * 1024),
                requeue_dependency=options.flux_requeue_dependency,
            )
        )
        self.api = ClusterApi(
            ApiSettings(options.kubernetes_version, options.bookmark_interval, options.log_lines),
            self.clock,
            lambda name: f"{PREFIX}{name}",
        )
        self.api.webhooks = webhookauthz.WebhookAuthorizer(lambda name: webhookauthz.webhook_path(self.data_dir, name))
        self.port = options.port
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._saver: asyncio.Task[None] | None = None
        self._ca_pem = b""
        self._ca_key: Any = None
        self._ca_cert: x509.Certificate | None = None
        self.started_in: float = 0.0

    @property
    def url(self) -> str:
        return f"https://{self.options.host}:{self.port}"

    @property
    def data_dir(self) -> Path:
        return Path(self.options.data_dir)

    def server_url(self, name: str) -> str:
        return f"{self.url}{PREFIX}{name}"

    def kubeconfig_path(self, name: str) -> Path:
        return self.data_dir / "kubeconfigs" / f"{name}.yaml"

    @property
    def ca_path(self) -> Path:
        return self.data_dir / "tls" / "ca.pem"

    async def start(self) -> None:
        began = time.perf_counter()
        opts = self.options
        self.data_dir.mkdir(parents=True, exist_ok=True)
        hosts = sorted({opts.host, "127.0.0.1", "localhost"})
        ips = [h for h in hosts if h.replace(".", "").isdigit() or ":" in h]
        tls = ensure_server_tls(
            self.data_dir / "tls", "halyard-sim", ["localhost", *[h for h in hosts if h not in ips]], ips
        )
        self._ca_pem = tls.ca_cert.read_bytes()
        self._ca_key = load_key(tls.ca_key.read_bytes())
        self._ca_cert = x509.load_pem_x509_certificate(self._ca_pem)
        restored = persistence.load(self.data_dir, self.clock, opts.watch_history) if opts.persist else {}
        for name in cluster_names(opts):
            if name in restored:
                self._attach(restored[name])
            else:
                self.add_cluster(name, write=False)
        for name in restored:
            if name not in self.clusters:
                self._attach(restored[name])
        # The seeded objects live as long as the process: take them out of the cyclic GC's sight, or every full
        # collection walks millions of dicts (a ~50 ms pause at 1,000 clusters, seen as list p99s).
        gc.collect()
        gc.freeze()
        sock = socket.socket(socket.AF_INET6 if ":" in opts.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((opts.host, opts.port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            SimApp(self.clusters, self.api),
            ssl_certfile=str(tls.cert),
            ssl_keyfile=str(tls.key),
            ssl_ca_certs=str(tls.ca_cert),
            ssl_cert_reqs=ssl.CERT_OPTIONAL,
            http=TlsHttpProtocol,
            lifespan="off",
            # No WebSocket library: every upgrade (WebSocket or SPDY) reaches the app as a plain request, is
            # authenticated and authorized there, and TlsHttpProtocol switches protocols after the app's 101.
            ws="none",
            # Leave logging to the process: the simulator may run inside another server (``halyard up``).
            log_config=None,
            log_level=None,
            access_log=False,
            timeout_graceful_shutdown=1,
            timeout_keep_alive=30,
            backlog=4096,
        )
        self._server = _Server(config)
        self.controllers.start()
        if opts.flux:
            self.flux.start()
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="sim-http")
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("the simulator's HTTP server stopped during start-up")
            await asyncio.sleep(0.01)
        for name in self.clusters:
            self._write_kubeconfig(name)
        self.write_index()
        if opts.persist:
            self._saver = asyncio.create_task(self._save_periodically(), name="sim-persist")
        self.started_in = time.perf_counter() - began
        log.info("sim started url=%s clusters=%d seconds=%.2f", self.url, len(self.clusters), self.started_in)

    def add_cluster(self, name: str, *, write: bool = True) -> VirtualCluster:
        """Create and seed a new virtual cluster at run time (``write`` its kubeconfig and update sim.json)."""
        if name in self.clusters:
            raise ValueError(f"virtual cluster {name!r} exists")
        opts = self.options
        cluster = VirtualCluster(name, self.clock, watch_history=opts.watch_history)
        seed_cluster(cluster, nodes=opts.nodes, version=opts.kubernetes_version, distribution=opts.distribution)
        if opts.flux:
            install_crds(cluster)
        self._attach(cluster)
        if write and self._server is not None:
            self._write_kubeconfig(name)
            self.write_index()
        return cluster

    def _attach(self, cluster: VirtualCluster) -> None:
        self.clusters[cluster.name] = cluster
        self.controllers.attach(cluster)
        if self.options.flux:  # without --flux nothing reconciles Flux objects, as on a cluster without Flux
            self.flux.attach(cluster)

    def _write_kubeconfig(self, name: str) -> None:
        cluster = self.clusters[name]
        cert = key = None
        if self.options.client_certificates and self._ca_cert is not None:
            cert, key = issue_client_certificate(
                self._ca_key, self._ca_cert, name, "kubernetes-admin", ["system:masters"]
            )
        config = kubeconfig(name, self.server_url(name), self._ca_pem, cluster.admin_token, cert, key)
        write_kubeconfig(self.kubeconfig_path(name), config)

    def index(self) -> dict[str, Any]:
        return {
            "url": self.url,
            "ca": str(self.ca_path),
            "kubernetesVersion": self.options.kubernetes_version,
            "pid": os.getpid(),
            "clusters": [
                {
                    "name": name,
                    "server": self.server_url(name),
                    "kubeconfig": str(self.kubeconfig_path(name)),
                    "token": c.admin_token,
                }
                for name, c in self.clusters.items()
            ],
        }

    def write_index(self) -> None:
        """``<data-dir>/sim.json``: where scripts and tests find the clusters (owner-only: it holds tokens)."""
        write_private(self.data_dir / "sim.json", json.dumps(self.index(), indent=2).encode())

    async def _save_periodically(self) -> None:
        """Save every ``persist_interval`` seconds when something changed, so a crash loses little."""
        last = self._version()
        while True:
            await asyncio.sleep(self.options.persist_interval)
            now = self._version()
            if now != last:
                persistence.save(self.data_dir, self.clusters)
                last = now

    def _version(self) -> int:
        return sum(c.store.rv for c in self.clusters.values()) + len(self.clusters)

    async def stop(self) -> None:
        if self._saver is not None:
            self._saver.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._saver
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flux.stop()
        await self.controllers.stop()
        if self.api.webhooks is not None:
            await self.api.webhooks.aclose()
        if self.options.persist:
            persistence.save(self.data_dir, self.clusters)


async def run_sim(options: SimOptions, *, ready: asyncio.Event | None = None) -> None:
    """Serve until cancelled; prints nothing (the CLI does)."""
    server = SimServer(options)
    await server.start()
    if ready is not None:
        ready.set()
    try:
        await asyncio.Event().wait()
    finally:
        await server.stop()


class SimThread:
    """A :class:`SimServer` on its own thread and event loop, for synchronous callers (tests, scripts)."""

    def __init__(self, options: SimOptions) -> None:
        self.options = options
        self.server: SimServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None

    def start(self, timeout: float = 60) -> SimServer:
        self._thread = threading.Thread(target=self._run, name="halyard-sim", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError("the simulator did not start in time")
        if self._error is not None:
            raise self._error
        assert self.server is not None
        return self.server

    def _run(self) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        try:
            self.server = SimServer(self.options)
            loop.run_until_complete(self.server.start())
        except BaseException as e:
            self._error = e
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(self.server.stop())
        loop.close()

    def call(self, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` on the simulator's loop (its state is not thread-safe) and return the result."""
        assert self._loop is not None

        async def run() -> Any:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(30)

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)
