"""Pieces of the proof-of-possession format both sides compute the same way."""

from __future__ import annotations

import base64
import hashlib

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes


def csr_digest(csr: x509.CertificateSigningRequest) -> str:
    """What a proof names to bind itself to one CSR: base64url SHA-256 of the CSR's DER."""
    der = csr.public_bytes(serialization.Encoding.DER)
    return base64.urlsafe_b64encode(hashlib.sha256(der).digest()).rstrip(b"=").decode()


def certificate_thumbprint(cert: x509.Certificate) -> str:
    """A certificate's ``x5t#S256``: base64url SHA-256 of its DER, as an agent names its key in client assertions."""
    return (
        base64.urlsafe_b64encode(hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).digest())
        .rstrip(b"=")
        .decode()
    )


def signing_algorithm(key: PrivateKeyTypes) -> str:
    """The JWS algorithm for a key: ES256/ES384 for EC, RS256 for RSA."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return "ES384" if key.curve.name == "secp384r1" else "ES256"
    if isinstance(key, rsa.RSAPrivateKey):
        return "RS256"
    raise ValueError(f"unsupported key type {type(key).__name__}")
