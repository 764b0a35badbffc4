"""Drive one connected cluster through its life with the official SDK installed here, and print what happened as JSON.

Standalone (azure-identity, azure-mgmt-hybridkubernetes and the standard library only), because the compat tests run
it in two environments: the test venv (azure-mgmt-hybridkubernetes 2.0.0, api-version 2026-05-01) and .cache/sdk12
(1.2.0, api-version 2021-10-01); the two versions cannot share one environment.

Input on stdin: ``{"admin": <admin.json content>, "group": ..., "cluster": ..., "key": <base64 DER public key>}``.
"""

from __future__ import annotations

import json
import sys
from importlib.metadata import version
from typing import Any
from urllib.parse import parse_qs, urlsplit

from azure.core.exceptions import ResourceNotFoundError
from azure.identity import ClientSecretCredential
from azure.mgmt.hybridkubernetes import ConnectedKubernetesClient
from azure.mgmt.hybridkubernetes.models import ConnectedCluster, ConnectedClusterIdentity, ConnectedClusterPatch


def _view(cluster: Any) -> dict[str, Any]:
    # Both SDK generations expose the properties flattened onto the model.
    return {
        "id": cluster.id,
        "name": cluster.name,
        "type": cluster.type,
        "location": cluster.location,
        "tags": dict(cluster.tags or {}),
        "identityType": cluster.identity.type,
        "principalId": cluster.identity.principal_id,
        "provisioningState": cluster.provisioning_state,
        "connectivityStatus": cluster.connectivity_status,
        "distribution": cluster.distribution,
    }


def _not_found_code(call: Any) -> str | None:
    try:
        call()
    except ResourceNotFoundError as error:
        return error.error.code if error.error else "ResourceNotFoundError without an ARM error body"
    return None


def run(spec: dict[str, Any]) -> dict[str, Any]:
    admin, group, name = spec["admin"], spec["group"], spec["cluster"]
    sent: list[dict[str, Any]] = []

    def record(request: Any) -> None:  # every request of the client's pipeline, LRO polls included
        url = urlsplit(request.http_request.url)
        sent.append(
            {
                "method": request.http_request.method,
                "path": url.path,
                "apiVersion": parse_qs(url.query).get("api-version", [None])[0],
            }
        )

    def answered(pipeline_response: Any) -> None:  # what each of those requests was answered, in the same order
        response = pipeline_response.http_response
        entry = sent[-1]
        entry["status"] = response.status_code
        for header in ("Retry-After", "Azure-AsyncOperation", "Location"):
            if header in response.headers:
                entry[header] = response.headers[header]
        if "/operationStatuses/" in entry["path"]:
            entry["operationStatus"] = json.loads(response.text())["status"]

    server, ca = admin["server"], admin["caCert"]
    credential = ClientSecretCredential(
        admin["tenant"],
        admin["clientId"],
        admin["clientSecret"],
        authority=server,
        disable_instance_discovery=True,
        connection_verify=ca,
    )
    client = ConnectedKubernetesClient(
        credential,
        admin["subscription"],
        base_url=server,
        credential_scopes=[admin["audience"] + ".default"],
        connection_verify=ca,
        raw_request_hook=record,
        raw_response_hook=answered,
    )
    ops = client.connected_cluster
    body = ConnectedCluster(
        location="westus",
        identity=ConnectedClusterIdentity(type="SystemAssigned"),
        agent_public_key_certificate=spec["key"],
        distribution="k3s",
        tags={"owner": "sdk"},
    )
    patch = ConnectedClusterPatch(tags={"env": "sdk"})
    # 2.x names the create "create_or_replace" and made PATCH a long-running operation; 1.x has create and update.
    if hasattr(ops, "begin_create_or_replace"):
        created = ops.begin_create_or_replace(group, name, body).result()
    else:
        created = ops.begin_create(group, name, body).result()
    fetched = ops.get(group, name)
    by_group = [c.name for c in ops.list_by_resource_group(group)]
    by_subscription = [c.id for c in ops.list_by_subscription()]
    if hasattr(ops, "begin_update_async"):
        updated = ops.begin_update_async(group, name, patch).result()
    else:
        updated = ops.update(group, name, patch)
    after_update = ops.get(group, name)
    ops.begin_delete(group, name).result()
    return {
        "sdk": version("azure-mgmt-hybridkubernetes"),
        "apiVersion": client._config.api_version,
        "created": _view(created),
        "fetched": _view(fetched),
        "byGroup": by_group,
        "bySubscription": by_subscription,
        "updated": _view(updated),
        "afterUpdate": _view(after_update),
        "afterDelete": _not_found_code(lambda: ops.get(group, name)),
        "missingCluster": _not_found_code(lambda: ops.get(group, name + "-never")),
        "requests": sent,
    }


if __name__ == "__main__":
    json.dump(run(json.load(sys.stdin)), sys.stdout)
