"""What agents report and what users write never overwrite each other (PostgreSQL, concurrent replicas' shape).

A heartbeat batch that has read a connected cluster and commits after a user's PUT of the same cluster must not
write back the copy it read: the user's change (an agent-version pin) survives. The interleaving is made
deterministic by a database whose heartbeat transaction pauses between its reads and its commit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from sqlalchemy.ext.asyncio import AsyncSession

from halyard import __version__
from halyard.api.proofs import csr_digest
from halyard.controlplane.app import create_app
from halyard.core.settings import Settings
from halyard.store import Database
from tests.support.inprocess import sign_in_admin
from tests.support.postgres import PostgresServer

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]

CLUSTERS = {"api-version": "2026-05-01"}
HEARTBEAT_WRITER = "heartbeat-writer"  # the name of the task that commits heartbeat batches


class PausingDatabase(Database):
    """Pauses the next heartbeat transaction after its reads and writes, before its commit, until released."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.reached = asyncio.Event()
        self.release = asyncio.Event()
        self.armed = False

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        async with super().transaction() as session:
            yield session
            task = asyncio.current_task()
            if self.armed and task is not None and task.get_name() == HEARTBEAT_WRITER:
                self.armed = False
                self.reached.set()
                await self.release.wait()


async def _wait_succeeded(client: httpx.AsyncClient, url: str) -> None:
    deadline = time.monotonic() + 20
    while (r := await client.get(url)).json()["status"] == "InProgress":
        assert time.monotonic() < deadline, f"operation {url} still in progress"
        await asyncio.sleep(0.05)
    assert r.json()["status"] == "Succeeded", r.text


async def _agent_token(client: httpx.AsyncClient, path: str, onboarding: ec.EllipticCurvePrivateKey) -> str:
    """Onboard as the identity operator does: a certificate from his for a new key, then an agent token."""
    endpoints = (await client.get("/his/v1/endpoints")).json()
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "halyard-cluster")])
    csr = x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())
    his = endpoints["his"].rstrip("/") + "/v1/certificate"
    now = int(time.time())
    proof = jwt.encode(
        {"iss": "halyard-agent", "sub": path, "aud": his, "iat": now, "exp": now + 120, "jti": uuid.uuid4().hex,
         "csr": csr_digest(csr)},
        onboarding,
        algorithm="ES256",
        headers={"kid": "onboarding"},
    )  # fmt: skip
    r = await client.post(
        urlsplit(his).path,
        json={"resourceId": path, "csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "proof": proof},
    )
    assert r.status_code == 200, r.text
    issued = r.json()
    certificate = x509.load_pem_x509_certificate(issued["certificate"].encode())
    thumbprint = base64.urlsafe_b64encode(certificate.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    assertion = jwt.encode(
        {"iss": issued["clientId"], "sub": issued["clientId"], "aud": issued["tokenEndpoint"],
         "jti": uuid.uuid4().hex, "iat": now, "nbf": now, "exp": now + 300},
        key,
        algorithm="ES256",
        headers={"x5t#S256": thumbprint},
    )  # fmt: skip
    r = await client.post(
        urlsplit(issued["tokenEndpoint"]).path,
        data={
            "grant_type": "client_credentials",
            "client_id": issued["clientId"],
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion,
            "scope": issued["audience"].rstrip("/") + "/.default",
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _beat(kubernetes_version: str) -> dict[str, Any]:
    return {"agentVersion": __version__, "kubernetesVersion": kubernetes_version, "totalNodeCount": 3}


async def test_a_heartbeat_committing_after_a_user_put_keeps_the_users_change(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    db = PausingDatabase(postgres_server.create_database(f"t_{uuid.uuid4().hex[:12]}"))
    app = create_app(Settings(data_dir=tmp_path, insecure_http=True), db=db)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app), httpx.AsyncClient(transport=transport, base_url="http://t") as user:
        admin = await sign_in_admin(user, tmp_path)
        group = f"/subscriptions/{admin['subscription']}/resourceGroups/g"
        assert (await user.put(group, params={"api-version": "2024-11-01"}, json={"location": "eastus"})).is_success
        onboarding = ec.generate_private_key(ec.SECP256R1())
        public = onboarding.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        path = f"{group}/providers/Microsoft.Kubernetes/connectedClusters/c"
        body: dict[str, Any] = {
            "location": "eastus",
            "identity": {"type": "SystemAssigned"},
            "properties": {"agentPublicKeyCertificate": base64.b64encode(public).decode()},
        }
        r = await user.put(path, params=CLUSTERS, json=body)
        assert r.status_code == 201, r.text
        await _wait_succeeded(user, r.headers["Azure-AsyncOperation"])

        async with httpx.AsyncClient(transport=transport, base_url="http://t") as agent:
            agent.headers["Authorization"] = f"Bearer {await _agent_token(agent, path, onboarding)}"
            first = await agent.post("/dp/v1/heartbeat", json=_beat("v1.30.0"))
            assert first.status_code == 200, first.text

            db.armed = True
            beat = asyncio.create_task(agent.post("/dp/v1/heartbeat", json=_beat("v1.31.0")))
            await asyncio.wait_for(db.reached.wait(), 10)  # the batch has read the cluster and not committed

            body["properties"]["arcAgentProfile"] = {"desiredAgentVersion": __version__}
            r = await user.put(path, params=CLUSTERS, json=body)
            assert r.status_code == 200, r.text
            await _wait_succeeded(user, r.headers["Azure-AsyncOperation"])

            db.release.set()
            assert (await asyncio.wait_for(beat, 10)).status_code == 200

        got = (await user.get(path, params=CLUSTERS)).json()["properties"]
        assert got["arcAgentProfile"].get("desiredAgentVersion") == __version__, got  # the user's pin survived
        assert got["kubernetesVersion"] == "v1.31.0"  # and so did the agents' report
