"""Federated sign-in against real OpenID Connect providers: the session's Halyard server is the organisation's
identity provider (discovery, JWKS, authorize, token, id tokens with the nonce), a second Halyard (``rp``) is
configured to trust it. A person (httpx, as a browser) asks the application's sign-in at ``rp``, chooses "Sign in
with Corp", signs in at the provider, and comes back signed in at ``rp`` as the mapped user with the mapped groups.
A tiny provider of tests/support sends the id tokens a broken or hostile provider would."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.support.oidcprovider import TinyProvider
from tests.support.processes import ServerProcess, free_port
from tests.support.signin import DIRECTORY, DIRECTORY_VERSION, Login, claims_of, form_of, new_group, new_user

pytestmark = pytest.mark.e2e
APP = "portal-app"
APP_REDIRECT = "http://localhost:39123/signed-in"  # the application's loopback receiver: never reached here


@dataclass
class Setup:
    rp: ServerProcess
    idp: ServerProcess
    tiny: TinyProvider
    bundle: str  # every CA a browser here trusts


@pytest.fixture(scope="module")
def setup(server: ServerProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    base = tmp_path_factory.mktemp("federation")
    tiny = TinyProvider(base / "tiny").start()
    idp_issuer = f"{server.url}/{server.admin['tenant']}/v2.0"
    halyard = {
        "issuer": idp_issuer, "client_id": "halyard-rp", "client_secret": "not checked by a Halyard provider",
        "scopes": ["openid", "profile", server.admin["audience"] + ".default"], "ca_file": server.ca,
    }  # fmt: skip
    config = {
        "providers": [
            {**halyard, "id": "corp", "display_name": "Corp", "users": "create",
             "groups": {"by_name": True, "map": {}}},
            {**halyard, "id": "corp-strict", "display_name": "Corp (existing users)", "users": "existing"},
            {"id": "tiny", "display_name": "Tiny", "issuer": tiny.issuer, "client_id": "tiny-rp", "ca_file": tiny.ca,
             "users": "create", "token_auth": "client_secret_post"},
        ]
    }  # fmt: skip
    path = base / "federation.json"
    path.write_text(json.dumps(config))
    rp = ServerProcess(base / "rp", free_port())
    rp.env = {"HALYARD_FEDERATION_FILE": str(path)}
    rp.start()
    bundle = base / "bundle.pem"
    bundle.write_text("".join(Path(p).read_text() for p in (rp.ca, server.ca, tiny.ca)))
    try:
        yield Setup(rp, server, tiny, str(bundle))
    finally:
        rp.stop()
        tiny.stop()


class App:
    """The application at ``rp`` the person signs in to (the portal, az): its PKCE verifier and request."""

    def __init__(self, rp: ServerProcess) -> None:
        self.rp = rp
        self.verifier = base64.urlsafe_b64encode(os.urandom(40)).decode().rstrip("=")
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).decode().rstrip("=")
        self.query = {
            "client_id": APP, "response_type": "code", "redirect_uri": APP_REDIRECT, "state": uuid.uuid4().hex,
            "nonce": uuid.uuid4().hex, "scope": rp.admin["audience"] + ".default openid profile offline_access",
            "code_challenge": challenge, "code_challenge_method": "S256",
        }  # fmt: skip
        self.authorize = f"{rp.url}/{rp.admin['tenant']}/oauth2/v2.0/authorize"

    def redeem(self, answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code == 303, answer.text
        back = urlsplit(answer.headers["location"])
        assert f"{back.scheme}://{back.netloc}{back.path}" == APP_REDIRECT
        params = dict(parse_qsl(back.query))
        assert params["state"] == self.query["state"]
        r = httpx.post(
            f"{self.rp.url}/{self.rp.admin['tenant']}/oauth2/v2.0/token", verify=self.rp.ca,
            data={"grant_type": "authorization_code", "client_id": APP, "code": params["code"],
                  "redirect_uri": APP_REDIRECT, "code_verifier": self.verifier},
        )  # fmt: skip
        assert r.status_code == 200, r.text
        return dict(r.json())


def choose(browser: httpx.Client, app: App, provider: str) -> httpx.Response:
    """Open the application's sign-in page at ``rp`` and press "Sign in with <provider>": the redirect to it."""
    page = browser.get(app.authorize, params=app.query)
    assert page.status_code == 200 and f'name="federation" value="{provider}"' in page.text, page.text[:800]
    sent = browser.post(app.authorize, data={**form_of(page.text).fields, "federation": provider})
    assert sent.status_code == 303, sent.text
    return sent


def at_halyard_provider(browser: httpx.Client, location: str, user: str, password: str) -> str:
    """Sign in on the provider's own page (another Halyard); the URL it sends the browser back to."""
    page = browser.get(location)
    assert page.status_code == 200 and 'name="password"' in page.text, page.text[:500]
    signed = browser.post(location.split("?")[0], data={**form_of(page.text).fields, "username": user,
                                                         "password": password})  # fmt: skip
    assert signed.status_code == 303, signed.text[:500]
    return str(signed.headers["location"])


