"""What the agents see from where they run, recorded in the cluster for ``connectedk8s troubleshoot``.

A name resolves to one thing on the user's machine and another in a pod (the cluster's DNS, a hosts file, a proxy
on the way): only the agents can say where their connections go. resource-sync's process (local mode: the agents'
one process; in-cluster: resource-sync's pod) resolves each host of the endpoint map it follows, opens TCP and TLS
to it (through arc-proxy when the agents go through it), reads the certificate's expiry, and writes that with the
agents' state and its last heartbeat into ConfigMap ``halyard-diagnostics`` (``api/diagnostics.py``). It writes on
start (once the first beat was tried), when the beat's outcome changes (failing, a new error, recovered; at most
every ``least`` seconds) and otherwise every ``period`` seconds: a few kilobytes every few minutes.

A failure to look or to write is logged, never raised: the record helps troubleshooting, and must not make the
agents' state Failed (an older chart's Role does not grant the ConfigMap).
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import SplitResult, unquote, urlsplit

from halyard import __version__
from halyard.agent.endpoints import LiveEndpoints
from halyard.agent.resourcesync import Health
from halyard.api.agents import EndpointMap
from halyard.api.diagnostics import MAX_ERRORS, MAX_NAMES, AgentIssue, AgentsView, Diagnostics, NameView, cut
from halyard.core.clock import Clock

log = logging.getLogger("halyard.agent")
PERIOD = 300.0  # seconds between records while nothing changes
LEAST = 30.0  # seconds between records however often the beat's outcome changes
FIRST_WAIT = 30.0  # the first record waits this long for resource-sync's first beat
CHECK = 5.0  # how often the beat's outcome is looked at (in memory) ...
FIRST_CHECK = 1.0  # ... and until the first record, so it follows the first beat closely
TIMEOUT = 5.0  # per step: resolve, TCP, TLS

Resolve = Callable[[str, int], Awaitable[list[str]]]
Write = Callable[[Diagnostics], Awaitable[None]]


class Beats(Protocol):
    """The heartbeat's outcome as resource-sync keeps it."""

    @property
    def last_beat(self) -> dt.datetime | None: ...

    @property
    def beat_error(self) -> str | None: ...

    @property
    def beat_error_at(self) -> dt.datetime | None: ...


async def system_resolve(host: str, port: int) -> list[str]:
    """The addresses ``host`` resolves to here, as the agents' own connections resolve it."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return sorted({str(info[4][0]) for info in infos})


def hosts_of(endpoints: EndpointMap) -> list[tuple[str, int, list[str]]]:
    """Each ``(host, port, services)`` the map names, in the order the agents need them (heartbeat first)."""
    found: dict[tuple[str, int], list[str]] = {}
    for service, url in (("dp", endpoints.dp), ("his", endpoints.his), ("relay", endpoints.relay_url()),
                         ("login", endpoints.login), ("management", endpoints.management)):  # fmt: skip
        parts = urlsplit(url)
        if parts.hostname:
            port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
            found.setdefault((parts.hostname, port), []).append(service)
    return [(host, port, services) for (host, port), services in found.items()][:MAX_NAMES]


def _error(exc: BaseException) -> str:
    return cut(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)


def _shown_proxy(url: str) -> str:
    """The proxy's URL without its credentials."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port}" if parts.hostname else cut(url)


async def look(
    host: str, port: int, services: list[str], tls: ssl.SSLContext, *, resolve: Resolve, via: str | None = None
) -> NameView:
    """Resolve ``host`` (or, through the proxy ``via``, leave that to the proxy), open TCP and TLS to it as the
    agents do, and say what happened at each step."""
    view = NameView(services=services, host=host, port=port, via=_shown_proxy(via) if via else None)
    if via:
        proxy = urlsplit(via)
        address, dial_port = proxy.hostname or "", proxy.port or 80
    else:
        try:
            view.addresses = (await asyncio.wait_for(resolve(host, port), TIMEOUT))[:16]
        except (OSError, TimeoutError) as exc:
            view.resolveError = _error(exc)
            return view
        if not view.addresses:
            view.resolveError = "no address"
            return view
        address, dial_port = view.addresses[0], port
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(address, dial_port), TIMEOUT)
    except (OSError, TimeoutError) as exc:
        view.tcp, view.tcpError = False, _error(exc)
        return view
    try:
        if via:
            try:
                refused = await _connect_through(reader, writer, host, port, urlsplit(via))
            except (OSError, TimeoutError, EOFError, ValueError) as exc:  # closed, or an answer that is no HTTP
                refused = _error(exc)
            if refused:
                view.tcp, view.tcpError = False, cut(f"the proxy refused CONNECT {host}:{port}: {refused}")
                return view
        view.tcp = True
        try:
            await asyncio.wait_for(writer.start_tls(tls, server_hostname=host), TIMEOUT)
        except (ssl.SSLError, OSError, TimeoutError) as exc:
            view.tls, view.tlsError = False, _error(exc)
            return view
        view.tls = True
        cert = writer.get_extra_info("peercert") or {}
        if cert.get("notAfter"):
            view.certificateNotAfter = dt.datetime.fromtimestamp(ssl.cert_time_to_seconds(cert["notAfter"]), dt.UTC)
    except (OSError, TimeoutError) as exc:
        view.tcp, view.tcpError = False, _error(exc)
    finally:
        writer.close()
    return view


