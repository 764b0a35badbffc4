"""Migrations run at start on an empty database; starting again is idempotent and keeps everything."""

from __future__ import annotations

import json

import pytest

from tests.storage.arm import (
    CLUSTERS,
    NAMESPACE,
    RESOURCES,
    agent_public_key,
    cluster_path,
    create_cluster,
    put_cluster,
    put_group,
    wait_location,
)
from tests.storage.stored import head_revision, integrity_problems, query
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


async def test_migrations_at_start_and_restart_keeps_everything(fresh_db_server: ServerProcess) -> None:
    server = fresh_db_server.start()
    assert await query(server, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    admin = json.loads((server.data_dir / "admin.json").read_text())
    sub = admin["subscription"]
    token = server.token()
    key = agent_public_key()
    with server.client(token) as client:
        put_group(client, sub, "kept")
        cluster = create_cluster(client, sub, "kept", "survivor", key)
        providers = f"/subscriptions/{sub}/providers/{NAMESPACE}"
        # No resource of the namespace remains outside "kept"'s one, so unregistering needs it gone first.
        deleted = client.delete(cluster_path(sub, "kept", "survivor"), params={"api-version": CLUSTERS})
        assert wait_location(client, deleted).status_code == 204
    server.stop()

    server.start()  # migrate() again on a database at head: nothing to do, nothing lost
    assert await query(server, "SELECT version_num FROM alembic_version") == [(head_revision(),)]
    assert json.loads((server.data_dir / "admin.json").read_text()) == admin  # no second bootstrap
    assert await query(server, "SELECT count(*) FROM tenants") == [(1,)]
    with server.client(token) as client:  # a token issued before the restart still verifies
        assert client.get(f"/subscriptions/{sub}/resourceGroups/kept", params={"api-version": RESOURCES}).is_success
        gone = client.get(cluster_path(sub, "kept", "survivor"), params={"api-version": CLUSTERS})
        assert gone.status_code == 404

        unregistered = client.post(f"{providers}/unregister", params={"api-version": RESOURCES})
        assert unregistered.status_code == 200 and unregistered.json()["registrationState"] == "Unregistered"
        refused = put_cluster(client, sub, "kept", "again", key)
        assert refused.status_code == 409 and refused.json()["error"]["code"] == "MissingSubscriptionRegistration"
    server.stop()

    server.start()
    with server.client() as client:
        provider = client.get(providers, params={"api-version": RESOURCES}).json()
        assert provider["registrationState"] == "Unregistered"
        assert client.post(f"{providers}/register", params={"api-version": RESOURCES}).is_success
        again = create_cluster(client, sub, "kept", "survivor", key)
        assert again["identity"]["principalId"] != cluster["identity"]["principalId"]
    assert await integrity_problems(server) == []
