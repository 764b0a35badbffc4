"""Gateway benchmark: side by side in one run, on loopback, against the real processes.

1. Throughput of HTTPS downloads (the control plane's OpenAPI document, one kept-alive connection) direct, through
   squid alone, and through the whole chain (arc-proxy → squid → gateway); the target is chain ≥ 80 % of squid.
2. Heartbeat latency (POST /dp/v1/heartbeat, p50/p99) direct and through the chain, new connection per beat and
   kept alive.
3. Gateway connections per second with audit on (tunnels opened and closed at once, several clients).
4. Audit rows per second the store sustains (SQLite, one row per transaction and batches of 100).

    .venv/bin/python -m bench.gateway [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import statistics
import tempfile
import time
from pathlib import Path

import httpx
from tests.api.agentcreds import Agent
from tests.gateway.conftest import GatewayPlane
from tests.gateway.squid import start_squid
from tests.gateway.test_chain import AgentTokens
from tests.support.processes import ServerProcess, free_port

from halyard.agent.arcproxy import ArcProxy, NetworkSettings
from halyard.controlplane.gateway.audit import AuditLog, Record
from halyard.store import Database


async def throughput(url: str, ca: str, proxy: str | None, seconds: float) -> float:
    """MB/s of repeated GETs of ``url`` over one kept-alive connection."""
    total = 0
    async with httpx.AsyncClient(proxy=proxy, verify=ca, timeout=30) as http:
        await http.get(url)
        start = time.perf_counter()
        while time.perf_counter() - start < seconds:
            total += len((await http.get(url)).content)
        elapsed = time.perf_counter() - start
    return total / elapsed / 1e6


async def beats(server: ServerProcess, agent: Agent, proxy: str | None, count: int, fresh: bool) -> list[float]:
    url = f"{server.url}/dp/v1/heartbeat"
    body = {"agentVersion": "1.0.0", "totalNodeCount": 1}
    times = []
    http = httpx.AsyncClient(proxy=proxy, verify=server.ca, timeout=30)
    try:
        for _ in range(count):
            if fresh:
                await http.aclose()
                http = httpx.AsyncClient(proxy=proxy, verify=server.ca, timeout=30)
            start = time.perf_counter()
            r = await http.post(url, json=body, headers=agent.headers)
            times.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200, r.text
    finally:
        await http.aclose()
    return times


async def gateway_connections(plane: GatewayPlane, name: str, token: str, seconds: float, clients: int) -> float:
    import ssl

    context = ssl.create_default_context(cafile=plane.server.ca)
    destination = f"127.0.0.1:{plane.server.port}"
    done = 0

    async def client() -> None:
        nonlocal done
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", plane.gateway_port, ssl=context, server_hostname=name
            )
            writer.write(f"CONNECT {destination} HTTP/1.1\r\nProxy-Authorization: Bearer {token}\r\n\r\n".encode())
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200"), head
            writer.close()
            await writer.wait_closed()
            done += 1

    start = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return done / (time.perf_counter() - start)


async def audit_rows(seconds: float) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite+aiosqlite:///{Path(tmp) / 'audit.db'}")
        await db.migrate()
        log = AuditLog(db)
        row = Record(dt.datetime.now(dt.UTC), "/subscriptions/s/resourceGroups/g/providers/Microsoft.HybridCompute/"
                     "gateways/gw", "/subscriptions/s/x", "cp:8443", 1000, 2000, 5, "allowed", "closed", "127.0.0.1")  # fmt: skip
        rates = []
        for batch in (1, 100):
            written = 0
            start = time.perf_counter()
            while time.perf_counter() - start < seconds:
                await log.write([row] * batch)
                written += batch
            rates.append(written / (time.perf_counter() - start))
        await db.close()
    return rates[0], rates[1]


async def main(seconds: float) -> None:
    gateway_port = free_port()
    data = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    server = ServerProcess(data / "data", free_port(), env={"HALYARD_GATEWAY_PORT": str(gateway_port)}).start()
    plane = GatewayPlane(server, gateway_port)
    squid = None
    try:
        group = plane.group()
        gw = plane.gateway(group, "bench")
        name = gw["properties"]["gatewayEndpoint"]
        agent = await asyncio.to_thread(plane.cluster, group, "bench")
        await asyncio.to_thread(plane.link, agent, gw["id"])
        squid = start_squid(name, gateway_port, also=("127.0.0.1", server.port))
        arc = ArcProxy(
            NetworkSettings(gateway=f"{name}:{gateway_port}", proxy=squid.url),
            AgentTokens(agent),
            Path(server.ca).read_text(),
        )
        await arc.start()
        url = f"{server.url}/openapi.json"
        size = len(httpx.get(url, verify=server.ca).content)
        print(f"throughput, GET {size / 1e3:.0f} kB over one kept-alive connection, {seconds:.0f} s each (MB/s):")
        direct = await throughput(url, server.ca, None, seconds)
        alone = await throughput(url, server.ca, squid.url, seconds)
        chain = await throughput(url, server.ca, arc.url, seconds)
        print(f"  direct {direct:8.1f}   squid alone {alone:8.1f}   chain {chain:8.1f}   "
              f"chain/squid {chain / alone:5.2f}   chain/direct {chain / direct:5.2f}")  # fmt: skip
        print("heartbeat latency, ms (p50 / p99 of 50):")
        for label, proxy in (("direct", None), ("chain", arc.url)):
            for fresh in (False, True):
                t = sorted(await beats(server, agent, proxy, 50, fresh))
                kind = "new connection" if fresh else "kept alive    "
                print(f"  {label:6} {kind} {statistics.median(t):7.1f} / {t[int(len(t) * 0.99) - 1]:7.1f}")
        await arc.close()
        rate = await gateway_connections(plane, name, agent.token, seconds, clients=8)
        print(f"gateway tunnels opened and closed per second, audit on (8 clients): {rate:7.0f}")
        one, hundred = await audit_rows(seconds)
        print(f"audit rows per second on SQLite: {one:7.0f} (one per transaction)  {hundred:9.0f} (batches of 100)")
    finally:
        if squid is not None:
            squid.stop()
        server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    asyncio.run(main(parser.parse_args().seconds))
