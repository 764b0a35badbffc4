"""The real helm 3 installs, upgrades, lists and uninstalls a small chart on a simulated cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.sim.conftest import DATA, KUBECTL_VERSIONS, Sim, Tool, helm_path, kubectl_path

pytestmark = pytest.mark.e2e


def test_helm_lifecycle(sim: Sim, tmp_path: Path) -> None:
    cluster = sim.clusters[-1]
    helm = Tool(helm_path(), cluster.kubeconfig, tmp_path)
    kubectl = Tool(kubectl_path(KUBECTL_VERSIONS[-1]), cluster.kubeconfig, tmp_path)
    chart = str(DATA / "tiny")

    helm.run("install", "demo", chart, "-n", "hdemo", "--create-namespace", "--wait", "--timeout", "60s")
    svc = json.loads(kubectl.run("-n", "hdemo", "get", "svc", "demo", "-o", "json").stdout)
    assert svc["spec"]["clusterIP"] and svc["spec"]["ports"][0]["port"] == 80
    release = json.loads(kubectl.run("-n", "hdemo", "get", "secret", "sh.helm.release.v1.demo.v1", "-o", "json").stdout)
    assert release["type"] == "helm.sh/release.v1" and release["metadata"]["labels"]["status"] == "deployed"

    helm.run("upgrade", "demo", chart, "-n", "hdemo", "--set", "port=81", "--set", "replicas=2", "--wait",
             "--timeout", "60s")  # fmt: skip
    svc = json.loads(kubectl.run("-n", "hdemo", "get", "svc", "demo", "-o", "json").stdout)
    assert [p["port"] for p in svc["spec"]["ports"]] == [81]
    deploy = json.loads(kubectl.run("-n", "hdemo", "get", "deploy", "demo", "-o", "json").stdout)
    assert deploy["status"]["readyReplicas"] == 2

    listed = json.loads(helm.run("list", "-A", "-o", "json").stdout)
    assert [(r["name"], r["namespace"], r["revision"], r["status"]) for r in listed] == [
        ("demo", "hdemo", "2", "deployed")
    ]

    helm.run("uninstall", "demo", "-n", "hdemo", "--wait", "--timeout", "60s")
    assert json.loads(helm.run("list", "-A", "-o", "json").stdout) == []
    left = kubectl.run("-n", "hdemo", "get", "deploy,svc,cm,secrets", "-o", "name").stdout.split()
    assert left == [], left
