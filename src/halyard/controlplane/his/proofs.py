"""Proof of possession: the JWT an agent signs to ask for a certificate, checked without any I/O."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from halyard.api.agents import PROOF_ISSUER, PROOF_LIFETIME_SECONDS
from halyard.core.errors import Unauthenticated

ALGORITHMS = ["ES256", "ES384", "RS256", "PS256"]


def invalid_proof() -> Unauthenticated:
    """What any proof that does not prove possession of this cluster's key is told (one answer for every cause)."""
    return Unauthenticated(
        "The proof of possession is not valid for this cluster: it must be signed with the cluster's onboarding key "
        "or current certificate key.",
        code="InvalidProof",
    )


def presented_certificate(proof: str) -> x509.Certificate | None:
    """The certificate a renewal proof carries in its ``x5c`` header, or None for an onboarding-key proof."""
    try:
        header = jwt.get_unverified_header(proof)
    except jwt.PyJWTError:
        raise Unauthenticated("The proof is not a valid JWT.", code="InvalidProof") from None
    chain = header.get("x5c")
    if not chain:
        return None
    try:
        return x509.load_der_x509_certificate(base64.b64decode(chain[0]))
    except (ValueError, TypeError, IndexError):
        raise Unauthenticated("The proof's x5c certificate cannot be read.", code="InvalidProof") from None


def verify_proof(
    proof: str, key: PublicKeyTypes, *, audience: str | list[str], resource_id: str, digest: str, now: dt.datetime
) -> dict[str, Any]:
    """The proof's claims if ``key`` signed it for this URL (one of these), resource and CSR, and it is fresh."""
    bad = invalid_proof()
    try:
        claims: dict[str, Any] = jwt.decode(
            proof,
            key,  # type: ignore[arg-type]
            algorithms=ALGORITHMS,
            audience=audience,
            issuer=PROOF_ISSUER,
            # Time is checked below against the injected clock.
            options={
                "verify_exp": False,
                "verify_iat": False,
                "verify_nbf": False,
                "require": ["exp", "iat", "sub", "jti"],
            },
        )
    except jwt.PyJWTError:
        raise bad from None
    if str(claims["sub"]).lower() != resource_id.lower() or claims.get("csr") != digest:
        raise bad
    stamp = now.timestamp()
    if not (claims["iat"] - 60 <= stamp <= claims["exp"]) or claims["exp"] - claims["iat"] > PROOF_LIFETIME_SECONDS:
        raise Unauthenticated("The proof of possession has expired or lives too long.", code="InvalidProof")
    return claims
