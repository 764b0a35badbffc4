"""``halyard gateway run``: the gateway alone in its own process (an edge host), sharing the control plane's store
and data directory; a linked cluster reaches the control plane through it and the audit lands in the store."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.gateway.conftest import GatewayPlane, wait_for
from tests.gateway.test_gateway_service import _inner_https_get, _tunnel
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayPlane]:
    server = ServerProcess(tmp_path_factory.mktemp("edge") / "data", free_port()).start()
    port = free_port()
    log = open(server.data_dir.parent / "gateway.log", "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "halyard", "gateway", "run", "--data-dir", str(server.data_dir),
         "--upstream", server.url, "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert proc.poll() is None and time.monotonic() < deadline, (
                    server.data_dir.parent / "gateway.log"
                ).read_text()
                time.sleep(0.1)
        yield GatewayPlane(server, port)
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        log.close()
        server.stop()


async def test_the_gateway_alone_serves_a_linked_cluster(edge: GatewayPlane) -> None:
    group = edge.group()
    gw = edge.gateway(group, "edge")
    agent = await asyncio.to_thread(edge.cluster, group, "far")
    edge.link(agent, gw["id"])
    destination = f"127.0.0.1:{edge.server.port}"
    reader, writer, status, _ = await _tunnel(edge, gw["properties"]["gatewayEndpoint"], destination, agent.token)
    assert status == 200
    answer, up, down = await _inner_https_get(reader, writer, edge.server.ca, "/his/v1/endpoints")
    assert answer.startswith(b"HTTP/1.1 200")
    rows = await wait_for(lambda: edge.audit(gw["id"], verdict="allowed"))
    assert (rows[0]["bytesUp"], rows[0]["bytesDown"]) == (up, down)
