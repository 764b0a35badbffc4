"""azure-mgmt-kubernetesconfiguration-fluxconfigurations 1.0.0 (api-version 2025-04-01) against a running control
plane, the test playing the cluster's config-agent over the real agent protocol (``/dp/v1/fluxConfigurations``):
create waits for the agent's report, the status monitor, get, list, update, compliance reported, force delete;
protected settings never returned; bad input refused with clear errors."""

from __future__ import annotations

import base64
import json
import threading
import time
from typing import Any

import httpx
import pytest

from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group, unique
from tests.compat.recipes import recipe
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
SECRET = "sdk-flux-key-never-returned"
POLL = "/dp/v1/fluxConfigurations"
REPORTS = "/dp/v1/fluxConfigurations/reports"


class PlayedConfigAgent(threading.Thread):
    """Long-polls the cluster's Flux configurations and reports every write applied, Compliant."""

    def __init__(self, server: ServerProcess, agent: Agent) -> None:
        super().__init__(daemon=True)
        self.http = httpx.Client(base_url=server.url, verify=server.ca, timeout=60)
        self.agent = agent
        self.stop = threading.Event()
        self.seen: list[dict[str, Any]] = []

    def run(self) -> None:
        since = None
        while not self.stop.is_set():
            params: dict[str, Any] = {"wait": 2 if since else 0, **({"since": since} if since else {})}
            r = self.http.get(POLL, params=params, headers=self.agent.headers)
            if r.status_code != 200:
                continue
            desired = r.json()
            since = desired["version"]
            self.seen = desired["fluxConfigurations"]
            reports = [
                {"name": e["name"], "state": "Applied", "appliedGeneration": e["generation"],
                 "complianceState": "Compliant", "sourceSyncedCommitId": "main@sha1:" + "b" * 40,
                 "statuses": [{"name": e["name"], "namespace": e["namespace"], "kind": "GitRepository",
                               "complianceState": "Compliant", "statusConditions": [
                                   {"type": "Ready", "status": "True", "reason": "Succeeded", "message": "ok"}]}]}
                for e in self.seen if not e["deleting"]
            ]  # fmt: skip
            if reports:
                sent = self.http.post(REPORTS, json={"configurations": reports}, headers=self.agent.headers)
                assert sent.status_code == 204, sent.text


def test_the_fluxconfigurations_sdk_manages_a_configuration(server: ServerProcess) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.kubernetesconfiguration.fluxconfigurations import (
        KubernetesConfigurationFluxConfigurationsMgmtClient,
    )

    group = make_group(server)
    cluster = unique("sdk-flux")
    agent = connect(server, group, cluster, agents_started=True)
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
        first = http.get(POLL, params={"wait": 0}, headers=agent.headers)
        assert first.status_code == 200, first.text  # the cluster runs a config-agent: writes wait for its reports
    played = PlayedConfigAgent(server, agent)
    played.start()
    clients: dict[str, Any] = {"admin": server.admin}
    exec(recipe("python"), clients)
    options = {**clients["options"], "polling_interval": 0.05}
    sdk = KubernetesConfigurationFluxConfigurationsMgmtClient(
        clients["credential"], server.admin["subscription"], **options
    )
    where = (group, "Microsoft.Kubernetes", "connectedClusters", cluster)
    key = base64.b64encode(SECRET.encode()).decode()
    try:
        body = {
            "properties": {
                "scope": "cluster",
                "namespace": "flux-system",
                "sourceKind": "GitRepository",
                "gitRepository": {"url": "https://git.example/a.git", "repositoryRef": {"branch": "main"},
                                  "httpsUser": "me"},
                "kustomizations": {"base": {"path": "./base"}, "apps": {"path": "./apps", "dependsOn": ["base"]}},
                "configurationProtectedSettings": {"httpsKey": key},
            }
        }  # fmt: skip
        answers: list[Any] = []
        created = sdk.flux_configurations.begin_create_or_update(
            *where, "fleet", body, raw_response_hook=lambda r: answers.append(r.http_response)
        ).result()
        assert created.properties.provisioning_state == "Succeeded"
        assert created.properties.kustomizations["apps"].depends_on == ["base"]
        # The agent received the key in clear; the management API never returns it.
        assert played.seen[0]["configurationProtectedSettings"] == {"httpsKey": key}
        operation_id = answers[0].headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[1]
        status = sdk.flux_config_operation_status.get(*where, "fleet", operation_id)
        assert (status.status, status.name) == ("Succeeded", operation_id)
        got = sdk.flux_configurations.get(*where, "fleet")
        assert got.properties.compliance_state == "Compliant"
        assert got.properties.source_synced_commit_id == "main@sha1:" + "b" * 40
        assert got.properties.statuses[0].status_conditions[0].type == "Ready"
        listed = list(sdk.flux_configurations.list(*where))
        assert [f.name for f in listed] == ["fleet"]
        for item in (created, got, *listed):
            text = json.dumps(item.as_dict())
            assert SECRET not in text and key not in text

        patch = {"properties": {"suspend": True, "kustomizations": {"apps": None}}}
        updated = sdk.flux_configurations.begin_update(*where, "fleet", patch).result()
        assert updated.properties.suspend is True and set(updated.properties.kustomizations) == {"base"}

        for bad, code in (
            ({"gitRepository": {"url": "ftp://x/y", "repositoryRef": {"branch": "m"}}}, "InvalidUrl"),
            ({"sourceKind": "Bucket"}, "MissingSource"),
            ({"gitRepository": {"url": "https://x/y", "repositoryRef": {"branch": "m"}},
              "kustomizations": {"Bad_Name": {}}}, "InvalidKustomizationName"),
            ({"gitRepository": {"url": "https://x/y", "repositoryRef": {"branch": "m"}},
              "kustomizations": {"a": {"dependsOn": ["nope"]}}}, "InvalidDependsOn"),
            ({"gitRepository": {"url": "https://x/y", "repositoryRef": {"branch": "m"}},
              "kustomizations": {"a": {"dependsOn": ["b"]}, "b": {"dependsOn": ["a"]}}}, "InvalidDependsOn"),
        ):  # fmt: skip
            with pytest.raises(HttpResponseError) as refused:
                sdk.flux_configurations.begin_create_or_update(*where, "bad", {"properties": bad}).result()
            assert refused.value.status_code == 400 and refused.value.error.code == code, refused.value
        with pytest.raises(ResourceNotFoundError):
            sdk.flux_configurations.get(*where, "bad")  # nothing half-created

        # The played agent never reports the objects removed: only a force delete ends the deletion.
        sdk.flux_configurations.begin_delete(*where, "fleet", force_delete=True).result()
        with pytest.raises(ResourceNotFoundError):
            sdk.flux_configurations.get(*where, "fleet")
    finally:
        played.stop.set()
        played.join(timeout=10)
        played.http.close()
        sdk.close()
        for opened in ("resources", "kubernetes", "credential"):
            clients[opened].close()
    log = server.whole_log()
    assert SECRET not in log and key not in log


