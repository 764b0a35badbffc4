"""/healthz while a flood of wrong client secrets is checked: what keeping scrypt off the event loop buys.

Starts the real server (SQLite, TLS), then per round sends ``--flood`` logins with wrong secrets at once (each a
~50 ms scrypt, at most two at a time in worker threads) while one client asks /healthz again and again, and reports
the /healthz latencies (median, p99, max) beside those of an idle round. The failed-login throttle is turned off so
that every login reaches its scrypt. Run from the repository root:

    .venv/bin/python -m bench.login_flood [--flood 10] [--rounds 5]

The tests prove the behaviour (tests/unit/test_login_throttle.py: a secret check held open while the loop goes on);
this is where its speed is looked at.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from tests.support.processes import ServerProcess, free_port


async def _healthz_until(client: httpx.AsyncClient, done: asyncio.Future[Any] | None, count: int) -> list[float]:
    latencies: list[float] = []
    while (done is not None and not done.done()) or (done is None and len(latencies) < count):
        started = time.perf_counter()
        response = await client.get("/healthz")
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
        await asyncio.sleep(0.01)
    return latencies


def _summary(latencies: list[float]) -> dict[str, Any]:
    ordered = sorted(latencies)
    return {
        "samples": len(ordered),
        "p50_ms": round(statistics.median(ordered) * 1000, 2),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 2),
        "max_ms": round(ordered[-1] * 1000, 2),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flood", type=int, default=10, help="wrong-secret logins sent at once per round")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="halyard-login-flood-") as tmp:
        server = ServerProcess(Path(tmp) / "data", free_port(), env={"HALYARD_LOGIN_FAILURE_BURST": "0"}).start()
        try:
            admin = server.admin
            url = f"{server.url}/{admin['tenant']}/oauth2/v2.0/token"
            form = {"grant_type": "client_credentials", "client_id": admin["clientId"],
                    "scope": admin["audience"] + ".default"}  # fmt: skip
            async with (
                httpx.AsyncClient(verify=server.ca, timeout=60) as logins,
                httpx.AsyncClient(base_url=server.url, verify=server.ca, timeout=60) as probe,
            ):
                await probe.get("/healthz")
                idle = await _healthz_until(probe, None, 50 * args.rounds)
                flooded: list[float] = []
                started = time.perf_counter()
                for _ in range(args.rounds):
                    flood = asyncio.gather(
                        *(logins.post(url, data={**form, "client_secret": f"wrong{i}"}) for i in range(args.flood))
                    )
                    flooded += await _healthz_until(probe, flood, 0)
                    assert {r.status_code for r in await flood} == {401}
                seconds = time.perf_counter() - started
        finally:
            server.stop()
    print(json.dumps({"flood": args.flood, "rounds": args.rounds, "flood_seconds": round(seconds, 2),
                      "idle": _summary(idle), "during_flood": _summary(flooded)}))  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
