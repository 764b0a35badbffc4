"""Private link: what the endpoint forwarder costs.

1. Heartbeat latency (p50/p99) of one cluster's agent (the agents' client, httpx) on four paths: direct to the
   control plane; through a plain TCP relay (``socat``: what any extra hop costs); to a private endpoint's address
   the server serves itself (``--endpoint-listener``: enforcement through an endpoint, no forwarder); and through
   ``halyard endpoint run`` + the endpoint ingress (the cluster in a scope that allows all of them). Each round
   (the first path rotated per round) beats on one kept-alive connection per path, the paths alternating beat by
   beat (how agents beat: keep-alive 75 s > their interval), then with a new connection per beat, path after path
   (a forwarder's per-connection cost: the PROXY header, the ingress's checks, the agent's handshake crossing two
   more hops), back to back and then 30 ms apart (a third of the beats): back to back, what a connection leaves to
   do (its teardown, the forwarder's replacement of its ready connection) falls on the next ones, a cost agents,
   whose new connections come seconds apart, do not see. ``added_p50`` is the forwarder's p50 minus the direct p50
   over all rounds, each round's beside it.
2. Onboarding time of new clusters, one of each kind in turn: created in no scope and onboarded publicly; created
   in a private-only scope (as ``connectedk8s connect --enable-private-link true`` creates it), its agents started
   with the public map as onboarding hands it, refused publicly with the scope's map and following it, through the
   endpoint the server serves itself and through the forwarder. Each is timed from the cluster's PUT to its first
   heartbeat answered (``total``), and in its agents' steps (``agents``: ``certificate`` from his, the refused
   public request included, ``token`` from the login service, ``first_heartbeat``), which is all an endpoint
   carries. The agents are the agents' own code (``IdentityOperator``, ``LiveEndpoints``); the scope's private
   names resolve to the endpoint's address as the site's DNS would make them (a network backend here).
3. Byte throughput of the forwarder against ``socat`` on the same path: a client pushes bytes to the relay's
   listening port, the relay carries them over mutual TLS (the endpoint's certificate) to a sink that counts them
   (the forwarder also sends its PROXY header, which the sink skips); and the CPU seconds each relay spent per GB,
   which on a shared, loaded machine tells the relays apart better than their rates do.

    .venv/bin/python -m bench.privatelink [--beats 200] [--clusters 20] [--megabytes 256] [--rounds 3]
        [--only throughput] [--before-src /work/main/src]

``--only throughput`` skips the server, the heartbeats and onboarding (the relays need only certificates: made
here); ``--before-src`` adds a third relay, the forwarder of another checkout (``PYTHONPATH``), so a change is
measured against what it replaces in the same run. Each round runs every relay once, in a rotated order.
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import httpcore
import httpx
import uvloop
from cryptography.hazmat.primitives.asymmetric import ec
from tests.api.agentcreds import connect, onboarding_key_b64
from tests.api.helpers import CC_API, RG_API, cluster_path, group_path
from tests.support.processes import HALYARD, ServerProcess, free_port

from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.controlplane import send
from halyard.agent.endpoints import LiveEndpoints
from halyard.agent.identity import IdentityOperator
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import DP_HEARTBEAT_PATH, EndpointMap
from halyard.controlplane.privatelink import endpointpki
from halyard.core import proxyv2
from halyard.core.clock import SystemClock
from halyard.core.pki import ensure_server_tls

HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}
PACE = 0.03  # seconds between new connections in the paced mode: the forwarder idles between them, as between agents'
BENCH_CPU: list[float] = []  # this process's CPU seconds per GB (the pusher and the sink) in each throughput run


def _settle(c: httpx.Client, r: httpx.Response) -> None:
    url = r.headers.get("Azure-AsyncOperation")
    while url and c.get(url).json()["status"] == "InProgress":
        time.sleep(0.05)


def _rotated(names: list[str], round_: int) -> list[str]:
    shift = round_ % len(names)
    return names[shift:] + names[:shift]


def _run_beats(
    urls: dict[str, str], order: list[str], headers: dict[str, str], ca: str, n: int, *, reuse: bool, pace: float = 0
) -> dict[str, list[float]]:
    """``n`` beats on each path. ``reuse``: one kept-alive connection per path (the agents' pooled client), the
    paths alternating beat by beat so the machine's drift falls on all alike. Else a new connection per beat, path
    after path: what a closed connection leaves to do (the forwarder replaces its ready connection to the ingress
    20 ms after each use, every hop tears its connection down) then falls on the same path's later beats, not on
    another's. ``pace``: seconds between the beats (agents' new connections come seconds apart, not back to
    back)."""
    times: dict[str, list[float]] = {k: [] for k in order}
    pooled = {k: httpx.Client(verify=ca) for k in order} if reuse else {}
    sequence = [name for _ in range(n) for name in order] if reuse else [name for name in order for _ in range(n)]
    try:
        for name in sequence:
            c = pooled.get(name) or httpx.Client(verify=ca)
            start = time.perf_counter()
            r = c.post(urls[name], json={"agentVersion": "1.0.0"}, headers=headers)
            times[name].append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
            if not reuse:
                c.close()
            time.sleep(pace)
    finally:
        for c in pooled.values():
            c.close()
    return times


def _heartbeats(urls: dict[str, str], headers: dict[str, str], ca: str, beats: int, rounds: int) -> dict[str, Any]:
    _run_beats(urls, list(urls), headers, ca, 20, reuse=False)  # warm-up
    report: dict[str, Any] = {}
    modes = (("kept_alive", True, beats, 0.0), ("new_connection", False, beats, 0.0),
             ("new_connection_paced", False, beats // 3, PACE))  # fmt: skip
    for mode, reuse, n, pace in modes:
        pooled: dict[str, list[float]] = {k: [] for k in urls}
        per_round, p50s = [], []
        for round_ in range(rounds):
            run = _run_beats(urls, _rotated(list(urls), round_), headers, ca, n, reuse=reuse, pace=pace)
            for name, values in run.items():
                pooled[name] += values
            per_round.append(round(_pct(run["forwarder"], 0.5) - _pct(run["direct"], 0.5), 3))
            p50s.append({name: round(_pct(values, 0.5), 3) for name, values in run.items()})
        report[mode] = {k: {"p50": round(_pct(v, 0.5), 3), "p99": round(_pct(v, 0.99), 3)} for k, v in pooled.items()}
        report[mode]["added_p50"] = round(report[mode]["forwarder"]["p50"] - report[mode]["direct"]["p50"], 3)
        report[mode]["added_p50_per_round"] = per_round
        report[mode]["p50_per_round"] = p50s  # in the order the round ran them
        for other in ("tcp_relay", "endpoint_listener"):
            report[mode][f"{other}_added_p50"] = round(report[mode][other]["p50"] - report[mode]["direct"]["p50"], 3)
    return report


class _Resolving(httpcore.AsyncNetworkBackend):
    """The site's DNS, as far as the agents' client is concerned: a name (the scope's private names; the public map
    names 127.0.0.1) is dialled at the endpoint's address. TLS still checks the name against the certificate."""

    def __init__(self, endpoint: tuple[str, int]) -> None:
        self._inner = httpcore.AnyIOBackend()
        self._endpoint = endpoint

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Any = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            ipaddress.ip_address(host)
        except ValueError:
            host, port = self._endpoint
        return await self._inner.connect_tcp(host, port, timeout, local_address, socket_options)

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _agents_client(ca: str, endpoint: tuple[str, int]) -> httpx.AsyncClient:
    """A fresh agents' client (new connections, as agents that just started) whose names resolve as the site's."""
    context = ssl.create_default_context(cafile=ca)
    transport = httpx.AsyncHTTPTransport(verify=context)
    transport._pool._network_backend = _Resolving(endpoint)  # httpx has no resolver hook; httpcore has this one
    return httpx.AsyncClient(transport=transport, timeout=30)