def test_a_source_control_configuration_runs_on_the_same_engine(server: ServerProcess) -> None:
    """The older API (2023-05-01, as azure-mgmt-kubernetesconfiguration 3.x sends it): created at once, delivered
    to config-agent as one GitRepository and one Kustomization of its own name, complianceStatus from the agent's
    report, its name unusable by a Flux configuration, deleted once the agent reports its objects removed."""
    group = make_group(server)
    agent = connect(server, group, unique("scc"), agents_started=True)
    api = {"api-version": "2023-05-01"}
    path = f"{agent.path}/providers/Microsoft.KubernetesConfiguration/sourceControlConfigurations/legacy"
    flux_path = f"{agent.path}/providers/Microsoft.KubernetesConfiguration/fluxConfigurations/legacy"
    with server.client() as c, httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
        assert http.get(POLL, params={"wait": 0}, headers=agent.headers).status_code == 200  # a config-agent runs
        body = {"properties": {"repositoryUrl": "https://git.example/l.git", "operatorNamespace": "team",
                               "operatorParams": "--git-branch=dev --git-path=deploy",
                               "configurationProtectedSettings": {"sshPrivateKey": base64.b64encode(b"k").decode()}}}  # fmt: skip
        r = c.put(path, params=api, json=body)
        assert r.status_code == 201 and r.json()["properties"]["complianceStatus"]["complianceState"] == "Pending"
        clash = c.put(flux_path, params={"api-version": "2025-04-01"}, json={"properties": {
            "gitRepository": {"url": "https://x/y", "repositoryRef": {"branch": "m"}}}})  # fmt: skip
        assert clash.status_code == 409 and clash.json()["error"]["code"] == "ConfigurationNameInUse"
        desired = http.get(POLL, params={"wait": 0}, headers=agent.headers).json()["fluxConfigurations"]
        assert [(e["kind"], e["sourceName"], e["namespace"]) for e in desired] == [
            ("sourceControlConfiguration", "legacy", "team")
        ]
        assert desired[0]["kustomizations"][0]["objectName"] == "legacy"
        assert desired[0]["source"]["repositoryRef"] == {"branch": "dev"}
        report = {"name": "legacy", "kind": "sourceControlConfiguration", "state": "Applied",
                  "appliedGeneration": desired[0]["generation"], "complianceState": "Compliant",
                  "sourceUpdatedAt": "2026-12-06T05:00:00Z"}  # fmt: skip
        assert http.post(REPORTS, json={"configurations": [report]}, headers=agent.headers).status_code == 204
        shown = c.get(path, params=api).json()["properties"]
        assert shown["complianceStatus"]["complianceState"] == "Installed"
        assert shown["complianceStatus"]["lastConfigApplied"] == "2026-12-06T05:00:00Z"
        assert shown["configurationProtectedSettings"] == {} and "sshPrivateKey" not in json.dumps(shown)

        r = c.delete(path, params=api)
        assert r.status_code == 202
        time.sleep(0.5)
        assert c.get(path, params=api).json()["properties"]["provisioningState"] == "Deleting"  # waits for the agent
        deleting = http.get(POLL, params={"wait": 0}, headers=agent.headers).json()["fluxConfigurations"]
        assert deleting[0]["deleting"] is True
        removed = {"name": "legacy", "kind": "sourceControlConfiguration", "state": "Removed"}
        assert http.post(REPORTS, json={"configurations": [removed]}, headers=agent.headers).status_code == 204
        deadline = time.monotonic() + 10
        while c.get(path, params=api).status_code != 404:
            assert time.monotonic() < deadline, "the deletion did not end after the agent's report"
            time.sleep(0.05)
