"""Replicas keep callers' role assignments cached; a revocation made on one replica stops working on every
replica within a second (PostgreSQL NOTIFY on commit), and a replica that has lost its listening connection
serves from the store until it listens again."""

from __future__ import annotations

import asyncio
import shutil
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.storage.arm import put_group
from tests.storage.replicas import replicas_of
from tests.storage.stored import query
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess

pytestmark = [pytest.mark.e2e, pytest.mark.postgres]
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
AUTHZ = {"api-version": "2022-04-01"}
RG = {"api-version": "2024-11-01"}
REVOCATION_BOUND = 1.0  # seconds: what docs/security.md promises


def _status_within(client: httpx.Client, path: str, status: int, bound: float) -> float:
    """Seconds until ``path`` answers ``status``; fails, naming what it answered, past ``bound``."""
    start = time.monotonic()
    while True:
        r = client.get(path, params=RG)
        if r.status_code == status:
            return time.monotonic() - start
        assert time.monotonic() - start < bound, f"still {r.status_code} after {bound} s: {r.text}"
        time.sleep(0.02)


def test_a_revocation_on_one_replica_stops_access_on_another_within_a_second(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    a, b = replicas_of(url, tmp_path, 2)
    try:
        a.start(60)
        shutil.copy(a.data_dir / "admin.json", b.data_dir / "admin.json")  # only the first replica bootstraps
        b.start(60)
        sub = a.admin["subscription"]
        group = f"/subscriptions/{sub}/resourceGroups/shared"
        with a.client() as admin_a:
            put_group(admin_a, sub, "shared")
            sp = admin_a.post(
                "/providers/Halyard.Directory/servicePrincipals",
                params={"api-version": "2026-01-01"},
                json={"displayName": "reader"},
            ).json()
            assignment = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
            r = admin_a.put(
                assignment, params=AUTHZ, json={"properties": {"roleDefinitionId": READER, "principalId": sp["id"]}}
            )
            assert r.status_code == 201, r.text
        token = a.token(sp["appId"], sp["password"])
        with b.client(token) as reader_b, a.client() as admin_a:
            for _ in range(3):  # read, and read again from what replica b cached
                assert reader_b.get(group, params=RG).status_code == 200
            assert admin_a.delete(assignment, params=AUTHZ).status_code == 200
            _status_within(reader_b, group, 403, REVOCATION_BOUND)
            # And the other way: granted on b, allowed on a as soon.
            with b.client() as admin_b, a.client(token) as reader_a:
                assert reader_a.get(group, params=RG).status_code == 403
                r = admin_b.put(
                    assignment,
                    params=AUTHZ,
                    json={"properties": {"roleDefinitionId": READER, "principalId": sp["id"]}},
                )
                assert r.status_code == 201, r.text
                _status_within(reader_a, group, 200, REVOCATION_BOUND)

            # A replica whose listening connection is cut serves from the store until it listens again: a change
            # made meanwhile is never answered from its cache.
            killed = _cut_listeners(a)
            assert killed >= 1
            assert admin_a.delete(assignment, params=AUTHZ).status_code == 200
            _status_within(reader_b, group, 403, REVOCATION_BOUND)
    finally:
        b.stop()
        a.stop()


def _cut_listeners(replica: ServerProcess) -> int:
    """Cut every replica's LISTEN connection (as a network blip or a PostgreSQL restart would)."""
    rows = asyncio.run(
        query(
            replica,
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE query ILIKE 'LISTEN%' AND datname = current_database()",
        )
    )
    return len(rows)


def test_leaving_a_group_on_one_replica_stops_access_on_another_within_a_second(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    """Group membership is part of a caller's access: its changes are notified like role assignments' (0006)."""
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    a, b = replicas_of(url, tmp_path, 2)
    try:
        a.start(60)
        shutil.copy(a.data_dir / "admin.json", b.data_dir / "admin.json")
        b.start(60)
        sub = a.admin["subscription"]
        group = f"/subscriptions/{sub}/resourceGroups/shared"
        directory = {"api-version": "2026-01-01"}
        with a.client() as admin_a:
            put_group(admin_a, sub, "shared")
            sp = admin_a.post(
                "/providers/Halyard.Directory/servicePrincipals", params=directory, json={"displayName": "member"}
            ).json()
            readers = admin_a.post(
                "/providers/Halyard.Directory/groups", params=directory, json={"displayName": "readers"}
            ).json()
            members = f"/providers/Halyard.Directory/groups/{readers['id']}/members"
            assert admin_a.post(members, params=directory, json={"memberId": sp["id"]}).status_code == 204
            assignment = f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
            r = admin_a.put(
                assignment,
                params=AUTHZ,
                json={"properties": {"roleDefinitionId": READER, "principalId": readers["id"]}},
            )
            assert r.status_code == 201, r.text
        token = a.token(sp["appId"], sp["password"])
        with b.client(token) as member_b, a.client() as admin_a:
            for _ in range(3):  # read, and read again from what replica b cached
                assert member_b.get(group, params=RG).status_code == 200
            assert admin_a.delete(f"{members}/{sp['id']}", params=directory).status_code == 204
            _status_within(member_b, group, 403, REVOCATION_BOUND)
            assert admin_a.post(members, params=directory, json={"memberId": sp["id"]}).status_code == 204
            _status_within(member_b, group, 200, REVOCATION_BOUND)
    finally:
        b.stop()
        a.stop()
