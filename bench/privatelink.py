"""Private link: what the endpoint forwarder costs.

1. Heartbeat latency (p50/p99) of one cluster's agent, direct to the control plane and through ``halyard endpoint
   run`` + the endpoint ingress (the cluster in a scope that allows both), one connection per beat as agents open
   them after idling, sequential.
2. Byte throughput of the forwarder against ``socat`` on the same path: a client pushes bytes to the relay's
   listening port, the relay carries them over mutual TLS (the endpoint's certificate) to a sink that counts them
   (the forwarder also sends its PROXY header, which the sink skips); and the CPU seconds each relay spent per GB,
   which on a shared, loaded machine tells the relays apart better than their rates do.

    .venv/bin/python -m bench.privatelink [--beats 300] [--megabytes 256] [--rounds 2]
        [--only throughput] [--before-src /work/main/src]

``--only throughput`` skips the server and the heartbeats (the relays need only certificates: made here);
``--before-src`` adds a third relay, the forwarder of another checkout (``PYTHONPATH``), so a change is measured
against what it replaces in the same run. Each round runs every relay once, in a rotated order.
"""

from __future__ import annotations

import argparse
import asyncio
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

import httpx
import uvloop
from tests.api.agentcreds import connect
from tests.api.helpers import CC_API, RG_API, group_path
from tests.support.processes import HALYARD, ServerProcess, free_port

from halyard.controlplane.privatelink import endpointpki
from halyard.core import proxyv2
from halyard.core.pki import ensure_server_tls

HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}
BENCH_CPU: list[float] = []  # this process's CPU seconds per GB (the pusher and the sink) in each throughput run


def _settle(c: httpx.Client, r: httpx.Response) -> None:
    url = r.headers.get("Azure-AsyncOperation")
    while url and c.get(url).json()["status"] == "InProgress":
        time.sleep(0.05)


def _beats(url: str, headers: dict[str, str], ca: str, n: int, *, reuse: bool) -> list[float]:
    """``reuse``: one kept-alive connection (the agents' pooled client); else a new connection per beat, so the
    forwarder's per-connection cost (a second TCP and TLS handshake, to the ingress) counts."""
    times = []
    shared = httpx.Client(verify=ca) if reuse else None
    try:
        for _ in range(n):
            c = shared or httpx.Client(verify=ca)
            start = time.perf_counter()
            r = c.post(url, json={"agentVersion": "1.0.0"}, headers=headers)
            times.append(time.perf_counter() - start)
            assert r.status_code == 200, r.text
            if shared is None:
                c.close()
    finally:
        if shared is not None:
            shared.close()
    return times


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
    parser.add_argument("--beats", type=int, default=300)
    parser.add_argument("--megabytes", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--only", choices=["throughput"], default=None)
    parser.add_argument("--before-src", default=None, help="a checkout's src/: its forwarder runs too, as 'before'")
    args = parser.parse_args()
    if args.only == "throughput":
        _throughput_only(args)
        return
    work = Path(tempfile.mkdtemp(prefix="halyard-bench-pl-"))
    data = work / "data"
    ingress = free_port()
    server = ServerProcess(data, free_port(), env={"HALYARD_ENDPOINT_INGRESS": f"127.0.0.1:{ingress}"}).start()
    forwarder = None
    try:
        group = group_path(server, "rg-bench")
        with server.client() as c:
            c.put(group, params=RG_API, json={"location": "eastus"})
            scope = f"{group}/providers/Microsoft.HybridCompute/privateLinkScopes/s"
            _settle(
                c,
                c.put(scope, params=HC, json={"location": "eastus", "properties": {"publicNetworkAccess": "Enabled"}}),
            )
            vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/v"
            body: dict[str, Any] = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                    "subnets": [{"name": "default", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}  # fmt: skip
            _settle(c, c.put(vnet, params=NET, json=body))
            pe = f"{group}/providers/Microsoft.Network/privateEndpoints/pe"
            conn = {"name": "c", "properties": {"privateLinkServiceId": scope, "groupIds": ["hybridcompute"]}}
            body = {"location": "eastus", "properties": {"subnet": {"id": f"{vnet}/subnets/default"},
                                                         "privateLinkServiceConnections": [conn]}}  # fmt: skip
            _settle(c, c.put(pe, params=NET, json=body))
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
        fport = free_port()
        forward = [*HALYARD, "endpoint", "run", "--endpoint", pe, "--listen", f"127.0.0.1:{fport}", "--ingress",
                   f"127.0.0.1:{ingress}", "--cert", str(files / "endpoint.pem"), "--key", str(files / "endpoint.key"),
                   "--ca", str(files / "ca.pem")]  # fmt: skip
        forwarder = subprocess.Popen(forward, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.5)
        beat_urls = {
            "direct": f"{server.url}/dp/v1/heartbeat",
            "forwarder": f"https://127.0.0.1:{fport}/dp/v1/heartbeat",
        }
        _beats(beat_urls["direct"], agent.headers, server.ca, 20, reuse=False)  # warm-up
        latency: dict[str, Any] = {}
        for mode, reuse in (("new_connection", False), ("kept_alive", True)):
            runs = {k: _beats(u, agent.headers, server.ca, args.beats, reuse=reuse) for k, u in beat_urls.items()}
            latency[mode] = {k: {"p50": _pct(v, 0.5), "p99": _pct(v, 0.99)} for k, v in runs.items()}
            latency[mode]["added_p50"] = latency[mode]["forwarder"]["p50"] - latency[mode]["direct"]["p50"]
        forwarder.terminate()
        forwarder.wait(10)
        forwarder = None
        report = {"heartbeat_ms": latency, **_relays(args, data, files, pe)}
        print(json.dumps(report, indent=2))
    finally:
        if forwarder is not None:
            forwarder.terminate()
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
