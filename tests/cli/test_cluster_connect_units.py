"""The pure parts of cluster connect's CLI: kubeconfig merging, the ExecCredential and its cache margin, listClusterUserCredential's answer, the feature plan and its arguments."""

from __future__ import annotations

import base64
import json
import os
import stat
from pathlib import Path

import pytest
import yaml

from halyard.api import cluster as names
from halyard.cli import kubeconfigs
from halyard.cli.agentplacement import chart_values_for
from halyard.cli.clustercredentials import auth_method, parse_credentials
from halyard.cli.clusterfeatures import parse_requested, plan
from halyard.cli.errors import CliError, UsageError
from halyard.cli.execcredential import exec_credential, fast, fresh_enough
from halyard.cli.localproxy import refresh_delay
from halyard.cli.profile import CachedToken

pytestmark = pytest.mark.unit

EXISTING = """\
apiVersion: v1
kind: Config
clusters:
- {name: kind-dev, cluster: {server: 'https://10.0.0.1:6443'}}
- {name: arc1, cluster: {server: 'https://old:1'}}
users:
- {name: dev-admin, user: {token: dev}}
contexts:
- {name: kind-dev, context: {cluster: kind-dev, user: dev-admin}}
- {name: arc1, context: {cluster: arc1, user: old-user}}
current-context: kind-dev
"""


def _arc1(port: int = 47011) -> dict:
    return kubeconfigs.single(
        context="arc1", cluster="arc1", server=f"https://127.0.0.1:{port}", ca_pem=b"PEM",
        user="clusterUser_rg_arc1", credentials={},
    )  # fmt: skip


def test_merge_keeps_other_entries_replaces_same_named_ones_and_makes_the_new_context_current() -> None:
    merged = kubeconfigs.merge(kubeconfigs.parse(EXISTING, "f"), _arc1())
    assert [c["name"] for c in merged["clusters"]] == ["kind-dev", "arc1"]
    assert merged["clusters"][1]["cluster"] == {
        "server": "https://127.0.0.1:47011",
        "certificate-authority-data": base64.b64encode(b"PEM").decode(),
    }
    assert [u["name"] for u in merged["users"]] == ["dev-admin", "clusterUser_rg_arc1"]
    assert merged["contexts"][0] == {"name": "kind-dev", "context": {"cluster": "kind-dev", "user": "dev-admin"}}
    assert merged["contexts"][1] == {"name": "arc1", "context": {"cluster": "arc1", "user": "clusterUser_rg_arc1"}}
    assert merged["current-context"] == "arc1"
    # A second merge (another port) replaces, never duplicates.
    again = kubeconfigs.merge(merged, _arc1(47012))
    assert [c["name"] for c in again["clusters"]] == ["kind-dev", "arc1"]
    assert again["clusters"][1]["cluster"]["server"] == "https://127.0.0.1:47012"


def test_merge_into_a_missing_file_creates_it_owner_only(tmp_path: Path) -> None:
    path = tmp_path / "new" / "config"
    kubeconfigs.merge_into_file(path, _arc1())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    written = yaml.safe_load(path.read_text())
    assert written["current-context"] == "arc1" and written["kind"] == "Config"
    path.write_text(EXISTING)
    kubeconfigs.merge_into_file(path, _arc1())
    assert [c["name"] for c in yaml.safe_load(path.read_text())["contexts"]] == ["kind-dev", "arc1"]


def test_a_file_that_is_not_a_kubeconfig_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text("- just\n- a list\n")
    with pytest.raises(CliError) as refused:
        kubeconfigs.merge_into_file(path, _arc1())
    assert refused.value.code == "InvalidKubeconfig" and str(path) in refused.value.message
    assert path.read_text() == "- just\n- a list\n"


def test_token_replaces_the_user_credentials_and_a_context_can_be_renamed() -> None:
    exec_user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1", "command": "halyard"}}
    config = kubeconfigs.single(
        context="arc1", cluster="arc1", server="https://relay", ca_pem=None, user="u", credentials=exec_user
    )
    assert kubeconfigs.with_token(config, "sa-token")["users"] == [{"name": "u", "user": {"token": "sa-token"}}]
    assert config["users"][0]["user"] == exec_user  # the original is not changed
    renamed = kubeconfigs.rename_context(config, "prod")
    assert renamed["current-context"] == "prod" and renamed["contexts"][0]["name"] == "prod"
    assert "certificate-authority-data" not in renamed["clusters"][0]["cluster"]


