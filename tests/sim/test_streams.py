"""kubectl exec, attach, port-forward and logs -f against the simulator, with the real kubectl 1.28 (SPDY/3.1) and
1.33 (WebSocket by default: v5.channel.k8s.io for exec/attach, SPDY tunnelled in a WebSocket for port-forward; and
SPDY again with the KUBECTL_*_WEBSOCKETS switches off)."""

from __future__ import annotations

import json
import re
import socket
from pathlib import Path

import pytest

from tests.sim.conftest import KUBECTL_VERSIONS, Sim, Tool, kubectl_path
from tests.support.echo import echo_round_trip
from tests.support.processes import LineReader

pytestmark = pytest.mark.e2e

NS = "streams"
SPDY_ONLY = {"KUBECTL_REMOTE_COMMAND_WEBSOCKETS": "false", "KUBECTL_PORT_FORWARD_WEBSOCKETS": "false"}
# variant -> (kubectl version, environment, what exec negotiates)
VARIANTS = {
    "1.28": ("1.28", {}, "spdy"),
    "1.33": ("1.33", {}, "v5.channel.k8s.io"),
    "1.33-spdy": ("1.33", SPDY_ONLY, "spdy"),
}
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "box", "namespace": NS},
    "spec": {"containers": [{"name": "main", "image": "busybox", "env": [{"name": "GREETING", "value": "hi"}],
                             "ports": [{"containerPort": 7000}, {"containerPort": 80}]}]},
}  # fmt: skip
_ready: set[str] = set()


@pytest.fixture(params=list(VARIANTS))
def kubectl(request: pytest.FixtureRequest, sim: Sim, tmp_path: Path) -> Tool:
    version, env, _ = VARIANTS[request.param]
    cluster = sim.clusters[KUBECTL_VERSIONS.index(version)]  # each version's own cluster, as in test_kubectl
    tool = Tool(kubectl_path(version), cluster.kubeconfig, tmp_path, env)
    if cluster.name not in _ready:
        tool.run("create", "namespace", NS)
        tool.run("apply", "-f", "-", input=json.dumps(POD))
        tool.run("-n", NS, "wait", "--for=condition=Ready", "pod/box", "--timeout=30s")
        _ready.add(cluster.name)
    return tool


def _negotiated(request: pytest.FixtureRequest) -> str:
    return VARIANTS[request.node.callspec.params["kubectl"]][2]


def test_exec(kubectl: Tool, request: pytest.FixtureRequest) -> None:
    hi = kubectl.run("-n", NS, "exec", "box", "-v=4", "--", "echo", "hi")
    assert hi.stdout == "hi\n"
    websocket = "The subprotocol is v5.channel.k8s.io" in hi.stderr
    assert websocket == (_negotiated(request) != "spdy"), hi.stderr  # the path this variant is meant to take
    lines = "line one\nline two\n" * 1000
    assert kubectl.run("-n", NS, "exec", "-i", "box", "--", "cat", input=lines).stdout == lines
    failed = kubectl.run("-n", NS, "exec", "box", "--", "sh", "-c", "echo out; echo err >&2; exit 3", check=False)
    assert (failed.returncode, failed.stdout) == (3, "out\n")
    assert "err\n" in failed.stderr and "command terminated with exit code 3" in failed.stderr
    unknown = kubectl.run("-n", NS, "exec", "box", "--", "nosuch", check=False)
    assert unknown.returncode == 127 and '"nosuch": executable file not found in $PATH' in unknown.stderr
    env = kubectl.run("-n", NS, "exec", "box", "--", "sh", "-c", "env | cat && hostname").stdout
    assert "GREETING=hi\n" in env and env.endswith("box\n")
    missing = kubectl.run("-n", NS, "exec", "nopod", "--", "true", check=False)
    assert missing.returncode == 1 and 'pods "nopod" not found' in missing.stderr


