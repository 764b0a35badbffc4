"""Cluster connect when things break: the agent killed mid-stream, the control plane restarted, a reader that stops
reading, a thousand streams come and gone, the feature turned off. Each on its own cluster ("faulty")."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from halyard.api import cluster as names
from tests.agents.conftest import Cli
from tests.clusterconnect.conftest import Connected, connect, object_id, relay_metrics, wait_for_tunnel
from tests.sim.conftest import Sim

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def faulty(cc_cli: Cli, cc_sim: Sim, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Connected]:
    cluster = connect(cc_cli, cc_sim, 1, "cc-faults", "faulty", tmp_path_factory.mktemp("cc-faults"))
    oid = object_id(cluster.server.token())
    assert cluster.admin("create", "clusterrolebinding", "cc-admin", "--clusterrole=cluster-admin",
                         f"--user={oid}").returncode == 0  # fmt: skip
    yield cluster


def state_dir(cluster: Connected) -> Path:
    (found,) = [d for d in cluster.cli.state_dirs() if d.name.startswith(cluster.name + "-")]
    return found


def kill_agents(cluster: Connected) -> None:
    pid = int((state_dir(cluster) / "agent.pid").read_text())
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError("the agents did not die")


def start_agents(cluster: Connected) -> None:
    started = cluster.cli.run("agent", "start", "--state-dir", str(state_dir(cluster)),
                              "--kubeconfig", str(cluster.admin_kubeconfig))  # fmt: skip
    assert started.returncode == 0, started.stderr


def relay(cluster: Connected, path: str, token: str, *, close: bool = False) -> httpx.Response:
    """One request through the relay (``close``: on a connection of its own, so one stream each)."""
    headers = {"Authorization": f"Bearer {token}", **({"Connection": "close"} if close else {})}
    return httpx.get(
        f"{cluster.server.url}/relay/v1{cluster.resource_id}{path}", headers=headers, verify=cluster.server.ca,
        timeout=30,
    )  # fmt: skip


def test_agent_killed_mid_stream_ends_the_stream_and_the_tunnel_comes_back(faulty: Connected, tmp_path: Path) -> None:
    """The stream ends with an error at once (kubectl's own client then retries the relay's 503 and its
    Retry-After until the tunnel is back); the relay says there is no tunnel; restarted agents dial it again."""
    token = faulty.server.token()
    url = f"{faulty.server.url}/relay/v1{faulty.resource_id}/api/v1/namespaces/default/configmaps?watch=true"
    ended: list[BaseException] = []

    def watch() -> None:
        try:
            with httpx.stream("GET", url, headers={"Authorization": f"Bearer {token}"}, verify=faulty.server.ca,
                              timeout=60) as response:  # fmt: skip
                assert response.status_code == 200
                opened.set()
                for _ in response.iter_bytes():
                    pass
        except BaseException as exc:
            ended.append(exc)

    opened = threading.Event()
    watcher = threading.Thread(target=watch)
    watcher.start()
    assert opened.wait(15)
    kill_agents(faulty)
    watcher.join(10)
    assert not watcher.is_alive() and isinstance(ended[0], httpx.RemoteProtocolError), ended
    kubeconfig = faulty.kubeconfig(tmp_path / "kubeconfig", token=token)
    started = time.monotonic()
    r = relay(faulty, "/version", faulty.server.token())
    assert r.status_code == 503 and r.json()["error"]["code"] == "TunnelNotConnected", r.text
    assert time.monotonic() - started < 5
    start_agents(faulty)
    wait_for_tunnel(faulty)
    nodes = faulty.kubectl(kubeconfig, "get", "nodes", "-o", "name")
    assert nodes.returncode == 0 and nodes.stdout.strip(), nodes.stderr


def test_a_reader_that_stops_reading_stalls_nobody_else(faulty: Connected, tmp_path: Path) -> None:
    """One stream's 8 MB answer left unread (flow control holds it back at each hop) while other streams work."""
    blob = tmp_path / "blob"
    blob.write_text("x" * 1_000_000)
    for i in range(8):
        created = faulty.admin("create", "configmap", f"big-{i}", "-n", "default", f"--from-file=blob={blob}")
        assert created.returncode == 0, created.stderr
    token = faulty.server.token()
    with httpx.Client(verify=faulty.server.ca, timeout=60) as slow:
        url = f"{faulty.server.url}/relay/v1{faulty.resource_id}/api/v1/namespaces/default/configmaps"
        with slow.stream("GET", url, headers={"Authorization": f"Bearer {token}"}) as response:
            assert response.status_code == 200
            kubeconfig = faulty.kubeconfig(tmp_path / "kubeconfig", token=token)
            started = time.monotonic()
            for _ in range(5):
                quick = faulty.kubectl(kubeconfig, "get", "nodes", "-o", "name")
                assert quick.returncode == 0, quick.stderr
            print(f"5 kubectl runs beside a stalled stream: {time.monotonic() - started:.2f} s")
            body = b"".join(response.iter_bytes())  # and the stalled stream is still whole afterwards
    assert body.count(b'"blob":"') == 8 and len(body) > 8_000_000
    for i in range(8):
        faulty.admin("delete", "configmap", f"big-{i}")


