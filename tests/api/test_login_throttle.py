"""Floods of bad client secrets against a real server: answered 429 once over the limit, and never stall the rest."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

# A refill slow enough that the burst is spent before one token comes back even on a loaded machine (at 2 s, ten
# scrypts under a load average of 10 outlasted it and the 13th failure was let through), fast enough to wait out.
BURST, REFILL_SECONDS = 12, 10.0


def _form(server: ServerProcess, **credentials: str) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": server.admin["clientId"],
        "scope": server.admin["audience"] + ".default",
        **credentials,
    }


async def _healthz_while(server: ServerProcess, work: asyncio.Future[list[httpx.Response]]) -> list[int]:
    """The status of each /healthz, asked one after another until ``work`` is done."""
    statuses = []
    async with httpx.AsyncClient(base_url=server.url, verify=server.ca, timeout=30) as client:
        await client.get("/healthz")  # connected before the flood is under way
        deadline = time.monotonic() + 60
        while not work.done():
            assert time.monotonic() < deadline, "the logins were not answered within 60 s"
            statuses.append((await client.get("/healthz")).status_code)
            await asyncio.sleep(0.01)
    return statuses


async def test_bad_secrets_are_throttled_per_address_and_never_stall_the_server(fresh_server: ServerProcess) -> None:
    fresh_server.env = {
        "HALYARD_LOGIN_FAILURE_BURST": str(BURST),
        "HALYARD_LOGIN_FAILURE_REFILL_SECONDS": str(REFILL_SECONDS),
    }
    server = fresh_server.start()
    url = f"/{server.admin['tenant']}/oauth2/v2.0/token"
    good = _form(server, client_secret=server.admin["clientSecret"])
    async with httpx.AsyncClient(base_url=server.url, verify=server.ca, timeout=30) as client:
        # Ten wrong secrets at once: ten scrypts (~50 ms of CPU each) in flight while /healthz is asked again and again.
        flood = asyncio.gather(*(client.post(url, data=_form(server, client_secret=f"wrong{i}")) for i in range(10)))
        healthz = await _healthz_while(server, flood)
        assert {(r.status_code, r.json()["error"]) for r in await flood} == {(401, "invalid_client")}
        # The server answers meanwhile. That the checks run off the event loop is proven in
        # tests/unit/test_login_throttle.py (a check held open while the loop goes on); how long /healthz takes
        # under such a flood is bench/login_flood.py's figure.
        assert healthz and set(healthz) == {200}, healthz

        # Bad client assertions count too.
        for _ in range(BURST - 10):
            r = await client.post(
                url,
                data=_form(
                    server,
                    client_assertion_type="urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    client_assertion="not.a.jwt",
                ),
            )
            assert (r.status_code, r.json()["error"]) == (401, "invalid_client")

        # Over the limit: 429 before any secret is checked, in the shape MSAL reads, with when to come back.
        started = time.monotonic()
        r = await client.post(url, data=_form(server, client_secret="wrong-again"))
        assert r.status_code == 429, r.text
        wait = int(r.headers["Retry-After"])
        assert 1 <= wait <= REFILL_SECONDS
        body = r.json()
        assert body["error"] == "temporarily_unavailable"
        assert body["error_codes"] == [50053] and body["error_description"].startswith("AADSTS50053: ")
        # The right secret from the same address waits too: the throttle cannot tell a guesser who guessed right.
        r = await client.post(url, data=good)
        assert r.status_code == 429 and int(r.headers["Retry-After"]) <= wait

    # Another address is not held back by this one's failures (127.0.0.2 is loopback too on Linux).
    other = httpx.AsyncHTTPTransport(local_address="127.0.0.2", verify=server.ca)
    async with httpx.AsyncClient(base_url=server.url, transport=other, timeout=30) as client:
        r = await client.post(url, data=good)
        assert r.status_code == 200, r.text

    await asyncio.sleep(max(0.0, wait - (time.monotonic() - started)))
    async with httpx.AsyncClient(base_url=server.url, verify=server.ca, timeout=30) as client:
        r = await client.post(url, data=good)
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "Bearer"