async def _connect_through(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str, port: int, proxy: SplitResult
) -> str | None:
    """Ask an HTTP proxy for a tunnel to ``host:port``; None when granted, its status line otherwise."""
    head = f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n"
    if proxy.username:
        token = base64.b64encode(f"{unquote(proxy.username)}:{unquote(proxy.password or '')}".encode()).decode()
        head += f"Proxy-Authorization: Basic {token}\r\n"
    writer.write((head + "\r\n").encode())
    answer = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), TIMEOUT)
    status = answer.split(b"\r\n", 1)[0].decode("latin-1")
    parts = status.split(" ", 2)
    return None if len(parts) > 1 and parts[1] == "200" else status


@dataclass(frozen=True)
class Written:
    at: dt.datetime
    outcome: str | None  # the beat's outcome then: None while it works, the error while it fails


def due(now: dt.datetime, started: dt.datetime, last: Written | None, outcome: str | None, tried: bool) -> bool:
    """Whether to record now: the first time once the first beat was tried (or ``FIRST_WAIT`` passed), again when
    the beat's outcome changed (not within ``LEAST`` of the last), and every ``PERIOD`` anyway."""
    if last is None:
        return tried or (now - started).total_seconds() >= FIRST_WAIT
    since = (now - last.at).total_seconds()
    return since >= PERIOD or (outcome != last.outcome and since >= LEAST)


class DiagnosticsRecorder:
    """The agents' view, recorded for ``connectedk8s troubleshoot`` (runs beside resource-sync)."""

    name = "diagnostics"

    def __init__(
        self,
        sync: Beats,
        health: Health,
        endpoints: LiveEndpoints,
        ca_bundle: str,
        write: Write,
        clock: Clock,
        *,
        resource_id: str,
        mode: str,
        via: str | None = None,
        resolve: Resolve = system_resolve,
    ) -> None:
        self._sync = sync
        self._health = health
        self._endpoints = endpoints
        self._tls = ssl.create_default_context(cadata=ca_bundle) if ca_bundle else ssl.create_default_context()
        self._write = write
        self._clock = clock
        self._resource_id = resource_id
        self._mode = mode
        self._via = via
        self._resolve = resolve
        self._started = clock.now()
        self.last: Written | None = None

    async def reconcile(self) -> float:
        now = self._clock.now()
        outcome = self._sync.beat_error
        tried = self._sync.last_beat is not None or outcome is not None
        if due(now, self._started, self.last, outcome, tried):
            try:
                await self._write(await self.observe())
            except Exception as exc:
                log.warning("could not record the agents' diagnostics", extra={"error": _error(exc)})
            self.last = Written(now, outcome)  # a failed write waits its turn too: no retry storm
        return CHECK if self.last is not None else FIRST_CHECK

    async def observe(self) -> Diagnostics:
        """What the agents see now."""
        current = self._endpoints.current()
        views = await asyncio.gather(
            *(look(host, port, services, self._tls, resolve=self._resolve, via=self._via)
              for host, port, services in hosts_of(current))
        )  # fmt: skip
        try:
            state, errors = await self._health()
        except Exception as exc:  # in-cluster the health is read from controller-manager's ConfigMap
            state, errors = None, []
            log.warning("could not read the agents' health for the diagnostics", extra={"error": _error(exc)})
        issues = [
            AgentIssue(component=e.component, message=cut(e.message), severity=e.severity, time=e.time)
            for e in errors[:MAX_ERRORS]
        ]
        return Diagnostics(
            resourceId=self._resource_id,
            observedAt=self._clock.now(),
            mode="in-cluster" if self._mode == "in-cluster" else "local",
            host=socket.gethostname()[:253],
            agentVersion=__version__,
            endpointsVersion=self._endpoints.version,
            agents=AgentsView(
                state=state,
                errors=issues,
                lastBeat=self._sync.last_beat,
                beatError=self._sync.beat_error,
                beatErrorAt=self._sync.beat_error_at,
            ),
            names=list(views),
        )
