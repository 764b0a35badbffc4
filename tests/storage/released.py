"""Databases as each released schema left them, kept as fixtures to upgrade: how one is written, and loaded again.

A fixture lives in ``tests/storage/released/<revision>/`` and was written by the server of that revision (the last
commit whose newest migration it is) through its own API: groups, connected clusters (their managed identities and
provisioning operations), a service principal with a secret, a role assignment, an operation still in flight at
shutdown, and, where the server has the cluster identity and heartbeat services, an onboarded cluster identity and
what its agents reported in a heartbeat. It holds:

- ``rows.json``: every row of every table, as that server wrote them (datetimes as ISO strings, binary as base64);
- ``written.json``: what was made through the API (the expectations of the upgrade test), and when;
- ``data.key`` and ``admin.json``: the data directory's sealing key (the signing keys and the cluster CA are sealed
  with it) and the bootstrap admin's credentials.

Loading creates the schema of that revision with the project's own migrations (a released migration never changes),
inserts the rows, and moves every datetime forward by the fixture's age, so certificates, secrets and signing keys
are as fresh as on the day it was written. ``scripts/write-schema-fixture.py`` writes one.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from alembic import command
from alembic.config import Config
from sqlalchemy import Connection, MetaData, create_engine, select
from sqlalchemy.ext.asyncio import create_async_engine

from halyard.store.database import MIGRATIONS
from tests.storage.arm import CLUSTERS, RESOURCES, cluster_body, cluster_path, group_path, wait_async_operation

RELEASED = Path(__file__).parent / "released"
SP_API = {"api-version": "2026-01-01"}
AUTHZ_API = {"api-version": "2022-04-01"}
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
LEASE_SECONDS = 15  # halyard.controlplane.arm.operations.LEASE
# Operations on these clusters are held claimed while the fixture is written: at shutdown they are still in flight.
IN_FLIGHT = "inflight"
HOLD_IN_FLIGHT = (
    f"CREATE TRIGGER fixture_hold AFTER INSERT ON operations WHEN NEW.target_id LIKE '%{IN_FLIGHT}%' BEGIN "
    "UPDATE operations SET lease_until = strftime('%Y-%m-%d %H:%M:%f000', 'now', '+1 hour') WHERE id = NEW.id; END"
)


def revisions() -> list[str]:
    """The revisions a fixture was written for, oldest first."""
    return sorted(p.name for p in RELEASED.iterdir() if (p / "rows.json").exists()) if RELEASED.exists() else []


# ---- writing: through a running server of the revision, then its SQLite file ----------------------------------


def populate(url: str, ca: str, admin: dict[str, Any], token: str) -> dict[str, Any]:
    """Make, through the API of the server at ``url``, what a fixture holds; returns what was made."""
    sub = admin["subscription"]
    written: dict[str, Any] = {"subscription": sub, "groups": {}, "clusters": {}, "in_flight": []}
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=url, verify=ca, headers=headers, timeout=30) as client:
        for group, tags in (("fx-kept", {"fixture": "kept"}), ("fx-other", {})):
            r = client.put(group_path(sub, group), params={"api-version": RESOURCES},
                           json={"location": "eastus", "tags": tags})  # fmt: skip
            assert r.status_code == 201, r.text
            written["groups"][group] = tags
        onboarding = _onboarding_key()
        for group, name, tags in (
            ("fx-kept", "steady", {}),
            ("fx-kept", "tagged", {"team": "infra", "env": "prod"}),
            ("fx-other", "onboarded", {}),
        ):
            r = client.put(cluster_path(sub, group, name), params={"api-version": CLUSTERS},
                           json=cluster_body(onboarding[1], tags))  # fmt: skip
            assert r.status_code == 201, r.text
            assert wait_async_operation(client, r)["status"] == "Succeeded"
            got = client.get(cluster_path(sub, group, name), params={"api-version": CLUSTERS}).json()
            written["clusters"][f"{group}/{name}"] = {
                "tags": tags,
                "principalId": got["identity"]["principalId"],
                "provisioningState": got["properties"]["provisioningState"],
            }
        r = client.put(cluster_path(sub, "fx-kept", f"{IN_FLIGHT}-1"), params={"api-version": CLUSTERS},
                       json=cluster_body(onboarding[1], {"held": "yes"}))  # fmt: skip
        assert r.status_code == 201, r.text
        written["in_flight"].append({"cluster": f"fx-kept/{IN_FLIGHT}-1", "tags": {"held": "yes"}})

        r = client.post("/providers/Halyard.Directory/servicePrincipals", params=SP_API, json={"displayName": "fx-sp"})
        assert r.status_code == 201, r.text
        principal = r.json()
        assignment = f"{group_path(sub, 'fx-kept')}/providers/Microsoft.Authorization/roleAssignments/" + (
            "6f1c1c7e-0d5a-4d8e-9a51-0f1e2d3c4b5a"
        )
        r = client.put(assignment, params=AUTHZ_API,
                       json={"properties": {"roleDefinitionId": READER, "principalId": principal["id"]}})  # fmt: skip
        assert r.status_code == 201, r.text
        written["principal"] = {"appId": principal["appId"], "id": principal["id"], "secret": principal["password"]}
        written["assignment"] = {"id": assignment, "role": READER, "scope": group_path(sub, "fx-kept")}

    if httpx.get(f"{url}/his/v1/endpoints", verify=ca).status_code == 200:
        written["identity"] = _onboard(url, ca, cluster_path(sub, "fx-other", "onboarded"), onboarding[0])
    return written


def _onboarding_key() -> tuple[Any, str]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return key, base64.b64encode(der).decode()


def _onboard(url: str, ca: str, resource_id: str, onboarding_key: Any) -> dict[str, Any]:
    """A cluster certificate from the cluster identity service, asked for as identity-operator does."""
    import asyncio

    from halyard.agent.clusterconfig import ClusterConfig
    from halyard.agent.identity import IdentityOperator
    from halyard.agent.metrics import AgentMetrics
    from halyard.api.agents import EndpointMap
    from halyard.core.clock import SystemClock

    async def ask() -> Any:
        async with httpx.AsyncClient(verify=ca) as http:
            endpoints = EndpointMap.model_validate((await http.get(f"{url}/his/v1/endpoints")).json() | {"tenant": "t"})
            config = ClusterConfig(resource_id, endpoints, Path(ca).read_text(), onboarding_key)
            operator = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
            return await operator.request_certificate(None)

    issued = asyncio.run(ask())
    token = _agent_token(issued, ca)
    beat = httpx.post(f"{url}/dp/v1/heartbeat", json=REPORTED, headers={"Authorization": f"Bearer {token}"},
                      verify=ca)  # fmt: skip
    assert beat.status_code == 200, beat.text
    return {"cluster": resource_id, "certificateNotAfter": _iso(issued.response.notAfter), "reported": REPORTED}


# What the onboarded cluster's agents report in one heartbeat (the fields the agents fill in).
REPORTED = {
    "agentVersion": "0.1.0",
    "kubernetesVersion": "1.31.2",
    "totalNodeCount": 3,
    "totalCoreCount": 12,
    "agentState": "Succeeded",
}


def _agent_token(issued: Any, ca: str) -> str:
    """An agent token for the cluster identity, by a client assertion signed with its certificate's key."""
    import time
    import uuid

    import jwt

    from halyard.agent.identity import ASSERTION_TYPE
    from halyard.api.proofs import signing_algorithm

    now, client_id = int(time.time()), issued.response.clientId
    claims = {"iss": client_id, "sub": client_id, "aud": issued.response.tokenEndpoint, "jti": uuid.uuid4().hex,
              "iat": now, "exp": now + 300}  # fmt: skip
    assertion = jwt.encode(claims, issued.key, algorithm=signing_algorithm(issued.key))
    r = httpx.post(
        issued.response.tokenEndpoint,
        data={"grant_type": "client_credentials", "client_id": client_id, "client_assertion_type": ASSERTION_TYPE,
              "client_assertion": assertion, "scope": issued.response.audience.rstrip("/") + "/.default"},
        verify=ca,
    )  # fmt: skip
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).isoformat()