def test_attach(kubectl: Tool) -> None:
    # The main process echoes its stdin (and writes a heartbeat line a second); it ends when stdin closes.
    attached = kubectl.run("-n", NS, "attach", "-i", "box", input="hello\n")
    assert "hello\n" in attached.stdout


def test_port_forward_echo_and_http(kubectl: Tool, request: pytest.FixtureRequest) -> None:
    proc = kubectl.popen("-n", NS, "port-forward", "pod/box", ":7000", ":80", "-v=4")
    try:
        assert proc.stdout is not None
        lines = LineReader(proc.stdout)
        local: dict[int, int] = {}
        tunnelled = False
        while len(local) < 2:
            line = lines.next(30, "the Forwarding from lines")
            assert line, "kubectl port-forward ended early"
            tunnelled = tunnelled or "Before WebSocket Upgrade Connection" in line
            if m := re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> (\d+)", line):
                local[int(m[2])] = int(m[1])
        assert tunnelled == (_negotiated(request) != "spdy")  # 1.33: SPDY inside a WebSocket by default
        received, got, sent = echo_round_trip(local[7000])
        assert (received, got) == (10 * 1024 * 1024, sent)
        with socket.create_connection(("127.0.0.1", local[80]), timeout=30) as s:
            s.sendall(b"GET / HTTP/1.1\r\nHost: box\r\nConnection: close\r\n\r\n")
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.startswith(b"HTTP/1.1 200 OK\r\n") and reply.endswith(b"Hello from box, port 80 (a halyard sim "
                                                                            b"container)\n")  # fmt: skip
    finally:
        proc.terminate()
        proc.wait(10)


def test_logs_follow_receives_new_lines(kubectl: Tool) -> None:
    proc = kubectl.popen("-n", NS, "logs", "-f", "box", "--tail=1")
    try:
        assert proc.stdout is not None
        lines = LineReader(proc.stdout)
        assert lines.next(30, "the last line so far") == "[main] log line 9\n"
        # The simulated container writes a line a second while the pod exists: -f must receive it as it comes.
        assert re.fullmatch(r"\[main\] heartbeat \d+\n", lines.next(10, "a line written after logs -f started"))
    finally:
        proc.terminate()
        proc.wait(10)


def test_exec_and_port_forward_are_authorized_as_create(kubectl: Tool, request: pytest.FixtureRequest) -> None:
    variant = request.node.callspec.params["kubectl"].replace(".", "-")
    who = f"system:serviceaccount:{NS}:robot-{variant}"
    denied = kubectl.run("-n", NS, "exec", f"--as={who}", "box", "--", "true", check=False)
    assert denied.returncode == 1
    assert 'cannot get resource "pods"' in denied.stderr  # kubectl reads the pod first
    kubectl.run("-n", NS, "create", "role", f"reader-{variant}", "--verb=get", "--resource=pods")
    kubectl.run("-n", NS, "create", "rolebinding", f"reader-{variant}", f"--role=reader-{variant}",
                f"--serviceaccount={NS}:robot-{variant}")  # fmt: skip
    denied = kubectl.run("-n", NS, "exec", f"--as={who}", "box", "--", "true", check=False)
    assert denied.returncode == 1
    assert (f'pods "box" is forbidden: User "{who}" cannot create resource "pods/exec" in API group "" in the '
            f'namespace "{NS}"') in denied.stderr  # fmt: skip
    kubectl.run("-n", NS, "create", "role", f"exec-{variant}", "--verb=create", "--resource=pods/exec")
    kubectl.run("-n", NS, "create", "rolebinding", f"exec-{variant}", f"--role=exec-{variant}",
                f"--serviceaccount={NS}:robot-{variant}")  # fmt: skip
    assert kubectl.run("-n", NS, "exec", f"--as={who}", "box", "--", "whoami").stdout == "root\n"
    refused = kubectl.run("-n", NS, "port-forward", f"--as={who}", "pod/box", ":7000", check=False, timeout=30)
    assert refused.returncode == 1 and 'cannot create resource "pods/portforward"' in refused.stderr
