"""guard's decision latency: a cache miss (the control plane's access check over TLS) and a cache hit.

Starts a control plane (SQLite), connects a cluster, gives a principal "Azure Arc Kubernetes Viewer" at a namespace,
then has guard (in this process) decide ``list pods`` in that namespace, alternately with its cache emptied and
filled, and prints p50/p99 of each.

    .venv/bin/python -m bench.guard_checkaccess [--requests 300]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import httpx
from tests.api.agentcreds import connect
from tests.api.helpers import AUTHZ_API, make_group, make_principal
from tests.support.processes import ServerProcess, free_port

from halyard.agent.guard import Guard
from halyard.core.clock import SystemClock

VIEWER = "63f0a09d-1495-4db4-a681-037d84835eb4"


class StaticToken:
    def __init__(self, value: str) -> None:
        self.value = value

    async def token(self) -> str:
        return self.value

    def forget_token(self) -> None:
        pass


def _quantile(values: list[float], q: float) -> float:
    return sorted(values)[min(len(values) - 1, int(len(values) * q))]


async def _measure(server: ServerProcess, token: str, user: str, requests: int, state: Path) -> None:
    async with httpx.AsyncClient(verify=server.ca, timeout=30) as http:
        guard = Guard(http, f"{server.url}/dp", StaticToken(token), SystemClock(), state, ttl=15)
        spec = {"user": user, "resourceAttributes": {"namespace": "a", "verb": "list", "resource": "pods"}}
        miss, hit = [], []
        for i in range(requests + 20):
            guard.cache = type(guard.cache)(SystemClock(), ttl=15)  # empty: the next review asks the control plane
            began = time.perf_counter()
            assert (await guard.review(spec)).allowed
            middle = time.perf_counter()
            assert (await guard.review(spec)).allowed
            if i >= 20:  # the first requests warm connections and caches
                miss.append(middle - began)
                hit.append(time.perf_counter() - middle)
    print(f"miss (access check): p50 {_quantile(miss, 0.5) * 1e3:.2f} ms  p99 {_quantile(miss, 0.99) * 1e3:.2f} ms")
    print(f"hit (guard's cache): p50 {_quantile(hit, 0.5) * 1e6:.0f} us  p99 {_quantile(hit, 0.99) * 1e6:.0f} us")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=300)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="guard-bench-"))
    server = ServerProcess(tmp / "data", free_port()).start()
    try:
        agent = connect(server, make_group(server), "bench")
        principal = make_principal(server)
        with server.client() as c:
            c.put(
                f"{agent.path}/namespaces/a/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                params=AUTHZ_API,
                json={"properties": {"roleDefinitionId": VIEWER, "principalId": principal.object_id}},
            ).raise_for_status()
        asyncio.run(_measure(server, agent.token, principal.object_id, args.requests, tmp / "guard"))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
