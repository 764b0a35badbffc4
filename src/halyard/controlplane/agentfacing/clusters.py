"""The connected cluster behind a cluster identity, remembered per process."""

from __future__ import annotations

from sqlalchemy import select

from halyard.store import Database
from halyard.store.models import ClusterIdentity

MAX_REMEMBERED = 100_000  # clusters whose identity → resource id is remembered (a few MB at most)


class ClusterOfIdentity:
    """The connected cluster behind a cluster identity's object id. An identity is bound to one cluster for life
    (deleting the cluster deletes the identity, and a new onboarding makes a new one), so the answer is kept."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self._known: dict[str, str] = {}

    async def resolve(self, object_id: str) -> str | None:
        known = self._known.get(object_id)
        if known is not None:
            return known
        async with self._db.session() as session:
            resource_id = await session.scalar(
                select(ClusterIdentity.resource_id).where(ClusterIdentity.principal_id == object_id)
            )
        if resource_id is not None:
            if len(self._known) >= MAX_REMEMBERED:
                self._known.clear()
            self._known[object_id] = resource_id
        return resource_id