def test_exec_credential_is_the_v1_shape_kubectl_reads() -> None:
    credential = exec_credential("tok", 1_800_000_000.7)
    assert credential == {
        "kind": "ExecCredential",
        "apiVersion": "client.authentication.k8s.io/v1",
        "spec": {"interactive": False},
        "status": {"token": "tok", "expirationTimestamp": "2027-01-15T08:00:00Z"},
    }


def test_a_cached_token_is_used_until_five_minutes_before_it_expires() -> None:
    assert fresh_enough(CachedToken("t", 1000.0), now=699.0)
    assert not fresh_enough(CachedToken("t", 1000.0), now=700.0)
    assert not fresh_enough(None, now=0.0)


def test_get_token_fast_path_takes_only_the_plugins_command_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HALYARD_CONFIG_DIR", str(tmp_path))
    for other in (["account", "show"], ["get-token", "--help"], ["get-token", "-o", "table"], ["get-token", "-x"]):
        assert fast(other) is None
    assert fast(["get-token", "--output", "json"]) == 1  # not logged in: the one error line
    assert capsys.readouterr().err.startswith("ERROR: (NotLoggedIn)")
    assert fast(["get-token", "--server=https://elsewhere:1"]) == 1
    assert "No login for https://elsewhere:1" in capsys.readouterr().err


def test_credentials_answer_is_parsed_and_a_wrong_shape_is_a_clear_error() -> None:
    kubeconfig = kubeconfigs.dump(_arc1())
    body = {
        "hybridConnectionConfig": {
            "relay": "https://127.0.0.1:8443/relay/x", "hybridConnectionName": "/subscriptions/s/x", "token": "t",
            "expirationTime": 1700000000, "relayTid": "tid", "relayType": "Halyard",
        },
        "kubeconfigs": [{"name": "credentialUser", "value": base64.b64encode(kubeconfig.encode()).decode()}],
    }  # fmt: skip
    parsed = parse_credentials(body)
    assert parsed.relay is not None and parsed.relay.token == "t" and parsed.relay.expires_at == 1700000000.0
    assert parsed.kubeconfig == _arc1()
    for wrong in ([], {"hybridConnectionConfig": {"relay": "https://r"}}, {"kubeconfigs": [{"value": "%%"}]}):
        with pytest.raises(CliError) as error:
            parse_credentials(wrong)
        assert error.value.code == "InvalidResponse"
    assert auth_method(None) == "AAD" and auth_method("sa") == "Token"


def test_credentials_are_renewed_300_seconds_before_they_expire() -> None:
    assert refresh_delay(10_000.0, now=9_000.0) == 700.0
    assert refresh_delay(10_000.0, now=9_800.0) == 0.0


def test_features_are_validated_and_planned_idempotently() -> None:
    assert parse_requested(["azure-rbac", "cluster-connect"]) == ("cluster-connect", "azure-rbac")
    assert parse_requested(["Cluster-Connect,azure-rbac"]) == ("cluster-connect", "azure-rbac")
    for bad in (["custom-locations"], [""]):
        with pytest.raises(UsageError) as refused:
            parse_requested(bad)
        assert "--features" in refused.value.message
    on = plan(names.DEFAULT_FEATURES, ("cluster-connect", "azure-rbac"), enable=True)
    assert on.after == {"cluster-connect", "azure-rbac"}
    assert on.changed == ("azure-rbac",) and on.unchanged == ("cluster-connect",)
    off = plan(on.after, ("cluster-connect",), enable=False)
    assert off.after == {"azure-rbac"} and off.changed == ("cluster-connect",)
    assert plan(off.after, ("cluster-connect",), enable=False).changed == ()


def test_chart_values_turn_the_feature_agents_on_and_off_and_roll_every_agent() -> None:
    values, switches = chart_values_for(frozenset({"azure-rbac"}))
    assert values == {"features": "azure-rbac"}
    assert switches == {
        "agents.clusterconnect-agent.enabled": False,
        "agents.guard.enabled": True,
        "agents.extension-manager.enabled": False,
        "agents.config-agent.enabled": False,
        "agents.flux-logs-agent.enabled": False,
    }
    assert chart_values_for(names.DEFAULT_FEATURES)[1]["agents.clusterconnect-agent.enabled"] is True
    assert json.dumps(chart_values_for(frozenset())[0]) == '{"features": ""}'
