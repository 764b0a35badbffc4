"""Portal sessions kept in the store: a restart signs no one out, a second replica on the same PostgreSQL serves the
same cookie, sign-out ends the session everywhere (and revokes the refresh token), and a stolen database row is
neither a cookie nor a token."""

from __future__ import annotations

import re
import shutil
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from halyard.controlplane.portal.routes import COOKIE
from halyard.controlplane.portal.sessions import digest
from halyard.core.sealing import Sealer
from tests.portal.signin import portal_get, portal_session
from tests.storage.replicas import replicas_of
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess
from tests.support.signin import new_user

pytestmark = pytest.mark.e2e
OWNER = "/providers/Microsoft.Authorization/roleDefinitions/8e3af657-a8ff-443c-a75c-2fe8c4bcb635"


def _owner(server: ServerProcess) -> tuple[str, str]:
    """A user with Owner on the server's subscription: their name and password."""
    with server.client() as admin:
        user, password = new_user(admin)
        r = admin.put(
            f"/subscriptions/{server.admin['subscription']}/providers/Microsoft.Authorization/roleAssignments/"
            f"{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            json={"properties": {"roleDefinitionId": OWNER, "principalId": user["id"]}},
        )
        assert r.status_code == 201, r.text
    return str(user["userPrincipalName"]), password


def _signed_in(server: ServerProcess, cookie: str, user: str) -> bool:
    r = portal_get(server, "/portal/clusters", cookie)
    if r.status_code == 303:
        assert "/portal/signin" in r.headers["location"]
        return False
    assert r.status_code == 200 and user in r.text, r.text
    return True


def _sign_out(server: ServerProcess, cookie: str) -> None:
    page = portal_get(server, "/portal/clusters", cookie)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert csrf, page.text
    with httpx.Client(base_url=server.url, verify=server.ca) as http:
        # No Origin header (a replica's own address is not the public URL the origin check expects).
        r = http.post("/portal/signout", data={"csrf": csrf.group(1)}, cookies={COOKIE: cookie})
    assert r.status_code == 200 and "signed out" in r.text, r.text


def test_a_session_survives_a_restart_and_a_stolen_row_opens_nothing(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    user, password = _owner(server)
    cookie = portal_session(server, user, password)
    assert _signed_in(server, cookie, user)
    server.stop()
    server.start()
    assert _signed_in(server, cookie, user), "the restart signed the user out"

    # What the database holds: the cookie's digest, not the cookie; the tokens sealed, not readable.
    with sqlite3.connect(server.data_dir / "halyard.db") as db:
        [(key, sealed, user_name)] = db.execute("SELECT digest, sealed, user_name FROM portal_sessions").fetchall()
    assert key == digest(cookie) and cookie not in key and user_name == user
    opened = Sealer((server.data_dir / "data.key").read_bytes().strip()).unseal_json(sealed)
    assert opened["access"] and opened["refresh"]
    for secret in (cookie, opened["access"], opened["refresh"], opened["csrf"]):
        assert secret.encode() not in bytes(sealed)
    # The row as a cookie, or as a bearer token, opens nothing.
    assert not _signed_in(server, key, user)
    with server.client(token=bytes(sealed).decode()) as thief:
        assert thief.get(f"/subscriptions/{server.admin['subscription']}/resourcegroups",
                         params={"api-version": "2021-04-01"}).status_code == 401  # fmt: skip
    # Copied onto another row, the sealed tokens do not open under that row's cookie either.
    other = portal_session(server, user, password)
    with sqlite3.connect(server.data_dir / "halyard.db") as db:
        db.execute("UPDATE portal_sessions SET sealed = ? WHERE digest = ?", (sealed, digest(other)))
    assert not _signed_in(server, other, user)

    # Sign-out deletes the row and revokes the refresh token.
    _sign_out(server, cookie)
    assert not _signed_in(server, cookie, user)
    with sqlite3.connect(server.data_dir / "halyard.db") as db:
        assert db.execute("SELECT count(*) FROM portal_sessions WHERE digest = ?", (key,)).fetchone() == (0,)
    with httpx.Client(base_url=server.url, verify=server.ca) as http:
        refused = http.post(
            f"/{server.admin['tenant']}/oauth2/v2.0/token",
            data={"grant_type": "refresh_token", "refresh_token": opened["refresh"], "client_id": "halyard-portal"},
        )
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant", refused.text


@pytest.mark.postgres
def test_a_session_made_on_one_replica_is_served_and_ended_by_another(
    postgres_server: PostgresServer, tmp_path: Path
) -> None:
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    a, b = replicas_of(url, tmp_path, 2)
    for replica in (a, b):
        # Access tokens of 30 s: every portal request finds its token due for refresh (a minute before expiry).
        replica.env = {**replica.env, "HALYARD_TOKEN_LIFETIME_SECONDS": "30"}
    try:
        a.start(60)
        shutil.copy(a.data_dir / "admin.json", b.data_dir / "admin.json")  # only the first replica bootstraps
        b.start(60)
        user, password = _owner(a)
        cookie = portal_session(a, user, password)
        assert _signed_in(b, cookie, user) and _signed_in(a, cookie, user)
        # Many requests at once on both replicas, each wanting a refresh: one redeems the (single-use, rotating)
        # refresh token at a time; a second redemption would revoke the sign-in and the user would be signed out.
        with ThreadPoolExecutor(12) as pool:
            answers = list(pool.map(lambda r: portal_get(r, "/portal/clusters/counts", cookie), [a, b] * 12))
        assert [x.status_code for x in answers] == [200] * 24, [(x.status_code, x.text[:200]) for x in answers]
        assert _signed_in(a, cookie, user) and _signed_in(b, cookie, user)
        _sign_out(b, cookie)
        assert not _signed_in(a, cookie, user) and not _signed_in(b, cookie, user)
    finally:
        b.stop()
        a.stop()
