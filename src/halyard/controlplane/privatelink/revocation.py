"""Which forwarder certificates the endpoint ingress accepts: those on record (``halyard endpoint certificate``
records each it issues) and not revoked. Deleting a private endpoint revokes its certificates in the deleting
transaction, so from that commit on its forwarder cannot connect, and an endpoint made again under the same name
does not inherit them.

The ingress asks once per forwarder connection. Accepted serials are kept while nothing in ``resources`` changes
(every endpoint deletion is such a change): enforcement's generation, which moves on this replica's commits at once
and on other replicas' through PostgreSQL ``NOTIFY`` (a replica not listening reads the store every time).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from cryptography import x509
from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.agentfacing.enforcement import Enforcement
from halyard.store import Database
from halyard.store.models import EndpointCertificate

MAX_KEPT = 10_000  # accepted certificates kept per replica (one per forwarder certificate in use)


def serial_of(certificate: x509.Certificate) -> str:
    return format(certificate.serial_number, "x")


def record(session: AsyncSession, endpoint_id: str, certificate: x509.Certificate, now: dt.datetime) -> None:
    """Put a newly issued certificate on record, in the caller's transaction."""
    session.add(
        EndpointCertificate(
            serial=serial_of(certificate),
            endpoint_key=endpoint_id.lower(),
            issued_at=now,
            not_after=certificate.not_valid_after_utc,
            revoked_at=None,
        )
    )


async def revoke(session: AsyncSession, endpoint_id: str, now: dt.datetime) -> None:
    """Revoke every certificate of the endpoint, in the caller's transaction (the endpoint's deletion)."""
    await session.execute(
        update(EndpointCertificate)
        .where(EndpointCertificate.endpoint_key == endpoint_id.lower(), EndpointCertificate.revoked_at.is_(None))
        .values(revoked_at=now)
    )


class Revocations:
    """The ingress's check of a forwarder's (verified) certificate."""

    def __init__(self, db: Database, enforcement: Enforcement) -> None:
        self._db = db
        self._enforcement = enforcement
        self._accepted: set[bytes] = set()  # DER of certificates accepted at ``_generation``
        self._generation = -1

    def on_change(self, follower: Callable[[], None]) -> None:
        """Call ``follower`` when a certificate may have been revoked (any commit to ``resources`` heard)."""
        self._enforcement.on_change(follower)

    async def refusal(self, der: bytes, endpoint: str) -> str | None:
        """Why a connection with this certificate (naming ``endpoint``) is refused, or None to accept it."""
        generation = self._enforcement.generation
        cacheable = self._enforcement.cacheable
        if cacheable and generation == self._generation and der in self._accepted:
            return None  # kept by the certificate's bytes: no parsing on a forwarder's every new connection
        serial = serial_of(x509.load_der_x509_certificate(der))
        async with self._db.session() as session:
            row = await session.get(EndpointCertificate, serial)
        if row is None or row.endpoint_key != endpoint.lower():
            return (
                f"certificate {serial} of endpoint {endpoint[:300]} is not on record (not issued by this control "
                "plane, or before it kept them): issue one with `halyard endpoint certificate`"
            )
        if row.revoked_at is not None:
            return (
                f"certificate {serial} of endpoint {endpoint[:300]} was revoked at "
                f"{row.revoked_at.isoformat(timespec='seconds')} (its private endpoint was deleted)"
            )
        if cacheable and generation == self._enforcement.generation:  # nothing changed while reading
            if generation != self._generation or len(self._accepted) >= MAX_KEPT:
                self._accepted = set()
                self._generation = generation
            self._accepted.add(der)
        return None