def rp_user(setup: Setup, user_name: str) -> dict[str, Any] | None:
    with setup.rp.client() as admin:
        users = admin.get(f"{DIRECTORY}/users", params=DIRECTORY_VERSION).json()["value"]
    return next((u for u in users if u["userPrincipalName"] == user_name), None)


def test_a_user_signs_in_with_the_organisations_provider_and_gets_its_mapped_groups(setup: Setup) -> None:
    with setup.idp.client() as idp_admin:
        ops = new_group(idp_admin)  # the organisation's group, at the provider
        person, password = new_user(idp_admin, group_id=ops["id"])
    with setup.rp.client() as rp_admin:  # the same group name at Halyard: mapped by name
        r = rp_admin.post(f"{DIRECTORY}/groups", params=DIRECTORY_VERSION, json={"displayName": ops["id"]})
        assert r.status_code == 201, r.text
        rp_group = r.json()
    name = person["userPrincipalName"]
    assert rp_user(setup, name) is None
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        app = App(setup.rp)
        sent = choose(browser, app, "corp")
        location = sent.headers["location"]
        assert location.startswith(f"{setup.idp.url}/{setup.idp.admin['tenant']}/oauth2/v2.0/authorize?")
        asked = dict(parse_qsl(urlsplit(location).query))
        assert asked["code_challenge_method"] == "S256" and asked["nonce"] and asked["state"]
        assert asked["redirect_uri"] == f"{setup.rp.url}/federation/callback"
        assert "__Host-halyard-federation=" in sent.headers["set-cookie"]
        callback = at_halyard_provider(browser, location, name, password)
        assert callback.startswith(f"{setup.rp.url}/federation/callback?")
        answer = browser.get(callback)
        tokens = app.redeem(answer)
        # The callback answer is spent: the same state again is refused plainly (a replay).
        replay = browser.get(callback)
        assert replay.status_code == 400 and "already used" in replay.text and "Traceback" not in replay.text
    claims = claims_of(tokens["access_token"])
    created = rp_user(setup, name)
    assert created is not None  # created just in time ("users": "create")
    assert claims["upn"] == name and claims["oid"] == created["id"] and claims["groups"] == [rp_group["id"]]
    assert claims_of(tokens["id_token"])["nonce"] == app.query["nonce"]
    with setup.rp.client() as rp_admin:
        members = rp_admin.get(f"{DIRECTORY}/groups/{rp_group['id']}/members", params=DIRECTORY_VERSION).json()
        assert [m["id"] for m in members["value"]] == [created["id"]]

    # The organisation takes the person out of the group: their next sign-in at Halyard takes the group away too.
    with setup.idp.client() as idp_admin:
        assert (
            idp_admin.delete(
                f"{DIRECTORY}/groups/{ops['id']}/members/{person['id']}", params=DIRECTORY_VERSION
            ).status_code
            == 204
        )
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        app = App(setup.rp)
        callback = at_halyard_provider(browser, choose(browser, app, "corp").headers["location"], name, password)
        again = app.redeem(browser.get(callback))
    assert claims_of(again["access_token"])["oid"] == created["id"]  # the same user, linked by issuer and subject
    assert claims_of(again["access_token"])["groups"] == []

    # A provider for existing users only: a person with no Halyard user is refused, plainly.
    with setup.idp.client() as idp_admin:
        stranger, stranger_password = new_user(idp_admin)
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        app = App(setup.rp)
        location = choose(browser, app, "corp-strict").headers["location"]
        refused = browser.get(at_halyard_provider(browser, location, stranger["userPrincipalName"], stranger_password))
    assert refused.status_code == 400 and "There is no Halyard user" in refused.text
    assert rp_user(setup, stranger["userPrincipalName"]) is None
    with setup.idp.client() as idp_admin:  # the session's provider is shared: leave nothing behind
        for kind, oid in (("users", person["id"]), ("users", stranger["id"]), ("groups", ops["id"])):
            assert idp_admin.delete(f"{DIRECTORY}/{kind}/{oid}", params=DIRECTORY_VERSION).status_code == 204


def test_a_callback_from_another_browser_is_refused(setup: Setup) -> None:
    setup.tiny.mode = "good"
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        app = App(setup.rp)
        callback = browser.get(choose(browser, app, "tiny").headers["location"]).headers["location"]
    # Someone else's browser (no cookie of this sign-in) opens the answer: login CSRF, refused.
    with httpx.Client(verify=setup.bundle, timeout=30) as other:
        refused = other.get(callback)
    assert refused.status_code == 400 and "not started in this browser" in refused.text


