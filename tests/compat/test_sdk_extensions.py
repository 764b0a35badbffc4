"""azure-mgmt-kubernetesconfiguration-extensions 1.0.0 (api-version 2025-03-01) against a running control plane:
create, get, list, update and force-delete an extension; protected settings are accepted and never returned. The
test plays the cluster's extension-manager (its report on ``/dp``): the SDK's poller finishes only once it reports.
With the real agents, helm and charts: tests/agents/test_extensions.py."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from halyard.api.extensions import entry_digest
from tests.api.agentcreds import connect
from tests.api.helpers import make_group, unique
from tests.compat.recipes import recipe
from tests.configuration.test_extensions_delivery import play_extension_manager, poll, report
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
SECRET = "sdk-protected-value"


def test_the_extensions_sdk_manages_an_extension(server: ServerProcess) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.kubernetesconfiguration.extensions import KubernetesConfigurationExtensionsMgmtClient

    group = make_group(server)
    cluster = unique("sdk-ext")
    agent = connect(server, group, cluster, agents_started=True)
    clients: dict[str, Any] = {"admin": server.admin}
    exec(recipe("python"), clients)
    options = {**clients["options"], "polling_interval": 0.05}
    sdk = KubernetesConfigurationExtensionsMgmtClient(clients["credential"], server.admin["subscription"], **options)
    where = (group, "Microsoft.Kubernetes", "connectedClusters", cluster)
    try:
        body = {
            "properties": {
                "extensionType": "microsoft.flux",
                "autoUpgradeMinorVersion": True,
                "releaseTrain": "stable",
                "configurationSettings": {"a": "1"},
                "configurationProtectedSettings": {"token": SECRET},
            }
        }
        answers: list[Any] = []
        poller = sdk.extensions.begin_create(
            *where, "flux", body, raw_response_hook=lambda r: answers.append(r.http_response)
        )
        time.sleep(0.5)
        assert not poller.done() and poller.status() == "InProgress"  # the cluster has not reported yet
        play_extension_manager(server, agent)
        created = poller.result()
        assert created.properties.extension_type == "microsoft.flux"
        assert created.properties.provisioning_state == "Succeeded"
        assert not created.properties.configuration_protected_settings
        # The per-resource status monitor answers for the create's operation.
        operation_id = answers[0].headers["Azure-AsyncOperation"].split("?")[0].rsplit("/", 1)[1]
        status = sdk.operation_status.get(*where, "flux", operation_id)
        assert (status.status, status.name) == ("Succeeded", operation_id)
        with pytest.raises(ResourceNotFoundError):
            sdk.operation_status.get(*where, "other", operation_id)
        got = sdk.extensions.get(*where, "flux")
        assert got.properties.configuration_settings == {"a": "1"}
        listed = list(sdk.extensions.list(*where))
        assert [e.name for e in listed] == ["flux"]
        for item in (created, got, *listed):
            assert SECRET not in json.dumps(item.as_dict())

        patch = {"properties": {"configurationSettings": {"b": "2"}}}
        updating = sdk.extensions.begin_update(*where, "flux", patch)
        while not updating.done():
            play_extension_manager(server, agent)
            time.sleep(0.05)
        updated = updating.result()
        assert updated.properties.configuration_settings == {"a": "1", "b": "2"}

        with pytest.raises(HttpResponseError) as refused:
            bad = {"properties": {"extensionType": "microsoft.flux", "version": "1.13.0"}}
            sdk.extensions.begin_create(*where, "pinned", bad).result()
        assert refused.value.error is not None and refused.value.error.code == "InvalidVersionPinning"
        assert SECRET not in str(refused.value)

        deleting = sdk.extensions.begin_delete(*where, "flux")
        time.sleep(0.5)
        assert not deleting.done()  # the cluster has not reported it uninstalled
        assert sdk.extensions.get(*where, "flux").properties.provisioning_state == "Deleting"
        play_extension_manager(server, agent, gone=("flux",))
        deleting.result()
        with pytest.raises(ResourceNotFoundError):
            sdk.extensions.get(*where, "flux")

        # The cluster reports it could not install: the poller raises with the agent's reason, the resource Failed.
        failing = sdk.extensions.begin_create(*where, "broken", body)
        [entry] = [e for e in poll(server, agent).json()["extensions"] if e["name"] == "broken"]
        why = {"code": "InstallFailed", "level": "Error", "message": "helm: a greeting is required"}
        report(server, agent, {"broken": {"installState": "Failed", "digest": entry_digest(entry), "statuses": [why]}})
        with pytest.raises(HttpResponseError) as failed:
            failing.result()
        assert "a greeting is required" in str(failed.value)
        assert sdk.extensions.get(*where, "broken").properties.provisioning_state == "Failed"

        # Forced: gone at once, nobody reporting.
        creating = sdk.extensions.begin_create(*where, "forced", body)
        while not creating.done():
            play_extension_manager(server, agent)
            time.sleep(0.05)
        sdk.extensions.begin_delete(*where, "forced", force_delete=True).result()
        with pytest.raises(ResourceNotFoundError):
            sdk.extensions.get(*where, "forced")
    finally:
        sdk.close()
        for opened in ("resources", "kubernetes", "credential"):
            clients[opened].close()
