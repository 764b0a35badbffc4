"""identity-operator: turns the onboarding key into a cluster certificate from ``his``, renews it from half-life,
and mints the short-lived, audience-bound tokens the other agents use.

Desired state: the ``halyard-identity`` Secret holds a certificate that is not yet due for renewal. The cluster
certificate's private key is generated here and only ever written to that Secret: it never leaves the cluster.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import time
import uuid
from dataclasses import dataclass

import httpx
import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from cryptography.x509.oid import NameOID
from lightkube import AsyncClient
from lightkube.core.exceptions import ApiError
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.core_v1 import Secret

from halyard.agent import handoff
from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.controlplane import ControlPlaneError, send
from halyard.agent.endpoints import LiveEndpoints
from halyard.agent.metrics import AgentMetrics
from halyard.api import cluster as names
from halyard.api.agents import (
    ENDPOINTS_INFO,
    HIS_CERTIFICATE_PATH,
    PROOF_ISSUER,
    CertificateRequest,
    CertificateResponse,
    ServiceEndpoints,
)
from halyard.api.proofs import csr_digest, signing_algorithm
from halyard.core.clock import Clock
from halyard.core.pki import key_to_pem, load_key

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
ASSERTION_LIFETIME = 300
# How long a published token is announced to last at least (tokens live an hour; reconciles come every 5 minutes).
TOKEN_PUBLISH_HORIZON = 600
# Re-read the Secret at least this often, so a certificate replaced behind our back is noticed.
MAX_RECHECK_SECONDS = 300.0


@dataclass(frozen=True)
class Issued:
    """The cluster certificate, its key and what his said about it."""

    key: PrivateKeyTypes
    certificate: x509.Certificate
    response: CertificateResponse

    def renew_at(self, fraction: float) -> dt.datetime:
        issued, not_after = self.response.issuedAt, self.response.notAfter
        return issued + (not_after - issued) * fraction

    def secret_data(self) -> dict[str, str]:
        meta = self.response.model_dump(mode="json", exclude={"certificate"})
        raw = {
            names.KEY_TLS_CERT: self.response.certificate.encode(),
            names.KEY_TLS_KEY: key_to_pem(self.key),  # type: ignore[arg-type]
            names.KEY_ISSUED: json.dumps(meta).encode(),
        }
        return {k: base64.b64encode(v).decode() for k, v in raw.items()}

    @classmethod
    def from_secret(cls, data: dict[str, str]) -> Issued:
        raw = {k: base64.b64decode(v) for k, v in data.items()}
        meta = json.loads(raw[names.KEY_ISSUED])
        response = CertificateResponse.model_validate({**meta, "certificate": raw[names.KEY_TLS_CERT].decode()})
        return cls(
            key=load_key(raw[names.KEY_TLS_KEY]),
            certificate=x509.load_pem_x509_certificate(raw[names.KEY_TLS_CERT]),
            response=response,
        )


class IdentityNotReady(Exception):
    """No cluster certificate yet: the identity operator has not (yet) obtained one."""


class IdentityOperator:
    name = "identity-operator"

    def __init__(
        self,
        kube: AsyncClient,
        http: httpx.AsyncClient,
        config: ClusterConfig,
        clock: Clock,
        metrics: AgentMetrics,
        *,
        renew_fraction: float = 0.5,
        publish: bool = False,
        endpoints: LiveEndpoints | None = None,
    ) -> None:
        self._kube = kube
        self._endpoints = endpoints  # where his and login are now (private link may move them); None: onboarding's
        self._http = http
        self._config = config
        self._clock = clock
        self._metrics = metrics
        self._renew_fraction = renew_fraction
        self._publish = publish
        self._published: str | None = None
        self.issued: Issued | None = None
        self.ready = asyncio.Event()
        self._token: tuple[str, float] | None = None  # (token, monotonic time to refresh)
        self._token_lock = asyncio.Lock()

    async def reconcile(self) -> float:
        """Make sure a certificate not yet due for renewal is held; seconds until the next look."""
        stored = await self._read_secret()
        if stored is not None and (self.issued is None or stored.response.notAfter >= self.issued.response.notAfter):
            self.issued = stored
        now = self._clock.now()
        if self.issued is None or now >= self.issued.renew_at(self._renew_fraction):
            # A still-valid certificate proves the renewal; a lapsed or absent one leaves only the onboarding key.
            current = self.issued if self.issued and now < self.issued.response.notAfter else None
            issued = await self.request_certificate(current)
            await self._write_secret(issued)
            if self.issued is not None:
                self._metrics.certificate_renewals.inc()
            self.issued = issued
            self._token = None
        self._metrics.certificate_expiry.set(self.issued.response.notAfter.timestamp())
        self.ready.set()
        if self._publish:
            await self._publish_token()
        wait = (self.issued.renew_at(self._renew_fraction) - self._clock.now()).total_seconds()
        return max(1.0, min(wait, MAX_RECHECK_SECONDS))

    async def wait_ready(self, timeout: float) -> None:
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
        except TimeoutError:
            raise IdentityNotReady("waiting for the identity operator's cluster certificate") from None

    async def _publish_token(self) -> None:
        """In-cluster: keep a fresh token where resource-sync (another pod) can read it; the key stays here."""
        token = await self.token()
        if token != self._published:
            expires = self._clock.now() + dt.timedelta(seconds=TOKEN_PUBLISH_HORIZON)
            await handoff.publish_token(self._kube, token, expires)
            self._published = token

    async def token(self) -> str:
        """A bearer token for the agent services, minted with the cluster certificate and cached until near expiry."""
        async with self._token_lock:
            if self._token is not None and time.monotonic() < self._token[1]:
                return self._token[0]
            issued = self.issued
            if issued is None:
                raise IdentityNotReady("the cluster has no certificate yet")
            body = await send(
                self._http,
                "POST",
                self._token_url(issued),
                data={
                    "grant_type": "client_credentials",
                    "client_id": issued.response.clientId,
                    "client_assertion_type": ASSERTION_TYPE,
                    "client_assertion": self._assertion(issued),
                    "scope": issued.response.audience.rstrip("/") + "/.default",
                },
            )
            self._metrics.tokens_issued.inc()
            lifetime = float(body.get("expires_in", 300))
            self._token = (str(body["access_token"]), time.monotonic() + lifetime * 0.8)
            return self._token[0]

    def _token_url(self, issued: Issued) -> str:
        """Where to ask for a token: the login service of the map followed now. The assertion's audience stays
        the token endpoint his named (the control plane's own name for it, whichever way the request goes)."""
        if self._endpoints is None:
            return issued.response.tokenEndpoint
        login = self._endpoints.current().login.rstrip("/")
        return f"{login}/{issued.response.tenantId}/oauth2/v2.0/token"

    def forget_token(self) -> None:
        """Drop the cached token (the server refused it): the next call mints a fresh one."""
        self._token = None

    def _assertion(self, issued: Issued) -> str:
        now = int(self._clock.now().timestamp())
        thumbprint = base64.urlsafe_b64encode(issued.certificate.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
        claims = {
            "iss": issued.response.clientId,
            "sub": issued.response.clientId,
            "aud": issued.response.tokenEndpoint,
            "jti": uuid.uuid4().hex,
            "iat": now,
            "nbf": now,
            "exp": now + ASSERTION_LIFETIME,
        }
        return jwt.encode(
            claims,
            issued.key,  # type: ignore[arg-type]
            algorithm=signing_algorithm(issued.key),
            headers={"x5t#S256": thumbprint},
        )

    async def request_certificate(self, current: Issued | None) -> Issued:
        """A new key and a certificate for it from his, proven with ``current`` (renewal) or the onboarding key.
        A private link refusal naming another map (the cluster's scope is private only and this came publicly, as
        the first certificate of a cluster onboarded into such a scope does) is followed once, with a new proof."""
        try:
            return await self._request_certificate(current)
        except ControlPlaneError as exc:
            moved = exc.info(ENDPOINTS_INFO) if exc.status == 403 else None
            if (
                moved is None
                or self._endpoints is None
                or not self._endpoints.set(ServiceEndpoints.model_validate(moved))
            ):
                raise
            return await self._request_certificate(current)

    async def _request_certificate(self, current: Issued | None) -> Issued:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "halyard-cluster")]))
            .sign(key, hashes.SHA256())
        )
        endpoints = self._endpoints.current() if self._endpoints is not None else self._config.endpoints
        url = endpoints.his.rstrip("/") + HIS_CERTIFICATE_PATH
        now = int(self._clock.now().timestamp())
        claims = {
            "iss": PROOF_ISSUER,
            "sub": self._config.resource_id,
            "aud": url,
            "iat": now,
            "exp": now + 120,
            "jti": uuid.uuid4().hex,
            "csr": csr_digest(csr),
        }
        headers: dict[str, object]
        if current is not None:
            signer: PrivateKeyTypes = current.key
            headers = {"x5c": [base64.b64encode(current.certificate.public_bytes(serialization.Encoding.DER)).decode()]}
        elif self._config.onboarding_key is not None:
            signer, headers = self._config.onboarding_key, {"kid": "onboarding"}
        else:
            raise IdentityNotReady("no valid cluster certificate and no onboarding key to obtain one")
        proof = jwt.encode(claims, signer, algorithm=signing_algorithm(signer), headers=headers)  # type: ignore[arg-type]
        request = CertificateRequest(
            resourceId=self._config.resource_id,
            csr=csr.public_bytes(serialization.Encoding.PEM).decode(),
            proof=proof,
        )
        body = await send(self._http, "POST", url, json=request.model_dump(mode="json"))
        response = CertificateResponse.model_validate(body)
        certificate = x509.load_pem_x509_certificate(response.certificate.encode())
        if certificate.public_key() != key.public_key():
            raise ControlPlaneError("his returned a certificate for a different key")
        return Issued(key=key, certificate=certificate, response=response)

    async def _read_secret(self) -> Issued | None:
        try:
            secret = await self._kube.get(Secret, names.IDENTITY_SECRET, namespace=names.NAMESPACE)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise
        try:
            return Issued.from_secret(secret.data or {})
        except (KeyError, ValueError):
            return None  # unreadable: obtain a fresh certificate and overwrite it

    async def _write_secret(self, issued: Issued) -> None:
        secret = Secret(
            metadata=ObjectMeta(
                name=names.IDENTITY_SECRET, namespace=names.NAMESPACE, labels=dict(names.MANAGED_BY_LABEL)
            ),
            type="Opaque",
            data=issued.secret_data(),
        )
        await self._kube.apply(secret, force=True)
