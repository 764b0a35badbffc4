"""The agent protocol: what the agents send to ``his`` and ``dp`` and what they get back.

Both sides import these models, so the contract lives in exactly one place. Field names are camelCase on the wire,
like the rest of the ARM-shaped API.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from halyard.api.text import Text, Token

# The proof of possession an agent signs (a JWT) names this as its issuer; the audience is the URL it posts to.
PROOF_ISSUER = "halyard-agent"
PROOF_LIFETIME_SECONDS = 300
HIS_CERTIFICATE_PATH = "/v1/certificate"
HIS_ENDPOINTS_PATH = "/v1/endpoints"
DP_HEARTBEAT_PATH = "/v1/heartbeat"
# The additionalInfo type of a private link refusal (403) whose info is the ServiceEndpoints the cluster is served on.
ENDPOINTS_INFO = "HalyardServiceEndpoints"


class ServiceEndpoints(BaseModel):
    """Where the agents find every control-plane service, as the server publishes it (``GET {his}/v1/endpoints``)."""

    model_config = ConfigDict(extra="ignore")
    management: str = Field(description="The management API (ARM) base URL.")
    login: str = Field(description="The login service base URL; tokens come from {login}/{tenant}/oauth2/v2.0/token.")
    his: str = Field(description="The hybrid identity service base URL (cluster certificates).")
    dp: str = Field(description="The agent data plane base URL (heartbeat, metadata).")
    agentAudience: str = Field(description="The audience of agent tokens (distinct from the management audience).")
    relay: str | None = Field(default=None, description="The relay base URL (cluster connect); older maps lack it.")

    def relay_url(self) -> str:
        """The relay, or where it is on a control plane whose map predates it (beside the management API)."""
        return self.relay or f"{self.management.rstrip('/')}/relay"


def endpoints_version(endpoints: ServiceEndpoints) -> str:
    """A short digest of a map's services (the tenant aside): the agents echo the version of the map they follow
    with each beat, and the control plane sends a map only when the cluster's differs."""
    fields = {name: getattr(endpoints, name) for name in ServiceEndpoints.model_fields}
    canonical = json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(canonical).hexdigest()[:16]


class EndpointMap(ServiceEndpoints):
    """What onboarding hands the agents: the service endpoints and the tenant (agents never hard-code addresses)."""

    tenant: str


class CertificateRequest(BaseModel):
    """Ask ``his`` for a cluster certificate.

    ``proof`` is a JWT signed with the onboarding key (header ``kid: onboarding``) or with the key of the cluster's
    current certificate (header ``x5c``); its claims bind it to the resource id, the ``his`` URL, and the SHA-256 of
    the CSR, so a captured proof is useless for any other key.
    """

    resourceId: str = Field(max_length=1024)
    csr: str = Field(max_length=16384, description="PEM certificate signing request, signed by the new cluster key.")
    proof: str = Field(max_length=32768)


class CertificateResponse(BaseModel):
    certificate: str = Field(description="PEM of the cluster certificate.")
    caCertificate: str = Field(description="PEM of the CA that issued it.")
    clientId: str = Field(description="The cluster identity's client id at the login service.")
    tenantId: str
    tokenEndpoint: str
    audience: str
    issuedAt: dt.datetime
    notAfter: dt.datetime


# Bounds of what a cluster may report. Every reported field ends up in the resource every reader of the
# subscription lists, so each is bounded in type, length, count and range: a misbehaving (or hostile) cluster is
# refused with 400 at the edge instead of writing megabytes, or text that cannot be stored, into the resource.
MAX_AGENT_ERRORS = 32
MAX_ERROR_MESSAGE = 2048
MAX_NODES = 100_000  # Kubernetes supports 5,000 nodes per cluster; ample room, and far from a 4,300-digit integer
MAX_CORES = 10_000_000
AgentState = Literal["Succeeded", "Failed", "Updating"]
Severity = Literal["Error", "Warning", "Information"]


class AgentError(BaseModel):
    """One agent's latest failure, as ``arcAgentProfile.agentErrors`` shows it."""

    message: Text = Field(max_length=MAX_ERROR_MESSAGE)
    severity: Severity = "Error"
    component: Token = Field(max_length=64)
    time: dt.datetime


class Heartbeat(BaseModel):
    """What resource-sync reports on every beat; every field reflects the cluster as observed now."""

    model_config = ConfigDict(extra="ignore")
    agentVersion: Token = Field(max_length=64)
    kubernetesVersion: Token | None = Field(default=None, max_length=64)
    totalNodeCount: int | None = Field(default=None, ge=0, le=MAX_NODES)
    totalCoreCount: int | None = Field(default=None, ge=0, le=MAX_CORES)
    distribution: Token | None = Field(default=None, max_length=64)
    infrastructure: Token | None = Field(default=None, max_length=64)
    agentState: AgentState | None = None
    agentErrors: list[AgentError] = Field(default_factory=list, max_length=MAX_AGENT_ERRORS)
    features: list[Token] | None = Field(
        default=None, max_length=8, description="The optional agent features turned on (None: an older agent)."
    )
    endpointsVersion: Token | None = Field(
        default=None,
        max_length=64,
        description="endpoints_version() of the map the agents follow; the reply carries the cluster's map only when "
        "it differs (None: an older agent, told only when its cluster is in a private link scope).",
    )
    configurationAgents: list[Token] | None = Field(
        default=None,
        max_length=4,
        description="The cluster's agents that act on its configuration (extension-manager, config-agent): known "
        "from the beat that makes the cluster Connected, before their own first poll (None: an older agent).",
    )


class HeartbeatReply(BaseModel):
    connectivityStatus: str
    heartbeatSeconds: float = Field(description="When the server wants the next beat.")
    desiredAgentVersion: str | None = None
    agentAutoUpgrade: str = "Enabled"
    targetAgentVersion: str | None = Field(
        default=None, description="The agent version this cluster should run (None: stay on the running one)."
    )

    # ---- private link (issue 13) ----
    endpoints: ServiceEndpoints | None = Field(
        default=None,
        description="Where the agents reach each service now (a private link scope's private names, or the public "
        "ones), sent when it differs from the map the beat says it follows. None: keep following that map.",
    )
    endpointsVersion: str | None = Field(default=None, description="endpoints_version() of ``endpoints``.")


# ---- gateway and proxy (issue 14) ---------------------------------------------------------------------------------
# Where the agents' outbound connections go. arc-proxy asks for it at every heartbeat interval (through itself, so
# behind the enterprise proxy too); a cluster moved onto or off a gateway, or given new proxy settings, follows
# within one interval, with no re-onboarding.
GATEWAY_NETWORK_PATH = "/gw/v1/network"


class AgentNetwork(BaseModel):
    gateway: str | None = Field(default=None, description="host:port of the cluster's gateway (None: no gateway).")
    gatewayResourceId: str | None = None
    httpsProxy: str | None = Field(default=None, description="The enterprise proxy (may carry basic-auth).")
    httpProxy: str | None = None
    noProxy: str | None = Field(default=None, description="--proxy-skip-range: reached directly.")
    proxyCert: str | None = Field(default=None, description="PEM CA of a TLS-inspecting proxy (outer hop only).")