async def _onboard(
    server: ServerProcess, token: str, name: str, scope: str | None, endpoint: tuple[str, int]
) -> dict[str, float]:
    """One cluster from its PUT to its first heartbeat answered, and its steps, in seconds; with ``scope``, its
    private names resolve to ``endpoint``."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = cluster_path(server, "rg-bench", name)
    properties: dict[str, Any] = {"agentPublicKeyCertificate": onboarding_key_b64(key)}
    if scope is not None:  # as `connectedk8s connect --enable-private-link true --private-link-scope-resource-id`
        properties |= {"privateLinkState": "Enabled", "privateLinkScopeResourceId": scope}
    body = {"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": properties}
    manage = {"Authorization": f"Bearer {token}"}
    async with httpx.AsyncClient(base_url=server.url, verify=server.ca, headers=manage, timeout=30) as arm:
        start = time.perf_counter()
        r = await arm.put(path, params=CC_API, json=body)
        assert r.status_code in (200, 201), r.text
        while (await arm.get(path, params=CC_API)).json()["properties"]["provisioningState"] != "Succeeded":
            await asyncio.sleep(0.01)
        onboarding = EndpointMap.model_validate({**(await arm.get("/his/v1/endpoints")).json(),
                                                 "tenant": server.admin["tenant"]})  # fmt: skip
    agents_start = time.perf_counter()
    async with _agents_client(server.ca, endpoint) as http:
        live = LiveEndpoints(onboarding)
        config = ClusterConfig(path, onboarding, Path(server.ca).read_text(), key)
        identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics(), endpoints=live)  # type: ignore[arg-type]
        identity.issued = await identity.request_certificate(None)
        identity.ready.set()
        certified = time.perf_counter()
        token = await identity.token()
        tokened = time.perf_counter()
        beat = live.current().dp.rstrip("/") + DP_HEARTBEAT_PATH
        await send(http, "POST", beat, json={"agentVersion": "1.0.0"}, headers={"Authorization": f"Bearer {token}"})
        assert (scope is None) == (live.current() == onboarding), "the private cluster's agents follow its map"
    done = time.perf_counter()
    return {
        "total": done - start,
        "agents": done - agents_start,
        "certificate": certified - agents_start,
        "token": tokened - certified,
        "first_heartbeat": done - tokened,
    }


def _onboarding(server: ServerProcess, scope: str, endpoints: dict[str, int], clusters: int) -> dict[str, Any]:
    """``clusters`` clusters each way (in no scope; in the private-only scope through each endpoint of
    ``endpoints``), one of each in turn, the order rotated each time."""
    token = server.token()
    kinds = ["direct", *endpoints]
    times: dict[str, list[dict[str, float]]] = {k: [] for k in kinds}

    async def run() -> None:
        await _onboard(server, token, "warm-up", None, ("127.0.0.1", 0))
        for i in range(clusters):
            for kind in _rotated(kinds, i):
                private = scope if kind != "direct" else None
                endpoint = ("127.0.0.1", endpoints.get(kind, 0))
                times[kind].append(await _onboard(server, token, f"ob-{kind.replace('_', '-')}-{i}", private, endpoint))

    asyncio.run(run())
    report: dict[str, Any] = {}
    for part in times["direct"][0]:
        report[part] = {k: {"p50": round(_pct([t[part] for t in v], 0.5), 1),
                            "p99": round(_pct([t[part] for t in v], 0.99), 1)} for k, v in times.items()}  # fmt: skip
        report[part]["added_p50"] = round(report[part]["forwarder"]["p50"] - report[part]["direct"]["p50"], 1)
    report["clusters_each_way"] = clusters
    return report


def _pct(values: list[float], p: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * p))] * 1000


class _Counting(asyncio.Protocol):
    """The sink's side of one connection: counts what arrives after the relay's PROXY header, nothing more (a
    StreamReader's copies made the harness, not the relays, the slowest part: bench_cpu_seconds_per_GB)."""

    def __init__(self, counted: dict[str, Any]) -> None:
        self._counted = counted
        self._head = b""
        self._total = 0
        self._headed = False

    def data_received(self, data: bytes) -> None:
        if not self._headed:
            self._head += data
            if len(self._head) < 16:
                return
            parsed = proxyv2.parse(self._head) if self._head.startswith(proxyv2.SIGNATURE[:4]) else None
            self._total += len(self._head) - (parsed[1] if parsed else 0)
            self._headed, self._head = True, b""
            return
        self._total += len(data)

    def eof_received(self) -> bool | None:
        self.connection_lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._total and "bytes" not in self._counted:  # the relay's readiness probe carries nothing
            self._counted["bytes"] = self._total
            self._counted["at"] = time.perf_counter()


async def _sink(port: int, context: ssl.SSLContext, counted: dict[str, Any]) -> asyncio.Server:
    return await asyncio.get_running_loop().create_server(lambda: _Counting(counted), "127.0.0.1", port, ssl=context)


def _send(port: int, megabytes: int) -> float:
    """Push ``megabytes`` from a blocking socket (a thread: the kernel copies, no event loop in the way)."""
    block = memoryview(b"x" * (1 << 20))
    with socket.create_connection(("127.0.0.1", port)) as sock:
        start = time.perf_counter()
        for _ in range(megabytes):
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the relay closes once it has passed everything on
    return start


async def _push(port: int, megabytes: int) -> float:
    return await asyncio.to_thread(_send, port, megabytes)


def _cpu_seconds(pid: int) -> float:
    """CPU the process and its reaped children used (socat forks one per connection): utime, stime, cutime, cstime."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")


async def _throughput(
    relay: list[str], relay_port: int, sink_port: int, ctx: ssl.SSLContext, mb: int, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """(MB/s, the relay's CPU seconds per GB): CPU per byte tells relays apart on a machine too loaded for rates."""
    counted: dict[str, Any] = {}
    server = await _sink(sink_port, ctx, counted)
    proc = subprocess.Popen(relay, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        for _ in range(100):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", relay_port)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        counted.clear()
        cpu = _cpu_seconds(proc.pid)
        ours = time.process_time()
        start = await _push(relay_port, mb)
        while counted.get("bytes") is None:
            await asyncio.sleep(0.005)
        elapsed = counted["at"] - start
        BENCH_CPU.append((time.process_time() - ours) * 1024 / mb)
        assert counted["bytes"] == mb << 20, counted
        await asyncio.sleep(0.3)  # socat's child for the connection exits and is reaped
        return mb / elapsed, (_cpu_seconds(proc.pid) - cpu) * 1024 / mb
    finally:
        proc.terminate()
        proc.wait(10)
        server.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--beats", type=int, default=200, help="heartbeats per path, mode and round")
    parser.add_argument("--clusters", type=int, default=20, help="clusters onboarded each way")
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--only", choices=["throughput"], default=None)
    parser.add_argument("--before-src", default=None, help="a checkout's src/: its forwarder runs too, as 'before'")
    args = parser.parse_args()
    if args.only == "throughput":
        _throughput_only(args)
        return
    assert shutil.which("socat"), "socat is needed for the comparisons"
    work = Path(tempfile.mkdtemp(prefix="halyard-bench-pl-"))
    data = work / "data"
    ServerProcess(data, free_port()).start().stop()  # learns the subscription the endpoints' ids are in
    subscription = json.loads((data / "admin.json").read_text())["subscription"]
    ingress, served = free_port(), free_port()
    served_id = (
        f"/subscriptions/{subscription}/resourceGroups/rg-bench/providers/Microsoft.Network/privateEndpoints/pe-served"
    )
    env = {
        "HALYARD_ENDPOINT_INGRESS": f"127.0.0.1:{ingress}",
        "HALYARD_ENDPOINT_LISTENERS": json.dumps([f"127.0.0.1:{served}={served_id}"]),
    }
    server = ServerProcess(data, free_port(), env=env).start()
    relays: list[subprocess.Popen[bytes]] = []
    try:
        group = group_path(server, "rg-bench")
        with server.client() as c:
            c.put(group, params=RG_API, json={"location": "eastus"})
            scope = f"{group}/providers/Microsoft.HybridCompute/privateLinkScopes/s"
            _settle(c, c.put(scope, params=HC, json={"location": "eastus", "properties": {"publicNetworkAccess": "Enabled"}}))  # fmt: skip
            vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/v"
            body: dict[str, Any] = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}  # fmt: skip
            _settle(c, c.put(vnet, params=NET, json=body))
            conn = {"name": "c", "properties": {"privateLinkServiceId": scope, "groupIds": ["hybridcompute"]}}
            body = {"location": "eastus", "properties": {"subnet": {"id": f"{vnet}/subnets/default"},
                                                         "privateLinkServiceConnections": [conn]}}  # fmt: skip
            pe = f"{group}/providers/Microsoft.Network/privateEndpoints/pe"
            for endpoint in (pe, served_id):  # the forwarder's, and the one the server serves itself
                _settle(c, c.put(endpoint, params=NET, json=body))
        agent = connect(server, "rg-bench", "cc")
        with server.client() as c:
            cluster = c.get(agent.path, params=CC_API).json()
            cluster["properties"] |= {"privateLinkState": "Enabled", "privateLinkScopeResourceId": scope}
            _settle(
                c,
                c.put(agent.path, params=CC_API, json={k: cluster[k] for k in ("location", "identity", "properties")}),
            )
        files = work / "pe"
        subprocess.run([*HALYARD, "endpoint", "certificate", "--endpoint", pe, "--out", str(files), "--data-dir", str(data)],
                       check=True, capture_output=True)  # fmt: skip
        fport, tport = free_port(), free_port()
        forward = [*HALYARD, "endpoint", "run", "--endpoint", pe, "--listen", f"127.0.0.1:{fport}", "--ingress",
                   f"127.0.0.1:{ingress}", "--cert", str(files / "endpoint.pem"), "--key", str(files / "endpoint.key"),
                   "--ca", str(files / "ca.pem")]  # fmt: skip
        tcp = [
            "socat",
            f"TCP-LISTEN:{tport},bind=127.0.0.1,reuseaddr,fork,nodelay",
            f"TCP:127.0.0.1:{server.port},nodelay",
        ]
        for command in (forward, tcp):
            relays.append(subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        time.sleep(1.5)
        urls = {
            "direct": server.url,
            "tcp_relay": f"https://127.0.0.1:{tport}",
            "endpoint_listener": f"https://127.0.0.1:{served}",
            "forwarder": f"https://127.0.0.1:{fport}",
        }
        beat_urls = {k: f"{u}/dp/v1/heartbeat" for k, u in urls.items()}
        report: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
        report["heartbeat_ms"] = _heartbeats(beat_urls, agent.headers, server.ca, args.beats, args.rounds)
        with server.client() as c:  # onboarding into a private-only scope: the agents must come through the endpoint
            _settle(c, c.patch(scope, params=HC, json={"properties": {"publicNetworkAccess": "Disabled"}}))
        endpoints = {"endpoint_listener": served, "forwarder": fport}
        report["onboarding_ms"] = _onboarding(server, scope, endpoints, args.clusters)
        for relay in relays:
            relay.terminate()
            relay.wait(10)
        relays.clear()
        report |= _relays(args, data, files, pe)
        print(json.dumps(report, indent=2))
    finally:
        for relay in relays:
            relay.terminate()
            relay.wait(10)
        server.stop()
        shutil.rmtree(work, ignore_errors=True)


def _relays(args: argparse.Namespace, data: Path, files: Path, pe: str) -> dict[str, Any]:
    """Throughput: the forwarder, socat (and the forwarder of ``--before-src``), each to a sink with the same
    mutual TLS; rounds interleaved, the order rotated each round; every run's rate and CPU per GB kept."""
    sink_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(data / "tls" / "endpoint-ca.pem"))
    sink_ctx.load_cert_chain(str(data / "tls" / "server.pem"), str(data / "tls" / "server.key"))
    sink_ctx.verify_mode = ssl.CERT_REQUIRED
    names = ["forwarder", "socat", *(["before"] if args.before_src else [])]
    rates: dict[str, list[float]] = {n: [] for n in names}
    cpu_per_gb: dict[str, list[float]] = {n: [] for n in names}
    cert = ["--cert", str(files / "endpoint.pem"), "--key", str(files / "endpoint.key"), "--ca", str(files / "ca.pem")]
    for round_ in range(args.rounds):
        for name in names[round_ % len(names) :] + names[: round_ % len(names)]:
            sink, listen = free_port(), free_port()
            env = None
            if name in ("forwarder", "before"):
                relay = [*HALYARD, "endpoint", "run", "--endpoint", pe, "--listen", f"127.0.0.1:{listen}",
                         "--ingress", f"127.0.0.1:{sink}", *cert]  # fmt: skip
                if name == "before":
                    env = {**os.environ, "PYTHONPATH": args.before_src}
            else:
                assert shutil.which("socat"), "socat is needed for the comparison"
                relay = ["socat", f"TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork",
                         f"OPENSSL:127.0.0.1:{sink},cert={files / 'endpoint.pem'},key={files / 'endpoint.key'},"
                         f"cafile={files / 'ca.pem'}"]  # fmt: skip
            rate, cpu = uvloop.run(_throughput(relay, listen, sink, sink_ctx, args.megabytes, env))
            rates[name].append(round(rate, 1))
            cpu_per_gb[name].append(round(cpu, 3))
    best = {n: max(v) for n, v in rates.items()}
    return {
        "load_average": os.getloadavg(),
        "throughput_MB_s": rates,
        "forwarder_vs_socat_best": round(best["forwarder"] / best["socat"], 2),
        "forwarder_vs_socat_per_round": [round(f / s, 2) for f, s in zip(rates["forwarder"], rates["socat"])],
        **({"forwarder_vs_before_best": round(best["forwarder"] / best["before"], 2)} if args.before_src else {}),
        "relay_cpu_seconds_per_GB": cpu_per_gb,
        # When the pusher and sink need more CPU per byte than a relay, they, not the relays, set the rates.
        "bench_cpu_seconds_per_GB": [round(c, 3) for c in BENCH_CPU],
    }


def _throughput_only(args: argparse.Namespace) -> None:
    """The relays alone, with certificates made here (no server): the endpoint CA and one endpoint's certificate,
    a server certificate for the sink."""
    work = Path(tempfile.mkdtemp(prefix="halyard-bench-pl-"))
    try:
        data = work / "data"
        tls = ensure_server_tls(data / "tls", "bench", ["localhost"], ["127.0.0.1"])
        pe = "/subscriptions/0/resourceGroups/rg/providers/Microsoft.Network/privateEndpoints/pe"
        key, cert, _ = endpointpki.issue(data, pe)
        files = work / "pe"
        files.mkdir()
        (files / "endpoint.key").write_bytes(key)
        (files / "endpoint.pem").write_bytes(cert)
        (files / "ca.pem").write_bytes(tls.ca_cert.read_bytes())
        print(json.dumps(_relays(args, data, files, pe), indent=2))
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
