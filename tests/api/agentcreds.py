"""A connected cluster onboarded from a test the way identity-operator does it: its own onboarding key, a proof of
possession to his, a cluster certificate, and an agent token from a client assertion (the agents' own code)."""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from pathlib import Path

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.identity import IdentityOperator
from halyard.agent.metrics import AgentMetrics
from halyard.api.agents import EndpointMap
from halyard.core.clock import SystemClock
from tests.api.helpers import CC_API, cluster_path
from tests.support.processes import ServerProcess


@dataclass
class Agent:
    """A cluster's agents, as far as the services can tell: its resource path and a valid agent token."""

    path: str
    token: str
    onboarding_key: ec.EllipticCurvePrivateKey

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


def onboarding_key_b64(key: ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


def connect(server: ServerProcess, group: str, name: str, *, agents_started: bool = False) -> Agent:
    """Create the cluster (waiting until provisioned), obtain its certificate from his and an agent token. With
    ``agents_started``, its extension-manager and config-agent poll once as they do when they start, so that its
    extensions and Flux configurations can be written (a cluster that never ran them is refused: AgentNotRunning)."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = cluster_path(server, group, name)
    body = {
        "location": "eastus",
        "identity": {"type": "SystemAssigned"},
        "properties": {"agentPublicKeyCertificate": onboarding_key_b64(key)},
    }
    with server.client() as c:
        r = c.put(path, params=CC_API, json=body)
        assert r.status_code in (200, 201), r.text
        for _ in range(200):
            if c.get(path, params=CC_API).json()["properties"]["provisioningState"] == "Succeeded":
                break
            asyncio.run(asyncio.sleep(0.05))
    agent = Agent(path, asyncio.run(_token(server, path, key)), key)
    if agents_started:
        with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
            for poll in ("/dp/v1/configurations", "/dp/v1/fluxConfigurations"):
                r = http.get(poll, params={"wait": 0}, headers=agent.headers)
                assert r.status_code == 200, r.text
    return agent


async def _token(server: ServerProcess, path: str, key: ec.EllipticCurvePrivateKey) -> str:
    async with httpx.AsyncClient(verify=server.ca, timeout=30) as http:
        endpoints = (await http.get(f"{server.url}/his/v1/endpoints")).json()
        config = ClusterConfig(
            path,
            EndpointMap.model_validate({**endpoints, "tenant": server.admin["tenant"]}),
            Path(server.ca).read_text(),
            key,
        )
        identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
        identity.issued = await identity.request_certificate(None)
        identity.ready.set()
        return await identity.token()