@pytest.mark.parametrize(
    ("mode", "message"),
    [
        ("bad-signature", "bad signature"),
        ("wrong-audience", "is for another application"),
        ("wrong-issuer", "not by the configured issuer"),
        ("no-nonce", "carries no nonce"),
    ],
)
def test_id_tokens_that_fail_a_check_are_refused_with_the_reason(setup: Setup, mode: str, message: str) -> None:
    setup.tiny.mode = mode
    try:
        with httpx.Client(verify=setup.bundle, timeout=30) as browser:
            app = App(setup.rp)
            callback = browser.get(choose(browser, app, "tiny").headers["location"]).headers["location"]
            refused = browser.get(callback)
    finally:
        setup.tiny.mode = "good"
    assert refused.status_code == 400, refused.text
    assert message in refused.text and "Traceback" not in refused.text and "<form" not in refused.text
    assert rp_user(setup, "tina@tiny.example") is None  # nobody was created


def test_a_good_id_token_of_the_tiny_provider_signs_in(setup: Setup) -> None:
    """The control for the refusals above: the same provider, behaving, signs Tina in (created, no groups)."""
    setup.tiny.mode = "good"
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        app = App(setup.rp)
        callback = browser.get(choose(browser, app, "tiny").headers["location"]).headers["location"]
        tokens = app.redeem(browser.get(callback))
    assert claims_of(tokens["access_token"])["upn"] == "tina@tiny.example"


def test_a_device_code_is_approved_by_a_federated_sign_in(setup: Setup) -> None:
    """``az login --use-device-code`` for a person of the organisation: the device page offers the providers too."""
    setup.tiny.mode = "good"
    login = Login(setup.rp)
    grant = login.start()
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        page = browser.get(f"{setup.rp.url}/devicelogin")
        assert 'name="federation" value="tiny"' in page.text and "formnovalidate" in page.text
        assert setup.tiny.issuer in page.headers["content-security-policy"]  # the post may end at the provider
        sent = browser.post(
            f"{setup.rp.url}/devicelogin",
            data={**form_of(page.text).fields, "user_code": grant["user_code"], "federation": "tiny"},
        )
        assert sent.status_code == 303 and sent.headers["location"].startswith(setup.tiny.issuer), sent.text
        assert login.poll(grant["device_code"]).json()["error"] == "authorization_pending"
        done = browser.get(browser.get(sent.headers["location"]).headers["location"])
    assert done.status_code == 200 and "signed in" in done.text.lower(), done.text
    tokens = login.poll(grant["device_code"])
    assert tokens.status_code == 200, tokens.text
    assert claims_of(tokens.json()["access_token"])["upn"] == "tina@tiny.example"


def test_failed_federated_sign_ins_count_against_the_login_throttle(setup: Setup) -> None:
    """Brute force through the callback (guessing states, replaying answers) is throttled like wrong passwords:
    per address, 429 with Retry-After once the burst is spent."""
    with httpx.Client(verify=setup.bundle, timeout=30) as browser:
        statuses = [
            browser.get(f"{setup.rp.url}/federation/callback", params={"code": "x", "state": f"guess-{i}"}).status_code
            for i in range(11)
        ]
        assert statuses[0] == 400 and 429 in statuses, statuses
        locked = browser.get(f"{setup.rp.url}/federation/callback", params={"code": "x", "state": "y"})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    assert "Too many failed sign-in attempts" in locked.text


def test_the_portal_signs_in_with_the_organisations_provider(setup: Setup) -> None:
    """The portal's sign-in is the login service's page, so it offers the providers: Tina signs in to the portal at
    ``rp`` through the tiny provider and lands on the clusters page with a portal session."""
    setup.tiny.mode = "good"
    rp = setup.rp.url
    # From an address of its own: the throttle test in this module leaves 127.0.0.1 locked out for a while.
    own_address = httpx.HTTPTransport(local_address="127.0.0.3", verify=setup.bundle)
    with httpx.Client(transport=own_address, timeout=30) as browser:
        start = browser.get(f"{rp}/portal/clusters")
        assert start.status_code == 303 and start.headers["location"].startswith("/portal/signin"), start.text
        authorize = browser.get(rp + start.headers["location"])
        assert authorize.status_code == 303 and "client_id=halyard-portal" in authorize.headers["location"]
        page = browser.get(rp + authorize.headers["location"])
        assert page.status_code == 200 and 'name="federation" value="tiny"' in page.text, page.text[:800]
        sent = browser.post(
            rp + authorize.headers["location"].split("?")[0], data={**form_of(page.text).fields, "federation": "tiny"}
        )
        assert sent.status_code == 303 and sent.headers["location"].startswith(setup.tiny.issuer), sent.text
        callback = browser.get(sent.headers["location"]).headers["location"]  # the provider sends Tina back
        resumed = browser.get(callback)  # Halyard finishes the portal's authorization request
        assert resumed.status_code == 303 and "/portal/callback?" in resumed.headers["location"], resumed.text
        landed = browser.get(resumed.headers["location"])
        assert landed.status_code == 303 and landed.headers["location"] == "/portal/clusters", landed.text
        clusters = browser.get(f"{rp}/portal/clusters")
    assert clusters.status_code == 200 and "tina@tiny.example" in clusters.text, clusters.text[:800]
