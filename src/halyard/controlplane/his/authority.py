"""The cluster CA: created once, kept sealed in the store (so every replica issues and verifies alike)."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from sqlalchemy import select

from halyard.core.clock import Clock
from halyard.core.pki import cert_to_pem, create_ca, key_to_pem, load_key
from halyard.core.sealing import Sealer
from halyard.store import Database
from halyard.store.models import ClusterAuthority

CA_VALIDITY_DAYS = 3650
# Certificates start a minute in the past so a cluster whose clock lags a little can still use a fresh one.
CLOCK_SKEW = dt.timedelta(seconds=60)


@dataclass(frozen=True)
class _Loaded:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    cert: x509.Certificate


class CertificateAuthority:
    def __init__(self, db: Database, sealer: Sealer, clock: Clock) -> None:
        self._db = db
        self._sealer = sealer
        self._clock = clock
        self._ca: _Loaded | None = None

    async def ensure(self) -> None:
        """Load the CA, creating it on the very first start. Replicas racing here all settle on the oldest row."""
        if self._ca is not None:
            return
        async with self._db.session() as session:
            row = await session.scalar(select(ClusterAuthority).order_by(ClusterAuthority.created_at).limit(1))
        if row is None:
            now = self._clock.now()
            key, cert = create_ca("Halyard cluster identity CA", valid_days=CA_VALIDITY_DAYS, now=now)
            async with self._db.transaction() as session:
                session.add(
                    ClusterAuthority(
                        id=str(uuid.uuid4()),
                        sealed_private_key=self._sealer.seal(key_to_pem(key)),
                        certificate_pem=cert_to_pem(cert).decode(),
                        created_at=now,
                        not_after=cert.not_valid_after_utc,
                    )
                )
            async with self._db.session() as session:
                row = await session.scalar(select(ClusterAuthority).order_by(ClusterAuthority.created_at).limit(1))
        assert row is not None
        self._ca = _Loaded(
            load_key(self._sealer.unseal(row.sealed_private_key)),
            x509.load_pem_x509_certificate(row.certificate_pem.encode()),
        )

    @property
    def _loaded(self) -> _Loaded:
        if self._ca is None:
            raise RuntimeError("the cluster CA is not loaded (CertificateAuthority.ensure was not awaited)")
        return self._ca

    @property
    def certificate_pem(self) -> str:
        return cert_to_pem(self._loaded.cert).decode()

    def issue(
        self, public_key: CertificateIssuerPublicKeyTypes, *, client_id: str, resource_id: str, lifetime: dt.timedelta
    ) -> x509.Certificate:
        """A client certificate naming the cluster identity (CN = client id) and its resource (URI SAN)."""
        now = self._clock.now()
        ca = self._loaded
        return (
            x509.CertificateBuilder()
            .subject_name(
                x509.Name(
                    [
                        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Halyard connected clusters"),
                        x509.NameAttribute(NameOID.COMMON_NAME, client_id),
                    ]
                )
            )
            .issuer_name(ca.cert.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - CLOCK_SKEW)
            .not_valid_after(now + lifetime)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(_resource_uri(resource_id))]),
                critical=False,
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),
                critical=False,
            )
            .sign(ca.key, hashes.SHA256())
        )

    def verify(self, cert: x509.Certificate) -> str | None:
        """The client id a certificate names if this CA signed it and it is within its validity; None otherwise."""
        ca = self._loaded
        try:
            cert.verify_directly_issued_by(ca.cert)
        except (InvalidSignature, ValueError, TypeError):
            return None
        now = self._clock.now()
        if not (cert.not_valid_before_utc <= now < cert.not_valid_after_utc):
            return None
        names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(names[0].value) if names else None


def _resource_uri(resource_id: str) -> str:
    return "halyard:" + resource_id.lower()
