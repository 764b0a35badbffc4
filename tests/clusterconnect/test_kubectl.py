"""kubectl reaches a connected cluster through the agents' outbound tunnel, with the control plane deciding who may.

The kubeconfig is the one ``listClusterUserCredential`` returns; the simulator is the API server behind the cluster's
auth-proxy, which impersonates the control-plane principal, so the cluster's own RBAC decides what it may do.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.agents.conftest import Cli
from tests.clusterconnect.conftest import Connected, object_id
from tests.sim.conftest import DATA, Tool, helm_path
from tests.support.echo import echo_round_trip
from tests.support.processes import LineReader, ServerProcess

pytestmark = pytest.mark.e2e
VERSIONS = ("1.28", "1.33")


@pytest.mark.parametrize("version", VERSIONS)
def test_kubectl_gets_applies_watches_and_deletes_through_the_relay(
    connected: Connected, way_in: Path, tmp_path: Path, version: str, request: pytest.FixtureRequest
) -> None:
    kubeconfig = way_in
    nodes = connected.kubectl(kubeconfig, "get", "nodes", "-o", "name", version=version)
    assert nodes.returncode == 0, nodes.stderr
    assert len(nodes.stdout.split()) == 2

    name = f"through-{version.replace('.', '-')}-{request.node.callspec.params['way_in']}"
    manifest = tmp_path / "cm.yaml"
    manifest.write_text(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  a: '1'\n")
    applied = connected.kubectl(kubeconfig, "apply", "-f", str(manifest), version=version)
    assert applied.returncode == 0 and "created" in applied.stdout, applied.stderr
    seen = connected.admin("get", "configmap", name, "-o", "jsonpath={.data.a}")
    assert seen.stdout == "1", seen.stderr  # the cluster's owner sees what went through the tunnel

    watch = connected.kubectl_popen(kubeconfig, "get", "configmaps", "-w", "-o", "name", version=version)
    try:
        assert watch.stdout is not None
        assert watch.stdout.readline().strip()  # the list arrived: the watch is open
        later = f"{name}-later"
        assert connected.admin("create", "configmap", later).returncode == 0
        deadline = time.monotonic() + 15
        lines: list[str] = []
        while time.monotonic() < deadline:
            line = watch.stdout.readline().strip()
            lines.append(line)
            if line == f"configmap/{later}":
                break
        assert f"configmap/{later}" in lines, lines
    finally:
        watch.kill()
        watch.wait()
    deleted = connected.kubectl(kubeconfig, "delete", "configmap", name, later, version=version)
    assert deleted.returncode == 0, deleted.stderr
    assert connected.admin("get", "configmap", name).returncode != 0


def test_logs_follow_through_the_relay(connected: Connected, way_in: Path) -> None:
    kubeconfig = way_in
    connected.admin("run", "logger", "--image=busybox")  # once per session (the second run finds it there)
    ready = connected.admin("wait", "--for=condition=Ready", "pod/logger", "--timeout=30s")
    assert ready.returncode == 0, ready.stderr
    namespace, pod = "default", "logger"
    follow = connected.kubectl_popen(kubeconfig, "logs", "-f", "-n", namespace, pod)
    try:
        assert follow.stdout is not None
        assert follow.stdout.readline().strip()
        time.sleep(1)
        assert follow.poll() is None, follow.stderr.read() if follow.stderr else ""  # still following
    finally:
        follow.kill()
        follow.wait()


def principal(cli: Cli, name: str, role: str | None, scope: str) -> dict[str, Any]:
    sp: dict[str, Any] = cli.ok("ad", "sp", "create", "--display-name", f"{name}-{uuid.uuid4().hex[:6]}")
    if role is not None:
        cli.ok("role", "assignment", "create", "--assignee", sp["appId"], "--role", role, "--scope", scope)
    return sp


def token_of(server: ServerProcess, sp: dict[str, Any], audience: str | None = None) -> str:
    return server.token(sp["appId"], sp["password"], audience)


def test_aad_impersonation_leaves_the_decision_to_the_cluster_rbac(connected: Connected, tmp_path: Path) -> None:
    viewer = principal(
        connected.cli, "cc-viewer", "Azure Arc Enabled Kubernetes Cluster User Role", connected.resource_id
    )
    token = token_of(connected.server, viewer)
    bound = connected.admin(
        "create",
        "clusterrolebinding",
        f"view-{viewer['appId'][:8]}",
        "--clusterrole=view",
        f"--user={object_id(token)}",
    )
    assert bound.returncode == 0, bound.stderr
    kubeconfig = connected.kubeconfig(tmp_path / "viewer", token=token)
    assert connected.admin("create", "configmap", "for-viewers").returncode == 0
    listed = connected.kubectl(kubeconfig, "get", "configmaps", "-o", "name")
    assert listed.returncode == 0 and "configmap/for-viewers" in listed.stdout.split(), listed.stderr
    created = connected.kubectl(kubeconfig, "create", "configmap", "viewer-cannot")
    assert created.returncode == 1
    assert f'User "{object_id(token)}" cannot create resource "configmaps"' in created.stderr
    # Credentials or impersonation the client sends itself are dropped: the principal stays the principal.
    as_admin = connected.kubectl(
        kubeconfig, "create", "configmap", "viewer-as-admin", "--as", "admin", "--as-group", "system:masters"
    )
    assert as_admin.returncode == 1 and "cannot create" in as_admin.stderr, as_admin.stderr


BOX = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "box", "namespace": "default"},
    "spec": {"containers": [{"name": "main", "image": "busybox", "ports": [{"containerPort": 7000}]}]},
}


@pytest.fixture(scope="module")
def box(connected: Connected) -> str:
    applied = connected.kubectl(connected.admin_kubeconfig, "apply", "-f", "-", stdin=json.dumps(BOX))
    assert applied.returncode == 0, applied.stderr
    ready = connected.admin("wait", "--for=condition=Ready", "pod/box", "--timeout=30s")
    assert ready.returncode == 0, ready.stderr
    return "box"


@pytest.mark.parametrize("version", VERSIONS)
def test_exec_with_stdin_and_exit_codes_through_the_relay(
    connected: Connected, box: str, way_in: Path, version: str
) -> None:
    """kubectl 1.28 upgrades to SPDY/3.1, 1.33 to a websocket (v5.channel.k8s.io): bytes either way to the relay."""
    kubeconfig = way_in
    hi = connected.kubectl(kubeconfig, "exec", box, "--", "echo", "hi", version=version)
    assert (hi.returncode, hi.stdout) == (0, "hi\n"), hi.stderr
    lines = "through the tunnel\n" * 5000
    cat = connected.kubectl(kubeconfig, "exec", "-i", box, "--", "cat", version=version, stdin=lines)
    assert cat.stdout == lines, cat.stderr
    failed = connected.kubectl(kubeconfig, "exec", box, "--", "sh", "-c", "exit 3", version=version)
    assert failed.returncode == 3, failed.stderr


@pytest.mark.parametrize("version", VERSIONS)
def test_port_forward_carries_10_mb_intact_through_the_relay(
    connected: Connected, box: str, way_in: Path, version: str
) -> None:
    kubeconfig = way_in
    proc = connected.kubectl_popen(kubeconfig, "port-forward", f"pod/{box}", ":7000", version=version)
    try:
        assert proc.stdout is not None
        lines = LineReader(proc.stdout)
        port = 0
        while not port:
            line = lines.next(30, "the Forwarding from line")
            assert line, "kubectl port-forward ended early"
            if m := re.search(r"Forwarding from 127\.0\.0\.1:(\d+) -> 7000", line):
                port = int(m[1])
        received, got, sent = echo_round_trip(port)
        assert (received, got) == (10 * 1024 * 1024, sent)
    finally:
        proc.terminate()
        proc.wait(10)


def test_helm_installs_and_uninstalls_through_the_relay(connected: Connected, way_in: Path, tmp_path: Path) -> None:
    kubeconfig = way_in
    helm = Tool(helm_path(), kubeconfig, tmp_path, {"PATH": connected.kubectl_env()["PATH"], **connected.cli.env})
    helm.run("install", "demo", str(DATA / "tiny"), "-n", "hdemo", "--create-namespace", "--wait", "--timeout", "60s")
    svc = connected.admin("-n", "hdemo", "get", "svc", "demo", "-o", "jsonpath={.spec.clusterIP}")
    assert svc.returncode == 0 and svc.stdout, svc.stderr  # the cluster's owner sees the release
    listed = json.loads(helm.run("list", "-A", "-o", "json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("demo", "deployed")]
    helm.run("uninstall", "demo", "-n", "hdemo", "--wait", "--timeout", "60s")
