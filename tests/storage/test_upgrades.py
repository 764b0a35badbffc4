"""A database written by each released schema is upgraded in place by the current server, which then serves every
row: what docs/operations.md promises with "install the new version and restart". The fixtures are in
tests/storage/released/<revision>/ (see tests/storage/released.py); scripts/write-schema-fixture.py writes one."""

from __future__ import annotations

import asyncio
import datetime as dt
import time

import httpx
import pytest

from halyard.store.database import MIGRATIONS
from tests.storage.arm import CLUSTERS, RESOURCES, cluster_path, group_path
from tests.storage.released import AUTHZ_API, Fixture, missing_rows, revisions
from tests.storage.stored import database_url, head_revision, integrity_problems, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def _migrations() -> set[str]:
    return {p.name.split("_", 1)[0] for p in (MIGRATIONS / "versions").glob("[0-9]*_*.py")}


def test_every_migration_has_its_fixture() -> None:
    missing = sorted(_migrations() - set(revisions()))
    assert not missing, (
        f"no upgrade fixture for migration(s) {missing}: commit the migration, then run "
        f"`.venv/bin/python scripts/write-schema-fixture.py <revision>` and commit tests/storage/released/<revision>"
    )


@pytest.mark.parametrize("revision", revisions())
async def test_a_released_schema_is_upgraded_in_place_and_every_row_served(
    fresh_db_server: ServerProcess, revision: str
) -> None:
    fixture = Fixture.read(revision)
    written, age = fixture.written, fixture.age
    server = fresh_db_server
    fixture.install(server.data_dir)
    await fixture.load(database_url(server), age)
    assert await query(server, "SELECT version_num FROM alembic_version") == [(revision,)]

    server.start()  # the new version, restarted on the old store
    assert await query(server, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert await missing_rows(database_url(server), fixture.rows) == []
    sub = written["subscription"]
    # The admin signs in with the secret the old server minted; the token is signed by a key it sealed.
    with server.client() as client:
        for group, tags in written["groups"].items():
            got = client.get(group_path(sub, group), params={"api-version": RESOURCES})
            assert (got.status_code, got.json().get("tags")) == (200, tags), got.text
        for name, expected in written["clusters"].items():
            got = client.get(cluster_path(sub, *name.split("/")), params={"api-version": CLUSTERS})
            assert got.status_code == 200, got.text
            shown = got.json()
            assert (shown["tags"], shown["identity"]["principalId"], shown["properties"]["provisioningState"]) == (
                expected["tags"],
                expected["principalId"],
                expected["provisioningState"],
            ), name
        assignment = client.get(written["assignment"]["id"], params=AUTHZ_API)
        assert assignment.status_code == 200, assignment.text
        properties = assignment.json()["properties"]
        assert properties["principalId"] == written["principal"]["id"]
        assert properties["roleDefinitionId"].endswith(written["assignment"]["role"])
        assert properties["scope"].lower() == written["assignment"]["scope"].lower()

        # What was in flight when the old server stopped is finished by the new one (on PostgreSQL once the old
        # worker's lease has lapsed; SQLite's single server releases it at start).
        for in_flight in written["in_flight"]:
            path = cluster_path(sub, *in_flight["cluster"].split("/"))
            deadline = time.monotonic() + 60
            while (shown := client.get(path, params={"api-version": CLUSTERS}).json())["properties"][
                "provisioningState"
            ] != "Succeeded":
                assert time.monotonic() < deadline, f"{path} still {shown['properties']['provisioningState']}"
                await asyncio.sleep(0.2)
            assert shown["tags"] == in_flight["tags"] and shown["identity"]["principalId"]
        assert await query(server, "SELECT count(*) FROM operations WHERE status = 'InProgress'") == [(0,)]

        if "identity" in written:  # an onboarded cluster keeps its identity and certificate
            shown = client.get(written["identity"]["cluster"], params={"api-version": CLUSTERS}).json()
            # As stored in the resource's properties (JSON: not moved by the loading).
            served = dt.datetime.fromisoformat(shown["properties"]["managedIdentityCertificateExpirationTime"])
            assert served == dt.datetime.fromisoformat(written["identity"]["certificateNotAfter"]), served
            # The identity row's own expiry (moved with the rows) still makes it connectable, not Expired.
            assert shown["properties"]["connectivityStatus"] != "Expired", shown["properties"]
            # What its agents reported before the upgrade is served after it.
            reported = written["identity"].get("reported")
            if reported:
                served_report = {k: shown["properties"].get(k) for k in reported if k != "agentState"}
                served_report["agentState"] = shown["properties"]["arcAgentProfile"].get("agentState")
                assert served_report == reported, shown["properties"]

    # The old server's principal signs in with its secret, and its role assignment holds: it reads, but not writes.
    principal = written["principal"]
    token = server.token(principal["appId"], principal["secret"])
    with server.client(token) as client:
        kept = group_path(sub, "fx-kept")
        assert client.get(kept, params={"api-version": RESOURCES}).status_code == 200
        refused = client.put(kept, params={"api-version": RESOURCES}, json={"location": "eastus"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (403, "AuthorizationFailed"), refused.text
    with httpx.Client(base_url=server.url, verify=server.ca) as anonymous:
        assert anonymous.get("/readyz").status_code == 200
    assert await integrity_problems(server) == []
