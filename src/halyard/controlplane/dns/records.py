"""The private zones and their A records from the store, as ``answers.Zones``, refreshed at most once a second."""

from __future__ import annotations

import time

from sqlalchemy import select

from halyard.controlplane.arm.paths import ResourceId
from halyard.controlplane.dns.answers import Zones
from halyard.store import Database
from halyard.store.models import Resource

ZONES = "microsoft.network/privatednszones"
RECORDS = "microsoft.network/privatednszones/a"
LINKS = "microsoft.network/privatednszones/virtualnetworklinks"
REFRESH_SECONDS = 1.0


async def load(db: Database, virtual_network: str | None = None) -> Zones:
    """Every zone (or those linked to one virtual network, as Azure resolves a zone only where it is linked)."""
    async with db.session() as session:
        zones = (await session.scalars(select(Resource).where(Resource.type_key == ZONES))).all()
        keys = {z.id_key for z in zones}
        if virtual_network is not None:
            links = (await session.scalars(select(Resource).where(Resource.type_key == LINKS))).all()
            wanted = virtual_network.lower()
            keys = {
                link.parent_key
                for link in links
                if link.parent_key and (link.properties.get("virtualNetwork") or {}).get("id", "").lower() == wanted
            }
        records = (await session.scalars(select(Resource).where(Resource.type_key == RECORDS))).all()
    names = {z.id_key: z.name for z in zones if z.id_key in keys}
    entries = []
    for record in records:
        zone = names.get(record.parent_key or "")
        if zone is None:
            continue
        fqdn = zone if record.name == "@" else f"{record.name}.{zone}"
        addresses = [r["ipv4Address"] for r in record.properties.get("aRecords") or []]
        entries.append((fqdn, addresses, int(record.properties.get("ttl", 3600))))
    return Zones.build(names.values(), entries)


class ZoneCache:
    def __init__(self, db: Database, virtual_network: str | None = None) -> None:
        self._db = db
        self._vnet = str(ResourceId.parse(virtual_network)) if virtual_network else None
        self._zones = Zones()
        self._at = float("-inf")

    async def zones(self) -> Zones:
        if time.monotonic() - self._at >= REFRESH_SECONDS:
            self._zones = await load(self._db, self._vnet)
            self._at = time.monotonic()
        return self._zones
