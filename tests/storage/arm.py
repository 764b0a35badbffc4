"""ARM calls the storage tests make over and over: create a group or a cluster, follow an async operation."""

from __future__ import annotations

import base64
import time
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

CLUSTERS = "2024-01-01"  # connectedClusters api-version with asynchronous PATCH
RESOURCES = "2024-11-01"
NAMESPACE = "Microsoft.Kubernetes"


def agent_public_key() -> str:
    """A fresh onboarding key as az sends it: base64 DER of the public key."""
    der = (
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    return base64.b64encode(der).decode()


def group_path(subscription: str, group: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}"


def cluster_path(subscription: str, group: str, name: str) -> str:
    return f"{group_path(subscription, group)}/providers/{NAMESPACE}/connectedClusters/{name}"


def cluster_body(key: str, tags: dict[str, str] | None = None, location: str = "eastus") -> dict[str, Any]:
    return {
        "location": location,
        "identity": {"type": "SystemAssigned"},
        "tags": tags or {},
        "properties": {"agentPublicKeyCertificate": key, "distribution": "k3s", "infrastructure": "generic"},
    }


def put_group(client: httpx.Client, subscription: str, group: str, location: str = "eastus") -> httpx.Response:
    response = client.put(
        group_path(subscription, group), params={"api-version": RESOURCES}, json={"location": location}
    )
    assert response.status_code in (200, 201), response.text
    return response


def put_cluster(
    client: httpx.Client, subscription: str, group: str, name: str, key: str, **headers: str
) -> httpx.Response:
    return client.put(
        cluster_path(subscription, group, name),
        params={"api-version": CLUSTERS},
        json=cluster_body(key),
        headers=headers,
    )


def wait_async_operation(client: httpx.Client, response: httpx.Response, timeout: float = 30) -> dict[str, Any]:
    """Poll ``Azure-AsyncOperation`` as the SDKs do (honouring ``Retry-After``) until a terminal status."""
    url = response.headers["Azure-AsyncOperation"]
    deadline = time.monotonic() + timeout
    while True:
        status = client.get(url)
        assert status.status_code == 200, status.text
        body: dict[str, Any] = status.json()
        if body["status"] != "InProgress":
            return body
        assert "Retry-After" in status.headers
        assert time.monotonic() < deadline, f"operation still InProgress after {timeout}s: {body}"
        time.sleep(0.1)


def wait_location(client: httpx.Client, response: httpx.Response, timeout: float = 30) -> httpx.Response:
    """Poll ``Location`` until it stops answering 202; returns the final answer."""
    url = response.headers["Location"]
    deadline = time.monotonic() + timeout
    while True:
        result = client.get(url)
        if result.status_code != 202:
            return result
        assert "Retry-After" in result.headers
        assert time.monotonic() < deadline, f"operation at {url} still running after {timeout}s"
        time.sleep(0.1)


def create_cluster(client: httpx.Client, subscription: str, group: str, name: str, key: str) -> dict[str, Any]:
    """PUT a cluster and wait for its operation; returns the provisioned cluster."""
    response = put_cluster(client, subscription, group, name, key)
    assert response.status_code == 201, response.text
    assert wait_async_operation(client, response)["status"] == "Succeeded"
    got = client.get(cluster_path(subscription, group, name), params={"api-version": CLUSTERS})
    assert got.status_code == 200, got.text
    return dict(got.json())


def list_all(client: httpx.Client, path: str, top: int | None = None) -> tuple[list[dict[str, Any]], int]:
    """Follow ``nextLink`` to the end; returns the items and the number of pages."""
    params: dict[str, Any] = {"api-version": CLUSTERS}
    if top:
        params["$top"] = top
    response = client.get(path, params=params)
    items: list[dict[str, Any]] = []
    pages = 0
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["value"]
        pages += 1
        if not body.get("nextLink"):
            return items, pages
        response = client.get(body["nextLink"])
