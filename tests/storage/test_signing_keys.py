"""Token-signing key rotation in the real server, across restarts, as the days pass: a key due for rotation gets a
successor published before it signs; tokens of the old key stay valid until it retires, and are refused after. The
days are moved in the store (the keys' own dates), as a clock moved forward would see them."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import httpx
import jwt
import pytest

from halyard.core.settings import Settings
from tests.storage.stored import execute, query
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

ROTATION = dt.timedelta(days=Settings().signing_key_rotation_days)


def _sql_time(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("'%Y-%m-%d %H:%M:%S.%f'")


def _kid(token: str) -> str:
    return str(jwt.get_unverified_header(token)["kid"])


def _published(server: ServerProcess) -> set[str]:
    r = httpx.get(f"{server.url}/{server.admin['tenant']}/discovery/v2.0/keys", verify=server.ca)
    assert r.status_code == 200, r.text
    return {key["kid"] for key in r.json()["keys"]}


def _answer(server: ServerProcess, token: str) -> tuple[int, str]:
    with server.client(token) as client:
        r = client.get("/subscriptions", params={"api-version": "2022-12-01"})
    return r.status_code, r.json()["error"]["message"] if r.status_code != 200 else ""


async def test_rotation_publishes_first_keeps_old_tokens_valid_then_retires_the_old_key(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", free_port()).start()
    try:
        first = server.token()
        old = _kid(first)
        assert _published(server) == {old}
        server.stop()

        # The key has signed for a whole rotation period: the next start publishes its successor.
        now = dt.datetime.now(dt.UTC)
        await execute(server, f"UPDATE signing_keys SET activates_at = {_sql_time(now - ROTATION)}, "
                              f"created_at = {_sql_time(now - ROTATION)} WHERE kid = '{old}'")  # fmt: skip
        server.start()
        published = _published(server)
        assert old in published and len(published) == 2, published
        (new,) = published - {old}
        assert _kid(server.token()) == old  # published ahead, not signing yet: verifiers caching JWKS learn it first
        assert _answer(server, first) == (200, "")
        server.stop()

        # The pre-publication window has passed: the new key signs; the old key's tokens are still accepted.
        await execute(server, f"UPDATE signing_keys SET activates_at = {_sql_time(dt.datetime.now(dt.UTC))} "
                              f"WHERE kid = '{new}'")  # fmt: skip
        server.start()
        second = server.token()
        assert _kid(second) == new
        assert _published(server) == {old, new}
        assert _answer(server, first) == (200, "")
        (retires,) = await query(server, f"SELECT retires_at FROM signing_keys WHERE kid = '{old}'")
        server.stop()

        # Every token the old key signed has expired: it retires, and a token it signed is refused.
        await execute(server, f"UPDATE signing_keys SET retires_at = {_sql_time(dt.datetime.now(dt.UTC))} "
                              f"WHERE kid = '{old}'")  # fmt: skip
        server.start()
        assert _published(server) == {new}
        assert _answer(server, first) == (401, "The access token is signed by an unknown or retired key.")
        assert _answer(server, second) == (200, "")
    finally:
        server.stop()
    # The retirement the rotation had set: the new key's start plus a token's lifetime and some slack, not never.
    retires_at = dt.datetime.fromisoformat(str(retires[0])).replace(tzinfo=dt.UTC)
    assert retires_at < dt.datetime.now(dt.UTC) + dt.timedelta(hours=2), retires_at