def test_a_thousand_streams_leave_nothing_behind(faulty: Connected) -> None:
    server = faulty.server
    assert server.proc is not None
    token = server.token()
    carried = faulty.agent_metric("halyard_agent_streams_carried_total")
    fds_before = len(os.listdir(f"/proc/{server.proc.pid}/fd"))

    def one(_: int) -> int:
        return relay(faulty, "/version", token, close=True).status_code

    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(one, range(1000)))
    print(f"1000 streams in {time.monotonic() - started:.1f} s")
    assert statuses.count(200) == 1000, {s: statuses.count(s) for s in set(statuses)}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        state = relay_metrics(server)
        if state["halyard_relay_streams_open"] == 0 and faulty.agent_metric("halyard_agent_streams_open") == 0:
            break
        time.sleep(0.2)
    assert state == {**state, "halyard_relay_streams_open": 0, "halyard_relay_streams_pending": 0}
    assert faulty.agent_metric("halyard_agent_streams_open") == 0
    assert faulty.agent_metric("halyard_agent_streams_carried_total") - carried >= 1000
    fds_after = len(os.listdir(f"/proc/{server.proc.pid}/fd"))
    assert fds_after - fds_before < 20, (fds_before, fds_after)


def test_with_cluster_connect_turned_off_users_are_told_the_command_that_turns_it_on(faulty: Connected) -> None:
    patched = faulty.admin("-n", names.NAMESPACE, "patch", "configmap", names.CLUSTER_CONFIGMAP, "--type=merge",
                           "-p", f'{{"data":{{"{names.KEY_FEATURES}":""}}}}')  # fmt: skip
    assert patched.returncode == 0, patched.stderr
    try:
        faulty.cli.run("agent", "stop", "--state-dir", str(state_dir(faulty)))
        start_agents(faulty)
        token = faulty.server.token()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            r = relay(faulty, "/version", token)
            if r.status_code == 409:
                break
            time.sleep(0.3)
        assert r.json()["error"]["code"] == "ClusterConnectDisabled", r.text
        command = "halyard connectedk8s enable-features -g cc-faults -n faulty --features cluster-connect"
        assert command in r.json()["error"]["message"]
        listed = faulty.credential()
        assert listed.status_code == 400 and command in listed.json()["error"]["message"]
    finally:
        faulty.admin("-n", names.NAMESPACE, "patch", "configmap", names.CLUSTER_CONFIGMAP, "--type=json",
                     "-p", f'[{{"op":"remove","path":"/data/{names.KEY_FEATURES}"}}]')  # fmt: skip
        faulty.cli.run("agent", "stop", "--state-dir", str(state_dir(faulty)))
        start_agents(faulty)
    wait_for_tunnel(faulty)


def test_the_tunnel_comes_back_after_the_control_plane_restarts(faulty: Connected) -> None:
    server = faulty.server
    server.stop()
    server.start()
    started = time.monotonic()
    wait_for_tunnel(faulty, timeout=45)
    print(f"tunnel back {time.monotonic() - started:.1f} s after the control plane was ready")
