"""Cluster-connect tunnel benchmark: bytes, small requests, stream opens and idle tunnels, beside ``ssh -R`` and socat.

One run, one machine, every path side by side:

- **target**: a TLS HTTP/1.1 stand-in for the API server (``--role target``, uvloop, the control plane's own
  certificate): ``GET …/small`` answers 200 bytes of JSON, ``GET …/bulk?bytes=N`` streams N bytes (flow-controlled
  writes of one preallocated buffer). The simulator's API server is not used: its Python serving would be the
  bottleneck and the tunnel would not show.
- **direct**: the client to the target.
- **tunnel**: the client → TLS → relay (the real ``halyard server``) → TLS data connection → clusterconnect-agent
  and auth-proxy (the real code, ``--role agent``, own process) → TLS → target. The client speaks as kubectl does with
  the kubeconfig of ``listClusterUserCredential``: requests under ``/relay/v1/<cluster id>``, a management token.
- **ssh -R**: a private sshd on loopback and ``ssh -N -R`` from "the cluster side" to the target; the client's TLS
  goes end to end through the SSH channel (default cipher, and ``aes128-gcm``).
- **socat ×2**: two ``socat -b 262144`` hops in a chain (the tunnel has two relay hops too); TLS end to end.

Figures: bulk throughput (``curl --http1.1`` to /dev/null, bytes / (total − first byte)), CPU s/GB of the
intermediaries (relay + agent; sshd + ssh; both socats), small-GET latency on one keep-alive connection, stream-open
latency (a new connection's connect, TLS and first request), the agent's per-stream data dial, small-GET latency on a
second stream while a first one is stalled (its reader stopped) or bulk-downloading, the pure-Python framing cost a
multiplexed design would add per GB, and the relay's RSS per idle tunnel at each ``--tunnels`` count (held by a
client process speaking the real tunnel protocol, answering pings, one onboarded cluster each).

    .venv/bin/python -m bench.tunnel [--state .cache/fleet] [--tunnels 1000 10000] [--bulk-mib 1024] [--repeats 3]
                                     [--requests 2000] [--output out.json]

``--hold SECONDS`` prints the relay's, the agent's and the target's pids and a curl command once the tunnel is up,
and waits: what ``py-spy record -p PID`` was pointed at for the profile in ``docs/benchmarks.md``.

Clusters and their agent identities come from :mod:`bench.fleet` (``--state`` reuses a saved fleet of
``max(--tunnels)`` clusters, otherwise they are onboarded, ~7 minutes for 10,000). Needs ``sshd`` and ``socat``
(``apt-get install openssh-server socat``); without them those rows are skipped and the run says so.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import resource
import shutil
import signal
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
from bench.fleet import bounded, cpu_seconds, memory_mb, onboarded_fleet, run
from tests.support.processes import free_port

from halyard.agent.controlplane import send
from halyard.api.agents import EndpointMap

SMALL_REPLY = b'{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Success","details":{"name":"bench"},' + (
    b'"message":"' + b"x" * 96 + b'"}'
)
CHUNK = 256 * 1024
MiB = 1024 * 1024


# --- the target: a TLS stand-in for the API server -------------------------------------------------------------
class _Target(asyncio.Protocol):
    """Keep-alive HTTP/1.1 GETs: ``/small`` or ``/bulk?bytes=N``; the path may carry any prefix."""

    payload = os.urandom(CHUNK)

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.left = 0
        self.paused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.set_write_buffer_limits(high=1024 * 1024, low=256 * 1024)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while self.left == 0 and (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            line = bytes(self.buffer[: self.buffer.find(b"\r\n")]).decode("latin-1")
            del self.buffer[: end + 4]
            target = line.split(" ")[1] if " " in line else "/"
            assert self.transport is not None
            if "/bulk" in target:
                size = int(target.rsplit("bytes=", 1)[1])
                head = f"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {size}\r\n\r\n"
                self.transport.write(head.encode())
                self.left = size
                self._pump()
            else:
                head = (
                    f"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {len(SMALL_REPLY)}\r\n\r\n"
                )
                self.transport.write(head.encode() + SMALL_REPLY)

    def _pump(self) -> None:
        assert self.transport is not None
        while self.left and not self.paused and not self.transport.is_closing():
            n = min(self.left, CHUNK)
            self.transport.write(self.payload if n == CHUNK else self.payload[:n])
            self.left -= n
        if self.left == 0 and self.buffer:
            self.data_received(b"")

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self._pump()


async def target_main(args: argparse.Namespace) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(args.cert, args.key)
    server = await asyncio.get_running_loop().create_server(_Target, "127.0.0.1", int(args.port), ssl=tls)
    print("ready", flush=True)
    async with server:
        await server.serve_forever()


# --- the agent: the real clusterconnect-agent and auth-proxy, one cluster ---------------------------------------
class _FixedToken:
    def __init__(self, token: str) -> None:
        self._token = token

    async def token(self) -> str:
        return self._token

    def forget_token(self) -> None:
        pass

    async def wait_ready(self, timeout: float) -> None:
        pass


async def agent_main(args: argparse.Namespace) -> None:
    from halyard.agent import clusterconnect
    from halyard.agent.authproxy import ApiServer, AssertionVerifier, AuthProxy
    from halyard.agent.metrics import AgentMetrics

    dials: list[float] = []
    real_dial = clusterconnect.dial

    async def timed_dial(url: str, **kwargs: Any) -> Any:
        started = time.perf_counter()
        upgraded = await real_dial(url, **kwargs)
        if "/streams/" in url:
            dials.append(time.perf_counter() - started)
        return upgraded

    clusterconnect.dial = timed_dial  # type: ignore[assignment]
    tls = ssl.create_default_context(cafile=args.ca)

    async def own_token() -> str:
        return "bench-auth-proxy-token"  # the stand-in checks nothing; a real one is fetched once an hour

    async with httpx.AsyncClient(verify=args.ca) as http:
        verifier = AssertionVerifier(http, jwks_url=args.jwks, issuer=args.issuer, cluster_id=args.cluster,
                                     now=time.time)  # fmt: skip
        proxy = AuthProxy(ApiServer.of(args.target, tls), verifier, own_token)
        token = _FixedToken(Path(args.token_file).read_text())
        agent = clusterconnect.ClusterConnect(args.relay, token, tls, proxy, AgentMetrics())
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        task = asyncio.ensure_future(_hold(agent))
        await stop.wait()
        task.cancel()
        Path(args.stats).write_text(json.dumps({"stream_dials": dials}))


async def _hold(agent: Any) -> None:
    while True:
        try:
            await agent.reconcile()
        except Exception as exc:
            print(f"agent: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
            await asyncio.sleep(0.5)


# --- the holder: many idle tunnels speaking the real protocol ----------------------------------------------------
class _IdleTunnel(asyncio.Protocol):
    """An agent's control connection doing nothing but answering the relay's pings."""

    def __init__(self, alive: set[_IdleTunnel]) -> None:
        from halyard.tunnel.frames import FrameDecoder

        self.decoder = FrameDecoder()
        self.alive = alive
        self.transport: asyncio.Transport | None = None

    def data_received(self, data: bytes) -> None:
        from halyard.tunnel.frames import Frame, FrameType

        for frame in self.decoder.frames(data):
            if frame.type is FrameType.PING and self.transport is not None:
                self.transport.write(Frame(FrameType.PONG, frame.payload).encode())

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive.discard(self)


async def holder_main(args: argparse.Namespace) -> None:
    from halyard.tunnel.dial import dial

    tokens = json.loads(Path(args.token_file).read_text())
    tls = ssl.create_default_context(cafile=args.ca)
    alive: set[_IdleTunnel] = set()
    failures: list[str] = []
    opened = 0

    async def open_one(token: str) -> None:
        try:
            upgraded = await dial(f"{args.relay}/v1/tunnel", upgrade="halyard-tunnel/1",
                                  fields=[("Authorization", f"Bearer {token}")], ssl_context=tls, timeout=60)  # fmt: skip
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {exc}")
            return
        tunnel = _IdleTunnel(alive)
        tunnel.transport = upgraded.transport
        upgraded.transport.set_protocol(tunnel)
        alive.add(tunnel)
        if upgraded.rest:
            tunnel.data_received(upgraded.rest)
        upgraded.transport.resume_reading()

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    print("ready", flush=True)
    while line := (await reader.readline()).decode().split():
        if line[0] == "open":
            wanted = int(line[1])
            started = time.perf_counter()
            await bounded(tokens[opened:wanted], open_one, 64)
            seconds = time.perf_counter() - started
            opened = max(opened, wanted)
            print(json.dumps({"alive": len(alive), "failed": len(failures), "seconds": round(seconds, 1),
                              "first_failure": failures[0] if failures else None}), flush=True)  # fmt: skip
        elif line[0] == "count":
            print(json.dumps({"alive": len(alive)}), flush=True)
        else:
            break
    for tunnel in list(alive):
        if tunnel.transport is not None:
            tunnel.transport.abort()


# --- measuring ------------------------------------------------------------------------------------------------
def tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its live descendants (sshd and socat fork one child per connection)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError):
            total += cpu_seconds(current)
        todo.extend(children.get(current, []))
    return total


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)

    def at(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000, 3)

    return {"p50_ms": at(50), "p99_ms": at(99), "n": len(ordered)}


async def read_reply(reader: asyncio.StreamReader) -> int:
    """Read one HTTP/1.1 reply with a Content-Length body; its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    await reader.readexactly(length)
    return int(head[9:12])


