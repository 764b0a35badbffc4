"""One TLS-terminating hop on its own: what relaying a bulk stream costs in Python, without the relay around it.

Each variant is a process that accepts TLS, dials TLS to the target stand-in of ``bench/tunnel.py`` and joins the
two connections; curl downloads through it. The runs cycle through the variants (all alive at once), so a
neighbour's burst hits every variant alike. Variants:

- ``pipe``: :class:`halyard.tunnel.splice.Pipe`, exactly as the relay joins a user's stream to its data connection.
- ``pipe-no-yield``: the same with the per-256-KiB yield turned off (``splice.BURST`` made huge), to weigh it.
- ``buffered``: an ``asyncio.BufferedProtocol`` pair, into which uvloop's SSL decrypts directly (no per-record
  ``bytes`` and no join); a candidate, not what Halyard runs.
- ``threads``: no event loop on the data path: blocking ``ssl.SSLSocket``s both sides (OpenSSL reads and writes
  the sockets itself, no memory BIOs), one thread per direction, ``recv_into`` a 256 KiB buffer and ``sendall``
  of a view of it (OpenSSL drops the GIL in both).

    .venv/bin/python -m bench.tls_hop [--repeats 10] [--mib 1024] [--variants pipe pipe-no-yield buffered threads]
                                      [--hops 2] [--direct]

Prints per variant the median (min-max) MB/s and the hop processes' CPU s/GB (summed over the chain). ``--hops 2``
chains two hops of each variant, as the tunnel chains the relay and the agent; ``--direct`` adds curl straight to
the target, in the same rotation, to divide by.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.fleet import cpu_seconds, run
from bench.tunnel import MiB, process, wait_port
from tests.support.processes import free_port

from halyard.core.pki import ensure_server_tls
from halyard.tunnel import splice


class _Paused(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.pause_reading()  # type: ignore[attr-defined]


class _BufferedEnd(asyncio.BufferedProtocol):
    def __init__(self) -> None:
        self.view = memoryview(bytearray(256 * 1024))
        self.transport: Any = None
        self.peer: _BufferedEnd | None = None

    def get_buffer(self, sizehint: int) -> memoryview:
        return self.view

    def buffer_updated(self, nbytes: int) -> None:
        assert self.peer is not None
        self.peer.transport.write(bytes(self.view[:nbytes]))

    def pause_writing(self) -> None:
        assert self.peer is not None
        self.peer.transport.pause_reading()

    def resume_writing(self) -> None:
        assert self.peer is not None
        self.peer.transport.resume_reading()

    def eof_received(self) -> bool | None:
        assert self.peer is not None
        self.peer.transport.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is not None and not self.peer.transport.is_closing():
            self.peer.transport.close()


def _pump(source: ssl.SSLSocket, sink: ssl.SSLSocket) -> None:
    view = memoryview(bytearray(256 * 1024))
    try:
        while count := source.recv_into(view):
            sink.sendall(view[:count])
    except OSError:
        pass
    finally:
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def threads_main(args: argparse.Namespace) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(args.cert, args.key)
    client_tls = ssl.create_default_context(cafile=args.ca)
    listener = socket.create_server(("127.0.0.1", int(args.port)))

    def join(raw: socket.socket) -> None:
        try:
            user = server_tls.wrap_socket(raw, server_side=True)
        except OSError:  # the bench's port probe
            raw.close()
            return
        upstream = client_tls.wrap_socket(socket.create_connection(("127.0.0.1", int(args.target))),
                                          server_hostname="127.0.0.1")  # fmt: skip
        back = threading.Thread(target=_pump, args=(upstream, user), daemon=True)
        back.start()
        _pump(user, upstream)
        back.join()
        user.close()
        upstream.close()

    while True:
        raw, _ = listener.accept()
        threading.Thread(target=join, args=(raw,), daemon=True).start()


async def hop_main(args: argparse.Namespace) -> None:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(args.cert, args.key)
    client_tls = ssl.create_default_context(cafile=args.ca)
    loop = asyncio.get_running_loop()
    if args.variant == "pipe-no-yield":
        splice.BURST = 1 << 60

    async def join(user: Any) -> None:
        upstream, _ = await loop.create_connection(_Paused, "127.0.0.1", int(args.target), ssl=client_tls,
                                                   server_hostname="127.0.0.1")  # fmt: skip
        if args.variant.startswith("pipe"):
            splice.Pipe(user, upstream)
            return
        a, b = _BufferedEnd(), _BufferedEnd()
        a.transport, b.transport, a.peer, b.peer = user, upstream, b, a
        for end in (a, b):
            end.transport.set_write_buffer_limits(high=splice.HIGH_WATER, low=splice.LOW_WATER)
            end.transport.set_protocol(end)
            end.transport.resume_reading()

    joining: set[asyncio.Future[None]] = set()

    class Accept(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            transport.pause_reading()  # type: ignore[attr-defined]
            task = asyncio.ensure_future(join(transport))
            joining.add(task)
            task.add_done_callback(joining.discard)

    server = await loop.create_server(Accept, "127.0.0.1", int(args.port), ssl=server_tls)
    async with server:
        await server.serve_forever()


async def bench_main(args: argparse.Namespace) -> None:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="halyard-hop-") as tmp:
        tls = ensure_server_tls(Path(tmp), "halyard-bench", ["localhost"], ["127.0.0.1"])
        py = [sys.executable, "-m"]
        target_port = free_port()
        files = ["--cert", str(tls.cert), "--key", str(tls.key)]
        with process([*py, "bench.tunnel", "--role", "target", "--port", str(target_port), *files],
                     stdout=subprocess.DEVNULL):  # fmt: skip
            wait_port(target_port)
            hops: dict[str, tuple[int, list[subprocess.Popen[bytes]]]] = {}
            if args.direct:
                hops["direct"] = (target_port, [])
            try:
                for variant in args.variants:
                    upstream, chain = target_port, []
                    for _ in range(args.hops):  # a chain: the last hop started is the one curl reaches
                        port = free_port()
                        chain.append(subprocess.Popen([*py, "bench.tls_hop", "--role", "hop", "--variant", variant,
                                                       "--port", str(port), "--target", str(upstream),
                                                       "--ca", str(tls.ca_cert), *files]))  # fmt: skip
                        wait_port(port)
                        upstream = port
                    hops[variant] = (upstream, chain)
                results: dict[str, list[tuple[float, float]]] = {v: [] for v in hops}
                size = args.mib * MiB
                for _ in range(args.repeats):
                    for variant, (port, chain) in hops.items():
                        before = sum(cpu_seconds(hop.pid) for hop in chain)
                        out = subprocess.run(
                            ["curl", "-sS", "--http1.1", "-o", "/dev/null", "--cacert", str(tls.ca_cert), "-w",
                             "%{size_download} %{time_starttransfer} %{time_total}",
                             f"https://127.0.0.1:{port}/bulk?bytes={size}"],
                            capture_output=True, text=True, check=True,
                        ).stdout.split()  # fmt: skip
                        got, first, total = int(out[0]), float(out[1]), float(out[2])
                        assert got == size, (variant, got)
                        cpu = sum(cpu_seconds(hop.pid) for hop in chain) - before
                        results[variant].append((got / MiB / (total - first), cpu / (got / 1e9)))
            finally:
                for _, chain in hops.values():
                    for hop in chain:
                        hop.terminate()
                        hop.wait(10)
    summary: dict[str, Any] = {"loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                               "at": time.strftime("%H:%M UTC", time.gmtime()), "hops": args.hops}  # fmt: skip
    for variant, rows in results.items():
        rates, cpus = [r[0] for r in rows], [r[1] for r in rows]
        summary[variant] = {"mb_per_s": round(statistics.median(rates)), "range": [round(min(rates)), round(max(rates))],
                            "cpu_s_per_gb": round(statistics.median(cpus), 3),
                            "cpu_range": [round(min(cpus), 3), round(max(cpus), 3)]}  # fmt: skip
    print(json.dumps(summary, indent=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--role", choices=["bench", "hop"], default="bench")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--variants", nargs="+", default=["pipe", "pipe-no-yield", "buffered"])
    parser.add_argument("--hops", type=int, default=1, help="hops in a chain per variant (the tunnel has two)")
    parser.add_argument("--direct", action="store_true", help="also curl the target directly (a row to divide by)")
    for name in ("variant", "port", "target", "cert", "key", "ca"):
        parser.add_argument(f"--{name}")
    args = parser.parse_args()
    if args.role == "hop" and args.variant == "threads":
        threads_main(args)
        return
    entry = hop_main if args.role == "hop" else bench_main
    run(lambda: entry(args))


if __name__ == "__main__":
    main()
