"""Keys and X.509 certificates: the CA a server generates on first start, and the certificates it issues."""

from __future__ import annotations

import datetime as dt
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import CertificateIssuerPrivateKeyTypes, PublicKeyTypes
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from halyard.core.files import write_private

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


def new_ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def key_to_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def cert_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_key(pem: bytes) -> PrivateKey:
    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError("only EC and RSA private keys are supported")
    return key


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Halyard"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def create_ca(
    common_name: str, *, valid_days: int = 3650, now: dt.datetime | None = None
) -> tuple[PrivateKey, x509.Certificate]:
    """A self-signed CA certificate able to sign server and client certificates."""
    now = now or dt.datetime.now(dt.UTC)
    key = new_ec_key()
    subject = _name(common_name)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def issue_certificate(
    ca_key: CertificateIssuerPrivateKeyTypes,
    ca_cert: x509.Certificate,
    public_key: PublicKeyTypes,
    common_name: str,
    *,
    valid_for: dt.timedelta,
    dns_names: list[str] | None = None,
    ip_addresses: list[str] | None = None,
    server: bool = False,
    client: bool = False,
    now: dt.datetime | None = None,
) -> x509.Certificate:
    """A leaf certificate for ``public_key`` signed by the CA."""
    now = now or dt.datetime.now(dt.UTC)
    usages = ([ExtendedKeyUsageOID.SERVER_AUTH] if server else []) + (
        [ExtendedKeyUsageOID.CLIENT_AUTH] if client else []
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_cert.subject)
        .public_key(public_key)  # type: ignore[arg-type]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + valid_for)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
    )
    if usages:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    alt: list[x509.GeneralName] = [x509.DNSName(n) for n in dns_names or []]
    alt += [x509.IPAddress(ipaddress.ip_address(a)) for a in ip_addresses or []]
    if alt:
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
    return builder.sign(ca_key, hashes.SHA256())


@dataclass(frozen=True)
class TlsFiles:
    ca_cert: Path
    ca_key: Path
    cert: Path
    key: Path


def ensure_server_tls(directory: Path, common_name: str, dns_names: list[str], ip_addresses: list[str]) -> TlsFiles:
    """The CA and server certificate in ``directory``: generated on first start, reused afterwards.

    The server certificate is reissued when a requested name is missing from it, so changing ``--domain`` or
    ``--host`` just works; the CA (which clients trust) is kept.
    """
    files = TlsFiles(directory / "ca.pem", directory / "ca.key", directory / "server.pem", directory / "server.key")
    if files.ca_cert.exists() and files.ca_key.exists():
        ca_key = load_key(files.ca_key.read_bytes())
        ca_cert = x509.load_pem_x509_certificate(files.ca_cert.read_bytes())
    else:
        ca_key, ca_cert = create_ca(f"{common_name} CA")
        write_private(files.ca_key, key_to_pem(ca_key))
        files.ca_cert.write_bytes(cert_to_pem(ca_cert))
    if files.cert.exists() and files.key.exists() and _covers(files.cert, dns_names, ip_addresses):
        return files
    key = new_ec_key()
    cert = issue_certificate(
        ca_key,
        ca_cert,
        key.public_key(),
        common_name,
        valid_for=dt.timedelta(days=825),
        dns_names=dns_names,
        ip_addresses=ip_addresses,
        server=True,
    )
    write_private(files.key, key_to_pem(key))
    files.cert.write_bytes(cert_to_pem(cert) + cert_to_pem(ca_cert))
    return files


def _covers(cert_path: Path, dns_names: list[str], ip_addresses: list[str]) -> bool:
    cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
    if cert.not_valid_after_utc < dt.datetime.now(dt.UTC) + dt.timedelta(days=30):
        return False
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    have_dns = set(san.get_values_for_type(x509.DNSName))
    have_ip = {str(a) for a in san.get_values_for_type(x509.IPAddress)}
    return set(dns_names) <= have_dns and {str(ipaddress.ip_address(a)) for a in ip_addresses} <= have_ip