def dump(sqlite_file: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table of a SQLite store, JSON-ready."""
    engine = create_engine(f"sqlite:///{sqlite_file}")
    try:
        metadata = MetaData()
        metadata.reflect(engine)
        with engine.connect() as conn:
            return {
                table.name: [{k: _encode(v) for k, v in row._mapping.items()} for row in conn.execute(select(table))]
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$datetime": (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()}
    if isinstance(value, bytes):
        return {"$bytes": base64.b64encode(value).decode()}
    return value


# ---- loading: the schema of the revision, its rows, times moved to now -----------------------------------------


@dataclass
class Fixture:
    revision: str
    rows: dict[str, list[dict[str, Any]]]
    written: dict[str, Any]
    directory: Path

    @classmethod
    def read(cls, revision: str) -> Fixture:
        directory = RELEASED / revision
        return cls(
            revision,
            json.loads((directory / "rows.json").read_text()),
            json.loads((directory / "written.json").read_text()),
            directory,
        )

    @property
    def age(self) -> dt.timedelta:
        """How long ago it was written: what every datetime is moved forward by when it is loaded."""
        return dt.datetime.now(dt.UTC) - dt.datetime.fromisoformat(self.written["writtenAt"])

    def install(self, data_dir: Path) -> None:
        """The data directory's files the rows need: the sealing key and the admin's credentials."""
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in ("data.key", "admin.json"):
            shutil.copy(self.directory / name, data_dir / name)
            (data_dir / name).chmod(0o600)

    async def load(self, url: str, age: dt.timedelta) -> None:
        """Create the schema of this revision in the empty database at ``url`` and insert the rows, every datetime
        moved forward by ``age``."""
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                await conn.run_sync(self._load, age)
        finally:
            await engine.dispose()

    def _load(self, connection: Connection, age: dt.timedelta) -> None:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        config.attributes["connection"] = connection
        command.upgrade(config, self.revision)
        metadata = MetaData()
        metadata.reflect(connection)
        for table in metadata.sorted_tables:
            if table.name == "alembic_version":
                continue
            rows = [{k: _decode(v, age) for k, v in row.items()} for row in self.rows.get(table.name, [])]
            if rows:
                connection.execute(table.insert(), rows)


def _decode(value: Any, age: dt.timedelta) -> Any:
    if isinstance(value, dict) and set(value) == {"$datetime"}:
        return dt.datetime.fromisoformat(value["$datetime"]) + age
    if isinstance(value, dict) and set(value) == {"$bytes"}:
        return base64.b64decode(value["$bytes"])
    return value


async def missing_rows(url: str, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The fixture's rows (by primary key) the database at ``url`` no longer holds."""
    engine = create_async_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_missing, rows)
    finally:
        await engine.dispose()


def _missing(connection: Connection, rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    metadata = MetaData()
    metadata.reflect(connection)
    missing = []
    for name, table_rows in rows.items():
        if name not in metadata.tables:
            missing.append(f"table {name}")
            continue
        table = metadata.tables[name]
        keys = [c.name for c in table.primary_key.columns]
        for row in table_rows:
            where = [table.c[k] == _decode(row[k], dt.timedelta()) for k in keys]
            if connection.execute(select(table).where(*where)).first() is None:
                missing.append(f"{name} { ({k: row[k] for k in keys}) }")
    return missing
