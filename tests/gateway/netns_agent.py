"""Run inside the cluster's network namespace (``ip netns exec``): what the agents do, through arc-proxy only.
Prints one JSON line: whether the direct path is blocked, and what each call through the chain answered."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import ssl

import httpx

from halyard.agent.arcproxy import ArcProxy, NetworkSettings
from halyard.tunnel.dial import dial
from halyard.tunnel.protocol import TUNNEL_UPGRADE


class Tokens:
    async def token(self) -> str:
        return os.environ["AGENT_TOKEN"]

    def forget_token(self) -> None:
        pass

    async def wait_ready(self, timeout: float) -> None:
        return None


async def main() -> dict[str, object]:
    server, ca = os.environ["CP_URL"], os.environ["CP_CA"]
    host, port = server.removeprefix("https://").rsplit(":", 1)
    result: dict[str, object] = {}
    for address in (host, os.environ["HOST_SIDE"]):
        try:
            socket.create_connection((address, int(port)), timeout=2).close()
            result[f"direct {address}"] = "reachable"
        except OSError as exc:
            result[f"direct {address}"] = f"blocked ({type(exc).__name__})"
    settings = NetworkSettings(
        gateway=os.environ["GATEWAY"], proxy=os.environ["SQUID"], skip_range=os.environ["HOST_SIDE"]
    )
    proxy = ArcProxy(settings, Tokens(), open(ca).read())
    await proxy.start()
    headers = {"Authorization": f"Bearer {os.environ['AGENT_TOKEN']}"}
    async with httpx.AsyncClient(proxy=proxy.url, verify=ca, timeout=20) as http:
        result["his endpoints"] = (await http.get(f"{server}/his/v1/endpoints")).status_code
        beat = {"agentVersion": "1.0.0", "totalNodeCount": 1}
        result["heartbeat"] = (await http.post(f"{server}/dp/v1/heartbeat", json=beat, headers=headers)).status_code
        try:
            await http.get("https://registry.example.com/v2/")
        except httpx.ProxyError as exc:
            result["registry"] = str(exc)
    upgraded = await dial(
        f"{server}/relay/v1/tunnel", upgrade=TUNNEL_UPGRADE, fields=list(headers.items()),
        ssl_context=ssl.create_default_context(cafile=ca), proxy=proxy.url,
    )  # fmt: skip
    result["tunnel"] = "upgraded"
    upgraded.transport.close()
    await asyncio.sleep(0.2)
    await proxy.close()
    return result


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main())))
