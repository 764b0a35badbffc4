"""Certificates of private endpoint forwarders: a CA of their own under ``<data-dir>/tls``, one client
certificate per endpoint naming it (URI SAN ``halyard-endpoint:<endpoint resource id>``). Only the ingress trusts
this CA, and only for the endpoint a certificate names (decision 011)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from halyard.core.pki import cert_to_pem, create_ca, key_to_pem, load_key, new_ec_key

URI_PREFIX = "halyard-endpoint:"
VALID_DAYS = 365


def ca_files(data_dir: Path) -> tuple[Path, Path]:
    return data_dir / "tls" / "endpoint-ca.pem", data_dir / "tls" / "endpoint-ca.key"


def ensure_ca(data_dir: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert_path, key_path = ca_files(data_dir)
    if cert_path.exists() and key_path.exists():
        key = load_key(key_path.read_bytes())
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return key, x509.load_pem_x509_certificate(cert_path.read_bytes())
    cert_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key, cert = create_ca("Halyard private endpoint CA")
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    key_path.write_bytes(key_to_pem(key))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert_to_pem(cert))
    return key, cert


def issue(data_dir: Path, endpoint_id: str, now: dt.datetime | None = None) -> tuple[bytes, bytes, bytes]:
    """A new key and client certificate for one endpoint, and the endpoint CA's certificate (PEMs)."""
    ca_key, ca_cert = ensure_ca(data_dir)
    now = now or dt.datetime.now(dt.UTC)
    key = new_ec_key()
    name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Halyard"),
                      x509.NameAttribute(NameOID.COMMON_NAME, "private endpoint forwarder")])  # fmt: skip
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(URI_PREFIX + endpoint_id)]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key_to_pem(key), cert_to_pem(cert), cert_to_pem(ca_cert)


def endpoint_of(der: bytes | None) -> str | None:
    """The endpoint a (verified) peer certificate names; None when it names none."""
    if not der:
        return None
    try:
        sans = x509.load_der_x509_certificate(der).extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except (ValueError, x509.ExtensionNotFound):
        return None
    uris = [u for u in sans.value.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith(URI_PREFIX)]
    return uris[0][len(URI_PREFIX) :] if len(uris) == 1 else None
