"""Cluster identities: issue and renew cluster certificates, resolve agent callers, revoke on delete."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.api.agents import HIS_CERTIFICATE_PATH, CertificateRequest, CertificateResponse
from halyard.api.proofs import certificate_thumbprint, csr_digest
from halyard.controlplane.agentfacing.arrival import PUBLIC, Arrival
from halyard.controlplane.agentfacing.endpoints import his_url, private_his_url
from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.his.authority import CertificateAuthority
from halyard.controlplane.his.proofs import invalid_proof, presented_certificate, verify_proof
from halyard.controlplane.identity.principals import THUMBPRINT_HINT, spend_once
from halyard.controlplane.identity.throttle import LoginThrottle
from halyard.controlplane.kubernetes.connectedclusters import parse_agent_public_key
from halyard.core.clock import Clock, isoformat
from halyard.core.errors import AuthorizationFailed, InvalidRequest, TooManyRequests, Unauthenticated
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import ClusterIdentity, Credential, Principal, Resource, RoleAssignment, Subscription
from halyard.store.reports import Report, put_reports

if TYPE_CHECKING:
    from halyard.controlplane.agentfacing.enforcement import Enforcement

CLUSTER_TYPE = "microsoft.kubernetes/connectedclusters"
PRINCIPAL_KIND = "Cluster"
REPORTER = "his"  # what the identity service reports on a connected cluster: its certificate's expiry
# Certificates one cluster may be issued: an agent asks once at onboarding and once per renewal (from half its
# 90-day lifetime), so ten at once and one more every six minutes never slows an honest cluster, and bounds one that
# piles up requests (2,000 in 12 s were issued before). Per replica, in memory.
ISSUE_BURST = 10
ISSUE_REFILL_SECONDS = 360.0


@dataclass(frozen=True)
class LiveIdentity:
    resource_key: str
    cert_not_after: dt.datetime | None
    # The resource's etag: every user write changes it (heartbeats do not), so whoever caches what the resource
    # said can tell it is stale. None when the resource is gone.
    resource_etag: str | None = None


class ClusterIdentities:
    def __init__(self, db: Database, clock: Clock, settings: Settings, authority: CertificateAuthority) -> None:
        self._db = db
        self._clock = clock
        self._settings = settings
        self.authority = authority
        # A token bucket of issuances per cluster (the login throttle's bucket, every request counted).
        self._issuance = LoginThrottle(clock, burst=ISSUE_BURST, refill_seconds=ISSUE_REFILL_SECONDS)

    @property
    def lifetime(self) -> dt.timedelta:
        return dt.timedelta(seconds=self._settings.cluster_certificate_lifetime_seconds)

    async def issue(
        self, request: CertificateRequest, arrival: Arrival = PUBLIC, enforcement: Enforcement | None = None
    ) -> CertificateResponse:
        """A certificate for the CSR's key, if the proof shows possession of the onboarding or current cluster key.

        The onboarding key works until a certificate of this identity has lapsed: an expired cluster stays expired
        (delete and onboard again), as in Azure Arc. Each proof is single-use (its ``jti``), each cluster gets at
        most :data:`ISSUE_BURST` certificates at once, and holds at most two keys: its current and the new one.
        Private link (``enforcement``): once the proof is verified, the cluster is served only through the way its
        scope allows (the 403 of every agent-facing service); the proof may name the scope's private ``his`` URL.
        """
        rid = _cluster_id(request.resourceId)
        # A cluster past its allowance is answered before any signature is checked (the check is most of the cost);
        # only a verified request spends the allowance, so nobody else can use it up.
        self._check_allowance(rid.key, spend=False)
        csr = _parse_csr(request.csr)
        now = self._clock.now()
        async with self._db.session() as session:
            resource = await session.get(Resource, rid.key)
            identity = await session.get(ClusterIdentity, rid.key)
        gone = resource is None or resource.provisioning_state in ("Deleting", "Failed")
        presented = presented_certificate(request.proof)
        if presented is not None:
            client_id = self.authority.verify(presented)
            if client_id is None or identity is None or client_id != identity.app_id:
                raise Unauthenticated(
                    "The presented cluster certificate is not valid (expired, revoked, or from another cluster).",
                    code="InvalidClusterCertificate",
                )
            proof_key = presented.public_key()
        elif resource is None or gone:
            # Before any proof is checked, a missing cluster reads as a bad proof: an anonymous caller must not
            # learn which clusters exist.
            raise invalid_proof()
        else:
            proof_key = parse_agent_public_key(str(resource.properties.get("agentPublicKeyCertificate", "")))
        # The facts of the cluster the proof claims are read first (told to nobody until the proof is verified):
        # an agent following its scope's private map signs for the private his URL.
        facts = await enforcement.facts(rid.key, arrival) if enforcement is not None else None
        audiences = [his_url(self._settings) + HIS_CERTIFICATE_PATH]
        if facts is not None and facts.scope_uuid:
            audiences.append(private_his_url(self._settings, facts.scope_uuid) + HIS_CERTIFICATE_PATH)
        claims = verify_proof(
            request.proof,
            proof_key,
            audience=audiences,
            resource_id=request.resourceId,
            digest=csr_digest(csr),
            now=now,
        )
        if resource is None or gone:  # a holder of the cluster's certificate may know
            raise Unauthenticated(
                f"The connected cluster '{request.resourceId}' does not exist (it may have been deleted).",
                code="ClusterNotFound",
            )
        if enforcement is not None and facts is not None:
            await enforcement.judge(resource.id, arrival, facts)  # private link: 403 naming the rule
        self._check_allowance(rid.key, spend=True)
        expires = dt.datetime.fromtimestamp(float(claims["exp"]), dt.UTC)
        if not await spend_once(self._db, f"his:{claims['jti']}", expires, now):
            raise Unauthenticated("The proof of possession was already used.", code="InvalidProof")
        if identity is not None and identity.cert_not_after is not None and identity.cert_not_after <= now:
            raise AuthorizationFailed(
                f"The cluster certificate expired at {isoformat(identity.cert_not_after)}. Delete the connected "
                "cluster and onboard it again.",
                code="ClusterCertificateExpired",
            )
        async with self._db.transaction() as session:
            identity = await session.get(ClusterIdentity, rid.key) or await self._create(session, resource, now)
            cert = self.authority.issue(
                csr.public_key(),  # type: ignore[arg-type]
                client_id=identity.app_id,
                resource_id=resource.id,
                lifetime=self.lifetime,
            )
            not_after = cert.not_valid_after_utc
            # An identity keeps two keys: the newest it had (its agents may still sign with it until they hold the
            # new certificate) and the new one. Every older key goes, so the keys of an identity are bounded
            # however many certificates it asks for.
            keys = await session.scalars(
                select(Credential)
                .where(Credential.principal_id == identity.principal_id, Credential.kind == "publicKey")
                .order_by(Credential.created_at.desc(), Credential.id)
            )
            for old in list(keys.all())[1:]:
                await session.delete(old)
            session.add(
                Credential(
                    id=str(uuid.uuid4()),
                    principal_id=identity.principal_id,
                    kind="publicKey",
                    public_key_pem=csr.public_key()
                    .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
                    .decode(),
                    hint=certificate_thumbprint(cert)[:THUMBPRINT_HINT],  # what agents' assertions name (x5t#S256)
                    created_at=now,
                    expires_at=not_after,
                )
            )
            identity.cert_serial = format(cert.serial_number, "x")
            identity.cert_not_after = not_after
            identity.certificates_issued += 1
            identity.renewed_at = now
            expiry = {"managedIdentityCertificateExpirationTime": isoformat(not_after)}
            await put_reports(session, [Report(rid.key, REPORTER, expiry, now)])
        return CertificateResponse(
            certificate=cert.public_bytes(serialization.Encoding.PEM).decode(),
            caCertificate=self.authority.certificate_pem,
            clientId=identity.app_id,
            tenantId=identity.tenant_id,
            tokenEndpoint=f"{self._settings.base_url}/{identity.tenant_id}/oauth2/v2.0/token",
            audience=self._settings.agent_audience,
            issuedAt=now,
            notAfter=not_after,
        )

    def _check_allowance(self, key: str, *, spend: bool) -> None:
        wait = self._issuance.begin(key, reserve=spend)
        if wait:
            raise TooManyRequests(
                f"Too many certificates were requested for this cluster; try again in {wait} seconds.",
                code="TooManyCertificateRequests",
                headers={"Retry-After": str(wait)},
            )

    async def _create(self, session: AsyncSession, resource: Resource, now: dt.datetime) -> ClusterIdentity:
        subscription = await session.get(Subscription, resource.subscription_id)
        if subscription is None:
            raise Unauthenticated("The connected cluster's subscription no longer exists.", code="ClusterNotFound")
        # The SystemAssigned identity's principalId is the cluster principal's object id, as in Azure.
        object_id = str((resource.identity or {}).get("principalId") or uuid.uuid4())
        if await session.get(Principal, object_id) is not None:
            object_id = str(uuid.uuid4())
        principal = Principal(
            id=object_id,
            app_id=str(uuid.uuid4()),
            tenant_id=subscription.tenant_id,
            display_name=resource.name,
            kind=PRINCIPAL_KIND,
            resource_id=resource.id,
            created_at=now,
        )
        session.add(principal)
        await session.flush()
        identity = ClusterIdentity(
            resource_key=resource.id_key,
            resource_id=resource.id,
            principal_id=principal.id,
            app_id=principal.app_id,
            tenant_id=principal.tenant_id,
            onboarding_key=str(resource.properties.get("agentPublicKeyCertificate", "")),
            certificates_issued=0,
            created_at=now,
        )
        session.add(identity)
        await session.flush()
        return identity

    async def live(self, object_ids: set[str]) -> dict[str, LiveIdentity]:
        """The identities behind several tokens' object ids and their resources' etags, with one query (absent:
        revoked)."""
        async with self._db.session() as session:
            rows = await session.execute(
                select(
                    ClusterIdentity.principal_id,
                    ClusterIdentity.resource_key,
                    ClusterIdentity.cert_not_after,
                    Resource.etag,
                )
                .outerjoin(Resource, Resource.id_key == ClusterIdentity.resource_key)
                .where(ClusterIdentity.principal_id.in_(object_ids))
            )
            return {row.principal_id: LiveIdentity(row.resource_key, row.cert_not_after, row.etag) for row in rows}

    @staticmethod
    def problem(identity: ClusterIdentity | LiveIdentity | None, now: dt.datetime) -> Unauthenticated | None:
        """Why an identity may not act now (revoked, expired), or None."""
        if identity is None:
            return Unauthenticated(
                "The cluster identity behind this token was revoked (the connected cluster was deleted).",
                code="ClusterIdentityRevoked",
            )
        if identity.cert_not_after is None or identity.cert_not_after <= now:
            return Unauthenticated(
                "The cluster certificate has expired. Delete the connected cluster and onboard it again.",
                code="ClusterCertificateExpired",
            )
        return None

    async def revoke(self, session: AsyncSession, resource_id: str) -> None:
        """Forget the cluster's identity, in the caller's transaction (the cluster's deletion): its principal, keys
        and certificates stop working once that commits. Idempotent."""
        identity = await session.get(ClusterIdentity, resource_id.lower())
        if identity is None:
            return
        await session.execute(delete(Credential).where(Credential.principal_id == identity.principal_id))
        await session.execute(delete(RoleAssignment).where(RoleAssignment.principal_id == identity.principal_id))
        await session.execute(delete(Principal).where(Principal.id == identity.principal_id))
        await session.delete(identity)


def _parse_csr(pem: str) -> x509.CertificateSigningRequest:
    bad = InvalidRequest("csr must be a PEM certificate signing request.", code="InvalidCsr", target="csr")
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except ValueError:
        raise bad from None
    if not csr.is_signature_valid:
        raise InvalidRequest("The CSR's signature does not match its key.", code="InvalidCsr", target="csr")
    key = csr.public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048:
        return csr
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in ("secp256r1", "secp384r1"):
        return csr
    raise InvalidRequest("The CSR key must be EC P-256/P-384 or RSA of 2048 bits or more.", code="InvalidCsr")


def _cluster_id(resource_id: str) -> ResourceId:
    rid = ResourceId.parse(resource_id)
    if rid.full_type.lower() != CLUSTER_TYPE:
        raise InvalidRequest("resourceId must name a Microsoft.Kubernetes/connectedClusters resource.")
    return rid
