"""azure-mgmt-kubernetesconfiguration-extensions 1.0.0 (api-version 2025-03-01) against a running control plane:
create, get, list, update and force-delete an extension; protected settings are accepted and never returned."""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.api.helpers import cluster_body, cluster_path, make_group, unique
from tests.compat.recipes import recipe
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
SECRET = "sdk-protected-value"


def test_the_extensions_sdk_manages_an_extension(server: ServerProcess) -> None:
    from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
    from azure.mgmt.kubernetesconfiguration.extensions import KubernetesConfigurationExtensionsMgmtClient

    group = make_group(server)
    cluster = unique("sdk-ext")
    with server.client() as c:
        r = c.put(cluster_path(server, group, cluster), params={"api-version": "2026-05-01"}, json=cluster_body())
        assert r.status_code in (200, 201), r.text
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
        updated = sdk.extensions.begin_update(*where, "flux", patch).result()
        assert updated.properties.configuration_settings == {"a": "1", "b": "2"}

        with pytest.raises(HttpResponseError) as refused:
            bad = {"properties": {"extensionType": "microsoft.flux", "version": "1.13.0"}}
            sdk.extensions.begin_create(*where, "pinned", bad).result()
        assert refused.value.error is not None and refused.value.error.code == "InvalidVersionPinning"
        assert SECRET not in str(refused.value)

        sdk.extensions.begin_delete(*where, "flux", force_delete=True).result()
        with pytest.raises(ResourceNotFoundError):
            sdk.extensions.get(*where, "flux")
    finally:
        sdk.close()
        for opened in ("resources", "kubernetes", "credential"):
            clients[opened].close()
