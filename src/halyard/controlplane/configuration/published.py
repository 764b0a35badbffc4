"""Extension types operators publish: a Helm chart per version, on one or more release trains, kept in the store.

Each published version is a row of the generic ``resources`` table outside any subscription (it is no ARM resource:
no routes are generated for it, no listing shows it): its properties name the type, version and trains; the chart
package is in the row's ``sealed`` column (encrypted like every stored blob), read only when an agent fetches it.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import io
import re
import tarfile
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.configuration.builtincharts import builtin_chart, has_chart
from halyard.controlplane.configuration.extensiontypes import ExtensionType, ExtensionTypeCatalog, builtin_catalog
from halyard.controlplane.directory import new_etag
from halyard.core.errors import InvalidRequest, NotFound
from halyard.core.sealing import Sealer
from halyard.store.models import Resource

TYPE_KEY = "halyard.extensions/extensiontypes/versions"
TYPE = "Halyard.Extensions/extensionTypes/versions"
TYPE_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9.-]{0,126}[A-Za-z0-9])?$")
VERSION = re.compile(r"^\d{1,6}\.\d{1,6}\.\d{1,6}([-+][0-9A-Za-z.-]{1,64})?$")
TRAIN = re.compile(r"^[A-Za-z0-9-]{1,32}$")
MAX_CHART_BYTES = 2 * 1024 * 1024


def version_id(type_name: str, version: str) -> str:
    return f"/providers/Halyard.Extensions/extensionTypes/{type_name.lower()}/versions/{version}"


def check_chart(chart: bytes) -> str:
    """The chart's name, once the package is a gzip tar holding ``NAME/Chart.yaml``; InvalidRequest otherwise."""
    if len(chart) > MAX_CHART_BYTES:
        raise InvalidRequest(f"The chart package is larger than {MAX_CHART_BYTES} bytes.", code="ChartTooLarge")
    try:
        with tarfile.open(fileobj=io.BytesIO(chart), mode="r:gz") as tar:
            names = [m.name for m in tar.getmembers() if m.name.count("/") == 1 and m.name.endswith("/Chart.yaml")]
    except (tarfile.TarError, OSError, EOFError):
        raise InvalidRequest("The chart is not a Helm chart package (a .tgz).", code="InvalidChart") from None
    if len(names) != 1:
        raise InvalidRequest("The chart package holds no NAME/Chart.yaml.", code="InvalidChart")
    return names[0].split("/")[0]


async def publish(
    session: AsyncSession,
    sealer: Sealer,
    type_name: str,
    version: str,
    trains: Sequence[str],
    chart: bytes,
    now: dt.datetime,
    by: str,
) -> dict[str, Any]:
    """Publish (or republish) one version of an extension type; the built-in types cannot be shadowed."""
    if not TYPE_NAME.match(type_name):
        raise InvalidRequest(
            "An extension type's name has letters, digits, '.' and '-' (at most 128).", code="InvalidExtensionType"
        )
    if builtin_catalog().find(type_name) is not None:
        raise InvalidRequest(f"'{type_name}' is a built-in extension type.", code="ExtensionTypeIsBuiltIn")
    if not VERSION.match(version):
        raise InvalidRequest("A version is semantic: MAJOR.MINOR.PATCH.", code="InvalidVersion")
    if not trains or any(not TRAIN.match(t) for t in trains):
        raise InvalidRequest("Release trains are 1 to 32 letters, digits or '-'.", code="InvalidReleaseTrain")
    chart_name = check_chart(chart)
    vid = version_id(type_name, version)
    row = await session.get(Resource, vid.lower())
    properties = {
        "extensionType": type_name.lower(),
        "version": version,
        "releaseTrains": sorted({t.lower() for t in trains}),
        "chartName": chart_name,
        "chartDigest": "sha256:" + hashlib.sha256(chart).hexdigest(),
        "chartBytes": len(chart),
    }
    if row is None:
        row = Resource(
            id_key=vid.lower(),
            id=vid,
            subscription_id=None,
            group_key="",
            parent_key=None,
            type_key=TYPE_KEY,
            type=TYPE,
            name=version,
            created_at=now,
            created_by=by,
        )
        session.add(row)
    row.properties = properties
    row.sealed = sealer.seal(chart)
    row.provisioning_state = "Succeeded"
    row.etag = new_etag()
    row.changed_at = now
    row.changed_by = by
    return properties


async def published_versions(session: AsyncSession) -> list[dict[str, Any]]:
    rows = await session.scalars(select(Resource.properties).where(Resource.type_key == TYPE_KEY))
    return [dict(p) for p in rows]


async def catalog_of(session: AsyncSession) -> ExtensionTypeCatalog:
    """The built-in types with every published version (one query, without the chart packages)."""
    catalog = builtin_catalog()
    trains: dict[str, dict[str, list[str]]] = {}
    for props in await published_versions(session):
        for train in props["releaseTrains"]:
            trains.setdefault(props["extensionType"], {}).setdefault(train, []).append(props["version"])
    for name, by_train in trains.items():
        catalog.add(ExtensionType(name, {t: tuple(v) for t, v in by_train.items()}, published=True))
    return catalog


async def chart_of(session: AsyncSession, sealer: Sealer, type_name: str, version: str, *, registry: str) -> bytes:
    """A version's chart package: a built-in type's made here (its images from ``registry``), a published one's
    from the store."""
    builtin = builtin_catalog().find(type_name)
    if builtin is not None and builtin.offers(version) and has_chart(type_name):
        return builtin_chart(builtin.name, version, registry)
    row = await session.get(Resource, version_id(type_name, version).lower())
    if row is None or row.type_key != TYPE_KEY or row.sealed is None:
        raise NotFound(f"Extension type '{type_name}' has no published version '{version}'.", code="ChartNotFound")
    return sealer.unseal(row.sealed)


def decode_chart(text: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except ValueError:
        raise InvalidRequest("properties.chart is the base64 of a Helm chart package.", code="InvalidChart") from None


def chart_path(type_name: str, version: str) -> str:
    """Where the cluster's agents fetch a published version's chart (under the data plane, agent token)."""
    return f"/dp/v1/extensionTypes/{type_name.lower()}/versions/{version}/chart"