class Connection:
    """One keep-alive HTTP/1.1 connection over TLS reading Content-Length replies (the same client on every path)."""

    def __init__(self, port: int, tls: ssl.SSLContext) -> None:
        self.port, self.tls = port, tls
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port, ssl=self.tls,
                                                                 server_hostname="127.0.0.1")  # fmt: skip

    async def get(self, request: bytes) -> int:
        assert self.reader is not None and self.writer is not None
        self.writer.write(request)
        return await read_reply(self.reader)

    def close(self) -> None:
        if self.writer is not None:
            self.writer.transport.abort()


@contextlib.contextmanager
def process(args: list[str], **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(args, **kwargs)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_port(port: int, timeout: float = 20.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port}")


@contextlib.contextmanager
def ssh_reverse(target_port: int, cipher: str | None, work: Path) -> Iterator[tuple[int, list[int]]]:
    """A private sshd on loopback and ``ssh -N -R``: (the remote-forwarded port, pids whose CPU the hop costs)."""
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    work.mkdir(exist_ok=True)
    if not (work / "host").exists():
        for name in ("host", "client"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True)
        (work / "authorized_keys").write_text((work / "client.pub").read_text())
    port, forwarded = free_port(), free_port()
    (work / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {work / 'host'}\nPidFile {work / 'sshd.pid'}\n"
        f"AuthorizedKeysFile {work / 'authorized_keys'}\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "UsePAM no\nStrictModes no\nPermitRootLogin prohibit-password\nAllowTcpForwarding yes\n"
    )
    Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory
    with process([sshd, "-D", "-e", "-f", str(work / "sshd_config")], stderr=subprocess.DEVNULL) as daemon:
        wait_port(port)
        cipher_args = ["-c", cipher] if cipher else []
        ssh = ["ssh", "-N", "-i", str(work / "client"), "-p", str(port), *cipher_args, "-o", "BatchMode=yes",
               "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR",
               "-o", "ExitOnForwardFailure=yes", "-R", f"127.0.0.1:{forwarded}:127.0.0.1:{target_port}",
               f"{os.environ.get('USER', 'root')}@127.0.0.1"]  # fmt: skip
        with process(ssh) as client:
            wait_port(forwarded)
            yield forwarded, [daemon.pid, client.pid]


@contextlib.contextmanager
def socat_chain(target_port: int) -> Iterator[tuple[int, list[int]]]:
    first, second = free_port(), free_port()

    def hop(listen: int, to: int) -> list[str]:
        return ["socat", "-b", "262144", f"TCP-LISTEN:{listen},bind=127.0.0.1,reuseaddr,fork", f"TCP:127.0.0.1:{to}"]

    with process(hop(second, target_port)) as b, process(hop(first, second)) as a:
        wait_port(second)
        wait_port(first)
        yield first, [a.pid, b.pid]


def curl_bulk(url: str, ca: str, headers: list[str], pids: list[int], target: int) -> dict[str, Any]:
    cpu = [tree_cpu(p) for p in pids]
    target_cpu = cpu_seconds(target)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    out = subprocess.run(
        ["curl", "-sS", "--http1.1", "-o", "/dev/null", "--cacert", ca, *[a for h in headers for a in ("-H", h)],
         "-w", "%{http_code} %{size_download} %{time_starttransfer} %{time_total}", url],
        capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    wall = time.perf_counter() - started
    if out[0] != "200":
        raise RuntimeError(f"{url}: HTTP {out[0]}")
    size, first, total = int(out[1]), float(out[2]), float(out[3])
    used = [tree_cpu(p) - before for p, before in zip(pids, cpu, strict=True)]
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime  # curl's own CPU
    gb = size / 1e9
    return {"mb_per_s": size / MiB / (total - first), "cpu_s_per_gb": sum(used) / gb, "wall_s": wall,
            "first_byte_ms": first * 1000, "cpu_s_per_gb_each": [u / gb for u in used],
            "ends_cpu_s_per_gb": [(cpu_seconds(target) - target_cpu) / gb, client / gb]}  # fmt: skip


async def small_latency(port: int, tls: ssl.SSLContext, request: bytes, count: int, warm: int = 200) -> dict[str, Any]:
    connection = Connection(port, tls)
    await connection.open()
    try:
        for _ in range(warm):
            assert await connection.get(request) == 200
        samples = []
        for _ in range(count):
            started = time.perf_counter()
            status = await connection.get(request)
            samples.append(time.perf_counter() - started)
            assert status == 200, status
        return percentiles(samples)
    finally:
        connection.close()


async def open_latency(port: int, tls: ssl.SSLContext, request: bytes, count: int) -> dict[str, Any]:
    """A new connection per sample: connect, TLS, the first request's reply (a stream open, through the tunnel)."""
    samples = []
    for _ in range(count):
        connection = Connection(port, tls)
        started = time.perf_counter()
        await connection.open()
        status = await connection.get(request)
        samples.append(time.perf_counter() - started)
        connection.close()
        assert status == 200, status
        await asyncio.sleep(0.01)
    return percentiles(samples)


def framing_cost(total: int = 256 * MiB, size: int = 16 * 1024) -> dict[str, float]:
    """What a multiplexed tunnel adds per GB in pure Python: each data frame encoded (header + payload joined)
    and decoded (buffered, sliced out) with the tunnel's own frame layout, no I/O. The per-connection design
    passes the transport's bytes on without touching them."""
    import struct

    head = struct.Struct("!BIH")  # type, stream id, length: what a data frame needs
    payload = os.urandom(size)
    started = time.process_time()
    buffer = bytearray()
    for _ in range(total // size):
        buffer += head.pack(6, 7, size - 1) + payload[:-1]  # encode, and the receiver buffers the read
        _kind, _stream, length = head.unpack_from(buffer)
        frame = bytes(buffer[head.size : head.size + length])  # decode: the payload sliced out
        del buffer[: head.size + length]
        assert len(frame) == length
    used = time.process_time() - started
    return {"frame_bytes": size, "cpu_s_per_gb": round(used / (total / 1e9), 3)}


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())  # fmt: skip

    def version(cmd: list[str]) -> str:
        try:
            done = subprocess.run(cmd, capture_output=True, text=True)
            return (done.stdout or done.stderr).splitlines()[0].strip()
        except (OSError, IndexError):
            return "missing"

    import uvloop

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "uvloop": uvloop.__version__,
        "ssh": version(["ssh", "-V"]),
        "socat": version(["socat", "-V"])[:60] if shutil.which("socat") else "missing",
        "curl": version(["curl", "--version"])[:60],
    }


async def idle_tunnels(relay: str, ca: str, tokens: list[str], counts: list[int], server_pid: int,
                       work: Path) -> list[dict[str, Any]]:  # fmt: skip
    """The relay's RSS with 0 and each count of idle tunnels held by a separate client process."""
    token_file = work / "holder-tokens.json"
    token_file.write_text(json.dumps(tokens))
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.tunnel", "--role", "holder", "--relay", relay, "--ca", ca,
        "--token-file", str(token_file), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
    )  # fmt: skip
    assert holder.stdin is not None and holder.stdout is not None
    try:
        assert (await holder.stdout.readline()).strip() == b"ready"
        await asyncio.sleep(3)
        base = memory_mb(server_pid)["VmRSS"]
        rows = [{"tunnels": 0, "server_rss_mb": round(base, 1)}]
        print(json.dumps(rows[0]), flush=True)
        for count in counts:
            holder.stdin.write(f"open {count}\n".encode())
            opened = json.loads(await holder.stdout.readline())
            await asyncio.sleep(5)  # past the handshakes' garbage, and one ping round for some
            holder.stdin.write(b"count\n")
            alive = json.loads(await holder.stdout.readline())["alive"]
            rss = memory_mb(server_pid)["VmRSS"]
            rows.append({"tunnels": count, "alive": alive, "failed": opened["failed"],
                         "open_seconds": opened["seconds"], "first_failure": opened["first_failure"],
                         "server_rss_mb": round(rss, 1), "kb_per_tunnel": round((rss - base) * 1024 / max(1, alive), 1)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
        return rows
    finally:
        if holder.returncode is None:
            holder.stdin.write(b"quit\n")
            with contextlib.suppress(Exception):
                await asyncio.wait_for(holder.wait(), 30)
            if holder.returncode is None:
                holder.kill()
                await holder.wait()


async def orchestrate(args: argparse.Namespace) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    os.environ["HALYARD_CONNECTIONS_PER_ADDRESS"] = "0"  # every tunnel comes from 127.0.0.1 here
    results: dict[str, Any] = {"machine": machine()}
    print(json.dumps(results["machine"]), flush=True)
    fleet_size = max([*args.tunnels, 1])
    fleet_args = argparse.Namespace(state=args.state, connections=64)
    with tempfile.TemporaryDirectory(prefix="halyard-tunnel-") as tmp:
        work = Path(tmp)
        async with onboarded_fleet(fleet_size, fleet_args, None) as (server, members, _timings):
            pid = server.proc.pid  # type: ignore[union-attr]
            relay = f"{server.url}/relay"
            if args.tunnels:
                tokens = [await m.identity.token() for m in members]
                results["idle"] = await idle_tunnels(relay, server.ca, tokens, sorted(args.tunnels), pid, work)
                await asyncio.sleep(3)
            results["paths"] = await data_paths(args, server, members[0], work)
            results["framing"] = framing_cost()
            results["loadavg_after"] = os.getloadavg()
    print(json.dumps(results, indent=1), flush=True)
    if args.output:
        args.output.write_text(json.dumps(results, indent=2))


async def data_paths(args: argparse.Namespace, server: Any, member: Any, work: Path) -> dict[str, Any]:
    ca = server.ca
    tls_dir = server.data_dir / "tls"
    async with httpx.AsyncClient(verify=ca) as http:
        endpoints = EndpointMap.model_validate({**(await send(http, "GET", f"{server.url}/his/v1/endpoints")),
                                                "tenant": server.admin["tenant"]})  # fmt: skip
    login = endpoints.login.rstrip("/")
    cluster = member.name
    token_file = work / "agent-token"
    token_file.write_text(await member.identity.token())
    user = server.token()
    target_port = free_port()
    out: dict[str, Any] = {"bulk_mib": args.bulk_mib}
    py = [sys.executable, "-m", "bench.tunnel"]
    with (
        process([*py, "--role", "target", "--port", str(target_port), "--cert", str(tls_dir / "server.pem"),
                 "--key", str(tls_dir / "server.key")], stdout=subprocess.PIPE) as target,
        process([*py, "--role", "agent", "--relay", f"{server.url}/relay", "--ca", ca, "--cluster", cluster,
                 "--jwks", f"{login}/{endpoints.tenant}/discovery/v2.0/keys", "--issuer", f"{login}/{endpoints.tenant}/v2.0",
                 "--target", f"https://127.0.0.1:{target_port}", "--token-file", str(token_file),
                 "--stats", str(work / "agent-stats.json")]) as agent,
    ):  # fmt: skip
        assert target.stdout is not None and target.stdout.readline().strip() == b"ready"
        tls = ssl.create_default_context(cafile=ca)
        prefix = f"/relay/v1{cluster}"
        auth = f"Authorization: Bearer {user}"

        def request(path: str, port: int) -> bytes:
            return (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}\r\nAccept: application/json\r\n\r\n".encode()
            )

        # The tunnel is up once a request through it is answered.
        for _ in range(200):
            try:
                await small_latency(server.port, tls, request(prefix + "/small", server.port), 1, warm=0)
                break
            except (AssertionError, OSError, asyncio.IncompleteReadError):
                await asyncio.sleep(0.1)
        if args.hold:
            print(
                json.dumps(
                    {
                        "relay": server.proc.pid,
                        "agent": agent.pid,
                        "target": target.pid,
                        "curl": f"curl --http1.1 -o /dev/null --cacert {ca} -H '{auth}' "
                        f"https://127.0.0.1:{server.port}{prefix}/bulk?bytes=N",
                    }
                ),
                flush=True,
            )
            await asyncio.sleep(args.hold)
        paths: dict[str, tuple[int, str, list[int]]] = {
            "direct": (target_port, "", []),
            "tunnel": (server.port, prefix, [server.proc.pid, agent.pid]),
        }
        with contextlib.ExitStack() as stack:
            if shutil.which("sshd") or Path("/usr/sbin/sshd").exists():
                port, pids = stack.enter_context(ssh_reverse(target_port, None, work / "ssh"))
                paths["ssh -R (chacha20)"] = (port, "", pids)
                port, pids = stack.enter_context(ssh_reverse(target_port, "aes128-gcm@openssh.com", work / "ssh"))
                paths["ssh -R (aes128-gcm)"] = (port, "", pids)
            else:
                out["skipped"] = ["ssh -R: no sshd (apt-get install openssh-server)"]
            if shutil.which("socat"):
                port, pids = stack.enter_context(socat_chain(target_port))
                paths["socat x2"] = (port, "", pids)
            else:
                out.setdefault("skipped", []).append("socat x2: no socat (apt-get install socat)")
            bulk: dict[str, list[dict[str, Any]]] = {name: [] for name in paths}
            size = args.bulk_mib * MiB
            for _ in range(args.repeats):  # interleaved: a neighbour's burst hits every path alike
                for name, (port, pre, pids) in paths.items():
                    url = f"https://127.0.0.1:{port}{pre}/bulk?bytes={size}"
                    bulk[name].append(curl_bulk(url, ca, [auth] if pre else [], pids, target.pid))
            out["bulk"] = {name: {"mb_per_s": round(statistics.median(r["mb_per_s"] for r in runs), 1),
                                  "mb_per_s_range": [round(min(r["mb_per_s"] for r in runs), 1),
                                                     round(max(r["mb_per_s"] for r in runs), 1)],
                                  "cpu_s_per_gb": round(statistics.median(r["cpu_s_per_gb"] for r in runs), 3),
                                  "cpu_s_per_gb_each": [round(statistics.median(r["cpu_s_per_gb_each"][i] for r in runs), 3)
                                                        for i in range(len(runs[0]["cpu_s_per_gb_each"]))],
                                  "target_and_client_cpu_s_per_gb": [round(statistics.median(r["ends_cpu_s_per_gb"][i] for r in runs), 3)
                                                                     for i in (0, 1)]}
                           for name, runs in bulk.items()}  # fmt: skip
            print(json.dumps({"bulk": out["bulk"]}), flush=True)
            out["small"] = {}
            out["open"] = {}
            for name, (port, pre, _pids) in paths.items():
                out["small"][name] = await small_latency(port, tls, request(pre + "/small", port), args.requests)
                out["open"][name] = await open_latency(port, tls, request(pre + "/small", port), args.opens)
            print(json.dumps({"small": out["small"], "open": out["open"]}), flush=True)
        out["contention"] = {
            "tunnel": await contention(server.port, tls, request(prefix + "/small", server.port), prefix, auth, ca,
                                       args, [server.proc.pid, agent.pid]),
            "direct": await contention(target_port, tls, request("/small", target_port), "", auth, ca, args,
                                       [target.pid]),
        }  # fmt: skip
        out["rss_mb_after"] = {"relay": round(memory_mb(server.proc.pid)["VmRSS"], 1),
                               "agent": round(memory_mb(agent.pid)["VmRSS"], 1)}  # fmt: skip
        agent.terminate()
        agent.wait(10)
        dials = json.loads((work / "agent-stats.json").read_text())["stream_dials"]
        out["agent_stream_dial"] = percentiles(dials)
        with contextlib.suppress(OSError):
            os.kill(target.pid, signal.SIGTERM)
    return out


async def contention(port: int, tls: ssl.SSLContext, small: bytes, prefix: str, auth: str, ca: str,
                     args: argparse.Namespace, pids: list[int]) -> dict[str, Any]:  # fmt: skip
    """Small GETs on one stream while another stream of the same cluster is stalled (its reader stopped after
    asking for 8 GiB), bulk-downloading at full speed, or at 100 MB/s (CPU left over: what remains is queueing
    inside the hops, not CPU starvation)."""
    out: dict[str, Any] = {}
    stalled = Connection(port, tls)
    await stalled.open()
    assert stalled.writer is not None
    stalled.writer.write(f"GET {prefix}/bulk?bytes={8 * 1024 * MiB} HTTP/1.1\r\nHost: x\r\n{auth}\r\n\r\n".encode())
    await asyncio.sleep(2)  # every buffer on the way fills, then each hop pauses its source
    rss = [memory_mb(p)["VmRSS"] for p in pids]
    out["while_other_stalled"] = await small_latency(port, tls, small, args.requests)
    out["while_other_stalled"]["rss_mb"] = [round(r, 1) for r in rss]  # relay and agent, or the target
    stalled.close()
    url = f"https://127.0.0.1:{port}{prefix}/bulk?bytes={64 * 1024 * MiB}"
    for name, limit in (("while_other_bulk", []), ("while_other_bulk_100mb_s", ["--limit-rate", "100M"])):
        with process(["curl", "-sS", "--http1.1", "-o", "/dev/null", "--cacert", ca, "-H", auth, *limit, url],
                     stderr=subprocess.DEVNULL):  # fmt: skip
            await asyncio.sleep(1)
            out[name] = await small_latency(port, tls, small, args.requests)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["bench", "target", "agent", "holder"], default="bench")
    parser.add_argument("--state", type=Path, default=None, help="a saved bench.fleet state (fleet-<N> inside)")
    parser.add_argument("--tunnels", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--bulk-mib", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--opens", type=int, default=100)
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--hold", type=float, default=0, help="print the pids and a curl command, wait this long")
    # the roles' own arguments
    for name in ("port", "cert", "key", "relay", "ca", "cluster", "jwks", "issuer", "target", "token-file", "stats"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    gc.collect()
    entry = {"bench": orchestrate, "target": target_main, "agent": agent_main, "holder": holder_main}[args.role]
    run(lambda: entry(args))


if __name__ == "__main__":
    main()
