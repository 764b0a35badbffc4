"""The gateway's audit: one row per connection (time, cluster, gateway, destination, bytes each way, duration,
verdict, reason), written by the gateway service only, read by ``arcgateway logs`` and the management API; no route
writes or erases a row (retention prunes them). The table is this module's (migration 0005)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Integer, String, delete, func, select
from sqlalchemy.orm import Mapped, mapped_column

from halyard.store import Database
from halyard.store.models import Base

ALLOWED = "allowed"
DENIED = "denied"


class GatewayAudit(Base):
    __tablename__ = "gateway_audit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[dt.datetime]
    gateway_key: Mapped[str] = mapped_column(String(1024))
    cluster_id: Mapped[str | None] = mapped_column(String(1024))
    destination: Mapped[str] = mapped_column(String(300))
    bytes_up: Mapped[int] = mapped_column(BigInteger)
    bytes_down: Mapped[int] = mapped_column(BigInteger)
    duration_ms: Mapped[int] = mapped_column(Integer)
    verdict: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(300))
    client: Mapped[str] = mapped_column(String(64))


@dataclass(frozen=True)
class Record:
    at: dt.datetime
    gateway_id: str
    cluster_id: str | None
    destination: str
    bytes_up: int
    bytes_down: int
    duration_ms: int
    verdict: str
    reason: str
    client: str

    def body(self) -> dict[str, Any]:
        return {
            "time": self.at.isoformat().replace("+00:00", "Z"),
            "gatewayId": self.gateway_id,
            "clusterId": self.cluster_id,
            "destination": self.destination,
            "bytesUp": self.bytes_up,
            "bytesDown": self.bytes_down,
            "durationMs": self.duration_ms,
            "verdict": self.verdict,
            "reason": self.reason,
            "client": self.client,
        }


class AuditLog:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def write(self, records: Sequence[Record]) -> None:
        if not records:
            return
        async with self._db.transaction() as session:
            session.add_all(
                GatewayAudit(
                    at=r.at,
                    gateway_key=r.gateway_id.lower(),
                    cluster_id=r.cluster_id,
                    destination=r.destination[:300],
                    bytes_up=r.bytes_up,
                    bytes_down=r.bytes_down,
                    duration_ms=r.duration_ms,
                    verdict=r.verdict,
                    reason=r.reason[:300],
                    client=r.client[:64],
                )
                for r in records
            )

    async def read(
        self,
        gateway_id: str,
        *,
        cluster_id: str | None = None,
        since: dt.datetime | None = None,
        verdict: str | None = None,
        after_id: int = 0,
        limit: int = 1000,
    ) -> list[tuple[int, Record]]:
        query = select(GatewayAudit).where(GatewayAudit.gateway_key == gateway_id.lower(), GatewayAudit.id > after_id)
        if cluster_id:
            query = query.where(func.lower(GatewayAudit.cluster_id) == cluster_id.lower())  # ARM ids: any case
        if since is not None:
            query = query.where(GatewayAudit.at >= since)
        if verdict:
            query = query.where(GatewayAudit.verdict == verdict)
        async with self._db.session() as session:
            rows = (await session.scalars(query.order_by(GatewayAudit.id).limit(limit))).all()
        return [
            (
                row.id,
                Record(
                    row.at, gateway_id, row.cluster_id, row.destination, row.bytes_up, row.bytes_down,
                    row.duration_ms, row.verdict, row.reason, row.client,
                ),
            )
            for row in rows
        ]  # fmt: skip

    async def prune(self, before: dt.datetime) -> None:
        """Retention: rows older than ``before`` go."""
        async with self._db.transaction() as session:
            await session.execute(delete(GatewayAudit).where(GatewayAudit.at < before))
