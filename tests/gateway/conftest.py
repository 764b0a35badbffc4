"""A control plane serving the gateway (its own TLS listener), shared by the gateway tests of one module."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.api.agentcreds import Agent, connect
from tests.support.processes import ServerProcess, free_port

GW_API = {"api-version": "2024-07-31-preview"}
RG_API = {"api-version": "2024-11-01"}


@dataclass
class GatewayPlane:
    server: ServerProcess
    gateway_port: int

    @property
    def sub(self) -> str:
        return str(self.server.admin["subscription"])

    def group(self) -> str:
        name = f"gw-{uuid.uuid4().hex[:6]}"
        with self.server.client() as c:
            r = c.put(f"/subscriptions/{self.sub}/resourceGroups/{name}", params=RG_API, json={"location": "eastus"})
            assert r.status_code == 201, r.text
        return name

    def put(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        with self.server.client() as c:
            r = c.put(path, params=GW_API, json=body)
            assert r.status_code in (200, 201), r.text
            deadline = time.monotonic() + 20
            while c.get(r.headers["Azure-AsyncOperation"]).json()["status"] == "InProgress":
                assert time.monotonic() < deadline
                time.sleep(0.05)
            got = c.get(path, params=GW_API)
            assert got.status_code == 200, got.text
            body_out: dict[str, Any] = got.json()
            return body_out

    def delete(self, path: str) -> None:
        """Delete a resource and wait for it to be gone (a module's server holds at most 5 gateways)."""
        with self.server.client() as c:
            r = c.delete(path, params=GW_API)
            assert r.status_code in (200, 202, 204), r.text
            deadline = time.monotonic() + 20
            while c.get(path, params=GW_API).status_code != 404:
                assert time.monotonic() < deadline
                time.sleep(0.05)

    def gateway(self, group: str, name: str, features: list[str] | None = None) -> dict[str, Any]:
        path = f"/subscriptions/{self.sub}/resourceGroups/{group}/providers/Microsoft.HybridCompute/gateways/{name}"
        return self.put(path, {"location": "eastus", "properties": {"allowedFeatures": features or ["*"]}})

    def cluster(self, group: str, name: str) -> Agent:
        return connect(self.server, group, name)

    def link(self, agent: Agent, gateway_id: str | None) -> None:
        settings = f"{agent.path}/providers/Microsoft.HybridCompute/settings/default"
        self.put(settings, {"properties": {"gatewayProperties": {"gatewayResourceId": gateway_id}}})

    def audit(self, gateway_id: str, **query: str) -> list[dict[str, Any]]:
        with self.server.client() as c:
            r = c.get(f"{gateway_id}/auditRecords", params={**GW_API, **query})
            assert r.status_code == 200, r.text
            rows: list[dict[str, Any]] = r.json()["value"]
            return rows

    def outer_tls(self) -> ssl.SSLContext:
        """What arc-proxy trusts for the gateway hop: the control plane's CA (the gateway's cert is issued by it)."""
        return ssl.create_default_context(cafile=self.server.ca)


@pytest.fixture(scope="module")
def gateway_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayPlane]:
    port = free_port()
    server = ServerProcess(
        tmp_path_factory.mktemp("gateway") / "data", free_port(), env={"HALYARD_GATEWAY_PORT": str(port)}
    ).start()
    try:
        yield GatewayPlane(server, port)
    finally:
        server.stop()


async def wait_for(predicate: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.1)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


@pytest.fixture
def namespace() -> Iterator[tuple[str, str, str]]:
    """(namespace, host-side address, namespace-side address): a /30 on a veth pair, private to this machine; the
    namespace reaches this host's host-side address and nothing else (the host's loopback is out of its reach)."""
    tag = uuid.uuid4().hex[:6]
    name, host_if, ns_if = f"hgw-{tag}", f"hgw{tag}h", f"hgw{tag}n"
    octet = int(tag[:2], 16)
    host_side, ns_side = f"10.254.{octet}.1", f"10.254.{octet}.2"
    _ip("netns", "add", name)
    try:
        _ip("link", "add", host_if, "type", "veth", "peer", "name", ns_if)
        _ip("link", "set", ns_if, "netns", name)
        _ip("addr", "add", f"{host_side}/30", "dev", host_if)
        _ip("link", "set", host_if, "up")
        _ip("-n", name, "addr", "add", f"{ns_side}/30", "dev", ns_if)
        _ip("-n", name, "link", "set", ns_if, "up")
        _ip("-n", name, "link", "set", "lo", "up")
        yield name, host_side, ns_side
    finally:
        subprocess.run(["ip", "link", "del", host_if], capture_output=True)
        subprocess.run(["ip", "netns", "del", name], capture_output=True)


# The agents' simulator and its fresh clusters (session-wide), for onboarding through a gateway.
from tests.agents.conftest import agent_sim, fresh_cluster  # noqa: E402, F401
