"""Act as a cluster's agents would, from a test: read its identity Secret, mint tokens, call dp and his."""

from __future__ import annotations

import base64
import time
import uuid
from pathlib import Path

import httpx
import jwt
from cryptography.hazmat.primitives import serialization
from lightkube import Client, KubeConfig
from lightkube.resources.core_v1 import Secret

from halyard.agent.identity import ASSERTION_TYPE, Issued
from halyard.api import cluster as names
from halyard.api.proofs import signing_algorithm
from tests.support.processes import ServerProcess


def read_identity(kubeconfig: Path) -> Issued:
    client = Client(KubeConfig.from_file(str(kubeconfig)))
    try:
        secret = client.get(Secret, names.IDENTITY_SECRET, namespace=names.NAMESPACE)
    finally:
        client.close()
    return Issued.from_secret(secret.data or {})


def token_response(server: ServerProcess, issued: Issued, audience: str | None = None) -> httpx.Response:
    """Ask the login service for an agent token with a client assertion signed by the cluster certificate's key."""
    now = int(time.time())
    assertion = jwt.encode(
        {
            "iss": issued.response.clientId,
            "sub": issued.response.clientId,
            "aud": issued.response.tokenEndpoint,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "exp": now + 300,
        },
        issued.key,  # type: ignore[arg-type]
        algorithm=signing_algorithm(issued.key),
    )
    return httpx.post(
        issued.response.tokenEndpoint,
        data={
            "grant_type": "client_credentials",
            "client_id": issued.response.clientId,
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
            "scope": (audience or issued.response.audience).rstrip("/") + "/.default",
        },
        verify=server.ca,
    )


def heartbeat(server: ServerProcess, token: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/dp/v1/heartbeat",
        json={"agentVersion": "test"},
        headers={"Authorization": f"Bearer {token}"},
        verify=server.ca,
    )


def der_b64(issued: Issued) -> str:
    return base64.b64encode(issued.certificate.public_bytes(serialization.Encoding.DER)).decode()
