"""The management client against an in-memory ARM (httpx's transport seam): paging, operations, tokens, errors."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from halyard.cli.arm import ArmClient, arm_error
from halyard.cli.errors import CliError
from halyard.cli.profile import CachedToken, Profile, ProfileStore
from halyard.cli.tokens import TokenProvider
from halyard.cli.transport import Transport, redact

pytestmark = pytest.mark.unit

SERVER = "https://arm.test"
Handler = Callable[[httpx.Request], httpx.Response]


class FakeArm:
    """Records requests; answers from a per-path script of responses."""

    def __init__(self, routes: dict[str, list[httpx.Response]]) -> None:
        self.routes = routes
        self.requests: list[httpx.Request] = []
        self.tokens_issued = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/oauth2/v2.0/token"):
            self.tokens_issued += 1
            return httpx.Response(200, json={"access_token": f"token-{self.tokens_issued}", "expires_in": 3600})
        script = self.routes[request.url.path]
        return script.pop(0) if len(script) > 1 else script[0]


def client(fake: FakeArm, tmp_path: Path, cached: CachedToken | None = None) -> ArmClient:
    transport = Transport(True, client=httpx.Client(transport=httpx.MockTransport(fake)))
    store = ProfileStore(tmp_path)
    profile = Profile(server=SERVER, tenant="t", clientId="app", clientSecret="s", audience="https://aud/")
    if cached:
        store.cache_token(SERVER, cached)
    return ArmClient(transport, SERVER, TokenProvider(store, profile, transport))


def no_sleep(recorded: list[float]) -> Callable[[float], None]:
    return recorded.append


def test_list_follows_next_link_to_the_end(tmp_path: Path) -> None:
    fake = FakeArm(
        {
            "/things": [httpx.Response(200, json={"value": [1, 2], "nextLink": f"{SERVER}/page2?x=1"})],
            "/page2": [httpx.Response(200, json={"value": [3]})],
        }
    )
    assert client(fake, tmp_path).list("/things", "2024-11-01") == [1, 2, 3]
    assert fake.requests[1].url.params["api-version"] == "2024-11-01"
    assert all(r.headers["Authorization"] == "Bearer token-1" for r in fake.requests[1:])


def test_async_operation_polled_with_retry_after_then_resource_read(tmp_path: Path) -> None:
    status = f"{SERVER}/ops/1"
    fake = FakeArm(
        {
            "/ops/1": [
                httpx.Response(200, json={"status": "InProgress"}, headers={"Retry-After": "3"}),
                httpx.Response(200, json={"status": "Succeeded"}),
            ],
            "/res": [httpx.Response(200, json={"name": "res", "properties": {"provisioningState": "Succeeded"}})],
        }
    )
    arm = client(fake, tmp_path)
    first = httpx.Response(201, json={}, headers={"Azure-AsyncOperation": status, "Retry-After": "1"})
    sleeps: list[float] = []
    assert arm.wait("PUT", f"{SERVER}/res", first, sleep=no_sleep(sleeps)) == {
        "name": "res",
        "properties": {"provisioningState": "Succeeded"},
    }
    assert sleeps == [1.0, 3.0]


def test_failed_operation_raises_its_error(tmp_path: Path) -> None:
    fake = FakeArm(
        {"/ops/2": [httpx.Response(200, json={"status": "Failed", "error": {"code": "Boom", "message": "it broke"}})]}
    )
    first = httpx.Response(202, headers={"Azure-AsyncOperation": f"{SERVER}/ops/2"})
    with pytest.raises(CliError) as caught:
        client(fake, tmp_path).wait("DELETE", f"{SERVER}/res", first, sleep=no_sleep([]))
    assert caught.value.line() == "ERROR: (Boom) it broke"


def test_location_polled_until_not_202(tmp_path: Path) -> None:
    fake = FakeArm(
        {"/results/1": [httpx.Response(202, headers={"Retry-After": "0"}), httpx.Response(204)]},
    )
    first = httpx.Response(202, headers={"Location": f"{SERVER}/results/1", "Retry-After": "2"})
    sleeps: list[float] = []
    assert client(fake, tmp_path).wait("DELETE", f"{SERVER}/g", first, sleep=no_sleep(sleeps)) is None
    assert sleeps == [2.0, 0.0] and len(fake.requests) == 3  # one token, two polls


def test_expiring_token_is_refreshed_and_a_401_retried_once(tmp_path: Path) -> None:
    fake = FakeArm(
        {
            "/x": [
                httpx.Response(401, json={"error": {"code": "InvalidAuthenticationToken"}}),
                httpx.Response(200, json={}),
            ]
        }
    )
    arm = client(fake, tmp_path, cached=CachedToken("old", time.time() + 3600))
    arm.get("/x", "v")
    assert [r.headers.get("Authorization") for r in fake.requests if r.url.path == "/x"] == [
        "Bearer old",
        "Bearer token-1",
    ]
    soon = client(FakeArm({"/x": [httpx.Response(200, json={})]}), tmp_path / "2", CachedToken("old", time.time() + 60))
    soon.get("/x", "v")
    assert soon.tokens is not None and soon.tokens.token() == "token-1"  # within the margin: a fresh one


def test_token_is_never_sent_to_another_origin(tmp_path: Path) -> None:
    fake = FakeArm({"/elsewhere": [httpx.Response(200, json={})]})
    client(fake, tmp_path).send("GET", "https://other.test/elsewhere")
    assert "Authorization" not in fake.requests[0].headers and fake.tokens_issued == 0


def test_error_bodies() -> None:
    arm = httpx.Response(404, json={"error": {"code": "ResourceGroupNotFound", "message": "gone"}})
    assert arm_error(arm).line() == "ERROR: (ResourceGroupNotFound) gone"
    oauth = httpx.Response(401, json={"error": "invalid_client", "error_description": "AADSTS7000215: bad"})
    assert arm_error(oauth).line() == "ERROR: (invalid_client) AADSTS7000215: bad"
    plain = httpx.Response(502, text="upstream down")
    assert arm_error(plain).line() == "ERROR: (BadGateway) Bad Gateway (HTTP 502): upstream down"


def test_debug_urls_hide_secret_parameters() -> None:
    assert (
        redact("https://h/p?api-version=1&sig=abc&token=x") == "https://h/p?api-version=1&sig=REDACTED&token=REDACTED"
    )


def test_put_without_operation_header_polls_provisioning_state(tmp_path: Path) -> None:
    fake = FakeArm(
        {
            "/res": [
                httpx.Response(200, json={"properties": {"provisioningState": "Updating"}}),
                httpx.Response(200, json={"properties": {"provisioningState": "Succeeded"}}),
            ]
        }
    )
    arm = client(fake, tmp_path)
    first = httpx.Response(201, json={"properties": {"provisioningState": "Accepted"}})
    final = arm.wait("PUT", arm.resource_url("/res", "2026-05-01"), first, sleep=no_sleep([]))
    assert final == {"properties": {"provisioningState": "Succeeded"}}
    assert [r.url.params["api-version"] for r in fake.requests if r.url.path == "/res"] == ["2026-05-01"] * 2
