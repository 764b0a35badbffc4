"""``halyard arcgateway`` and the gateway/proxy flags of ``connectedk8s connect/update``, as a user runs them:
the CLI as a process against a real server and a simulated cluster with local agents. Bad input is one error line
and leaves nothing behind."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from tests.agents.conftest import Cli
from tests.agents.test_onboarding import connect, resource_id

pytestmark = pytest.mark.e2e


def _error(proc: object) -> str:
    stderr = getattr(proc, "stderr", "")
    assert getattr(proc, "returncode", 0) != 0, getattr(proc, "stdout", "")
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ERROR: ") and "Traceback" not in stderr, stderr
    return lines[0]


def test_arcgateway_commands_and_cluster_links(
    agents_cli: Cli, fresh_cluster: Callable[[], Path], tmp_path: Path
) -> None:
    cli = agents_cli
    group = cli.group("arcgw")
    gw = cli.ok("arcgateway", "create", "-g", group, "-n", "gw-cli", "-l", "eastus", "--allowed-features", "*")
    try:
        assert gw["provisioningState"] == "Succeeded" and ".gw." in gw["gatewayEndpoint"]
        assert [g["name"] for g in cli.ok("arcgateway", "list", "-g", group)] == ["gw-cli"]
        shown = cli.ok("arcgateway", "update", "-g", group, "-n", "gw-cli", "--allowed-features", "cluster-connect")
        assert shown["allowedFeatures"] == ["cluster-connect"] and shown["gatewayId"] == gw["gatewayId"]

        # Bad input: one line each, before anything is written.
        kubeconfig = fresh_cluster()
        bad_cert = tmp_path / "missing.pem"
        for extra, words in (
            (("--gateway-resource-id", "/subscriptions/x/gateways/y"), "--gateway-resource-id"),
            (("--proxy-https", "proxy.example:3128"), "--proxy-https"),
            (("--proxy-cert", str(bad_cert)), "--proxy-cert"),
        ):
            assert words in _error(connect(cli, group, "gwc-bad", kubeconfig, *extra))
        assert cli.run("connectedk8s", "show", "-g", group, "-n", "gwc-bad").returncode != 0  # nothing created

        proc = connect(
            cli, group, "gwc", kubeconfig, "--gateway-resource-id", gw["id"],
            "--proxy-https", "http://user:secret@proxy.example:3128", "--proxy-skip-range", "10.0.0.0/16,.svc",
            "--no-wait",  # the agents go through that proxy, which does not exist: they cannot connect
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        cluster = cli.show(group, "gwc")
        assert cluster["gateway"] == {"enabled": True, "resourceId": gw["id"]}
        proxy = next(c for c in cluster["arcAgentryConfigurations"] if c["feature"] == "proxy")
        assert proxy["settings"] == {"noProxy": "10.0.0.0/16,.svc"}
        assert proxy["protectedSettings"] == {"httpsProxy": ""}  # the credentials are never shown

        target = ("-g", group, "-n", "gwc")
        both = cli.run("connectedk8s", "update", *target, "--gateway-resource-id", gw["id"], "--disable-gateway")
        assert "cannot be used together" in _error(both)
        both = cli.run("connectedk8s", "update", *target, "--disable-proxy", "--proxy-http", "http://p:1")
        assert "--disable-proxy" in _error(both)
        assert cli.ok("connectedk8s", "update", *target, "--disable-gateway")["gateway"] == {"enabled": False}
        assert cli.ok("connectedk8s", "show", *target, "--query", "gateway.enabled") is False
        cli.ok("arcgateway", "settings", "update", "-g", group, "--base-provider", "Microsoft.Kubernetes",
               "--base-resource-type", "connectedClusters", "--base-resource-name", "gwc",
               "--gateway-resource-id", gw["id"])  # fmt: skip
        assert cli.ok("connectedk8s", "show", *target, "--query", "gateway.enabled") is True
        off = cli.ok("connectedk8s", "update", *target, "--disable-proxy")
        assert not [c for c in off.get("arcAgentryConfigurations") or [] if c["feature"] == "proxy"]
        assert cluster["id"] == resource_id(cli, group, "gwc")
    finally:
        cli.run("connectedk8s", "delete", "-g", group, "-n", "gwc", "--yes")
        cli.ok("arcgateway", "delete", "-g", group, "-n", "gw-cli", "--yes")
    assert cli.ok("arcgateway", "list", "-g", group) == []
