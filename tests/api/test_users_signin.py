"""Users, groups and device-code sign-in against a real server: a user holds their groups' roles, rotates refresh
tokens, and loses access when removed from the group or deleted. Passwords are throttled and never echoed."""

from __future__ import annotations

import base64
import hashlib
import os
import uuid
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from tests.support.processes import ServerProcess
from tests.support.signin import AZ_CLIENT, Login, claims_of, form_of, new_user

pytestmark = pytest.mark.e2e

DIR = "/providers/Halyard.Directory"
V = {"api-version": "2026-01-01"}
RG_V = {"api-version": "2021-04-01"}


def test_a_user_signs_in_with_a_device_code_and_holds_their_groups_roles(server: ServerProcess) -> None:
    sub = server.admin["subscription"]
    suffix = uuid.uuid4().hex[:8]
    user_name, password = f"alice-{suffix}@example.test", f"correct horse {suffix}"
    rg, other_rg = (
        f"/subscriptions/{sub}/resourceGroups/people-{suffix}",
        f"/subscriptions/{sub}/resourceGroups/x-{suffix}",
    )
    login = Login(server)
    with server.client() as admin:
        for scope in (rg, other_rg):
            assert admin.put(scope, params=RG_V, json={"location": "westeurope"}).status_code in (200, 201)
        r = admin.post(
            f"{DIR}/users",
            params=V,
            json={"userPrincipalName": user_name, "displayName": "Alice", "password": password},
        )
        assert r.status_code == 201, r.text
        user = r.json()
        assert "password" not in r.text and password not in r.text
        assert (
            admin.post(
                f"{DIR}/users",
                params=V,
                json={"userPrincipalName": user_name, "displayName": "A", "password": password},
            ).status_code
            == 409
        )
        short = admin.post(
            f"{DIR}/users",
            params=V,
            json={"userPrincipalName": f"b{user_name}", "displayName": "B", "password": "short"},
        )
        assert short.status_code == 400 and "short" not in short.json()["error"]["message"].replace(
            "PasswordTooShort", ""
        )
        group = admin.post(f"{DIR}/groups", params=V, json={"displayName": f"readers-{suffix}"}).json()
        assert (
            admin.post(f"{DIR}/groups/{group['id']}/members", params=V, json={"memberId": user["id"]}).status_code
            == 204
        )
        members = admin.get(f"{DIR}/groups/{group['id']}/members", params=V).json()["value"]
        assert [m["id"] for m in members] == [user["id"]]
        reader = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
        r = admin.put(
            f"{rg}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            json={
                "properties": {
                    "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{reader}",
                    "principalId": group["id"],
                }
            },
        )
        assert r.status_code in (200, 201), r.text

        # The device shows a code; polling before the user signs in is pending, as RFC 8628 says.
        grant = login.start()
        assert grant["verification_uri"].endswith("/devicelogin")
        pending = login.poll(grant["device_code"])
        assert (pending.status_code, pending.json()["error"]) == (400, "authorization_pending")
        page = login.http.get("/devicelogin")
        assert page.status_code == 200 and "default-src 'none'" in page.headers["content-security-policy"]
        wrong = login.enter(grant["user_code"], user_name, "not the password at all")
        assert wrong.status_code == 400 and "incorrect" in wrong.text and "not the password" not in wrong.text
        assert login.enter(grant["user_code"].lower().replace("-", ""), user_name, password).status_code == 200
        tokens = login.poll(grant["device_code"]).json()
        assert login.poll(grant["device_code"]).json()["error"] == "invalid_grant"  # a device code is spent once
        claims = claims_of(tokens["access_token"])
        assert claims["oid"] == user["id"] and claims["groups"] == [group["id"]] and claims["idtyp"] == "user"
        assert claims_of(tokens["id_token"])["preferred_username"] == user_name

        # The group's Reader role: reads in its resource group, nothing elsewhere, no writes.
        as_user = {"Authorization": f"Bearer {tokens['access_token']}"}
        assert admin.get(rg, params=RG_V, headers=as_user).status_code == 200
        assert admin.get(other_rg, params=RG_V, headers=as_user).status_code == 403
        assert admin.put(rg, params=RG_V, json={"location": "westeurope"}, headers=as_user).status_code == 403
        assert (
            admin.post(
                f"{DIR}/users",
                params=V,
                json={"userPrincipalName": f"e{user_name}", "displayName": "E", "password": password},
                headers=as_user,
            ).status_code
            == 403
        )

        # Refresh tokens rotate: the new one works once, the old one is refused and its replay revokes the family.
        rotated = login.refresh(tokens["refresh_token"])
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["refresh_token"] != tokens["refresh_token"]
        replay = login.refresh(tokens["refresh_token"])
        assert (replay.status_code, replay.json()["error"]) == (400, "invalid_grant")
        assert login.refresh(rotated.json()["refresh_token"]).json()["error"] == "invalid_grant"

        # Sign-out revokes a session's refresh tokens.
        session = login.sign_in(user_name, password)
        assert (
            login.http.post(f"/{login.tenant}/oauth2/v2.0/revoke", data={"token": session["refresh_token"]}).status_code
            == 200
        )
        assert login.refresh(session["refresh_token"]).json()["error"] == "invalid_grant"

        # Leaving the group takes effect on the next request, with the same token.
        assert admin.delete(f"{DIR}/groups/{group['id']}/members/{user['id']}", params=V).status_code == 204
        assert admin.get(rg, params=RG_V, headers=as_user).status_code == 403

        # A deleted user's tokens are refused at once.
        assert admin.delete(f"{DIR}/users/{user['id']}", params=V).status_code == 204
        assert admin.get(rg, params=RG_V, headers=as_user).status_code == 401
        assert admin.get(f"{DIR}/users/{user['id']}", params=V).status_code == 404
    assert password not in server.whole_log()


def test_wrong_passwords_are_throttled(fresh_server: ServerProcess) -> None:
    fresh_server.env = {"HALYARD_LOGIN_FAILURE_BURST": "3", "HALYARD_LOGIN_FAILURE_REFILL_SECONDS": "60"}
    server = fresh_server.start()
    login = Login(server)
    password = "a long enough password"
    with server.client() as admin:
        r = admin.post(
            f"{DIR}/users",
            params=V,
            json={"userPrincipalName": "bob@example.test", "displayName": "Bob", "password": password},
        )
        assert r.status_code == 201
    grant = login.start()
    statuses = [login.enter(grant["user_code"], "bob@example.test", f"guess {i}").status_code for i in range(4)]
    assert statuses == [400, 400, 400, 429]
    # The right password is refused too while the lock lasts: the guesser cannot tell it from a wrong one.
    locked = login.enter(grant["user_code"], "bob@example.test", password)
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0
    # Another user from the same address is not locked out by bob's failures.
    assert login.enter(grant["user_code"], "carol@example.test", "whatever it is").status_code == 400
    # Guessing device codes is throttled too (pending codes cannot be enumerated).
    guesses = [login.enter(f"ZZZZ-ZZZ{i}", "bob@example.test", password).status_code for i in range(4)]
    assert guesses == [400, 400, 400, 429]
    # Every other way to try a password is throttled by the same count: the authorization code flow's sign-in
    # form (bob is locked there too, right password or not), and there is no password grant (ROPC) to go around it.
    verifier = base64.urlsafe_b64encode(os.urandom(40)).decode().rstrip("=")
    query = {
        "client_id": AZ_CLIENT, "response_type": "code", "redirect_uri": "http://localhost:38125/", "scope": login.scope,
        "code_challenge": base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("="),
        "code_challenge_method": "S256",
    }  # fmt: skip
    authorize = f"/{login.tenant}/oauth2/v2.0/authorize"
    form = form_of(login.http.get(authorize, params=query).text).fields
    locked = login.http.post(authorize, data={**form, "username": "bob@example.test", "password": password})
    assert locked.status_code == 429 and int(locked.headers["retry-after"]) > 0 and "Too many" in locked.text
    dave = [
        login.http.post(authorize, data={**form, "username": "dave@example.test", "password": f"guess {i}"}).status_code
        for i in range(4)
    ]
    assert dave == [400, 400, 400, 429]
    ropc = login.http.post(
        f"/{login.tenant}/oauth2/v2.0/token",
        data={"grant_type": "password", "client_id": AZ_CLIENT, "username": "bob@example.test", "password": password,
              "scope": login.scope},
    )  # fmt: skip
    assert (ropc.status_code, ropc.json()["error"]) == (400, "unsupported_grant_type")


def test_authorization_code_with_pkce_sends_the_user_back_with_a_single_use_code(server: ServerProcess) -> None:
    login = Login(server)
    with server.client() as admin:
        user, password = new_user(admin)
    verifier = base64.urlsafe_b64encode(os.urandom(40)).decode().rstrip("=")
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    redirect = "http://localhost:38123/"
    query = {
        "client_id": AZ_CLIENT, "response_type": "code", "redirect_uri": redirect, "scope": login.scope,
        "state": "s<t>ate", "nonce": "n1", "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    authorize = f"/{login.tenant}/oauth2/v2.0/authorize"
    page = login.http.get(authorize, params=query)
    assert page.status_code == 200 and 'value="s&lt;t&gt;ate"' in page.text
    assert "form-action 'self' http://localhost:38123" in page.headers["content-security-policy"]
    # Refused outright: no PKCE, or a redirect URI that is neither loopback nor this server.
    assert login.http.get(authorize, params={**query, "code_challenge_method": "plain"}).status_code == 400
    assert login.http.get(authorize, params={**query, "redirect_uri": "https://evil.example/cb"}).status_code == 400
    form = form_of(page.text).fields  # the request's parameters and the CSRF token, as the browser posts them

    wrong = login.http.post(authorize, data={**form, "username": user["userPrincipalName"], "password": "nope nope"})
    assert wrong.status_code == 400 and "incorrect" in wrong.text
    signed = login.http.post(authorize, data={**form, "username": user["userPrincipalName"], "password": password})
    assert signed.status_code == 303
    back = urlsplit(signed.headers["location"])
    assert f"{back.scheme}://{back.netloc}/" == redirect
    params = dict(parse_qsl(back.query))
    assert params["state"] == "s<t>ate"

    def redeem(code_verifier: str) -> httpx.Response:
        return login.http.post(
            f"/{login.tenant}/oauth2/v2.0/token",
            data={"grant_type": "authorization_code", "client_id": AZ_CLIENT, "code": params["code"],
                  "redirect_uri": redirect, "code_verifier": code_verifier, "scope": login.scope},
        )  # fmt: skip

    tokens = redeem(verifier)
    assert tokens.status_code == 200, tokens.text
    assert claims_of(tokens.json()["id_token"])["nonce"] == "n1"
    assert claims_of(tokens.json()["access_token"])["oid"] == user["id"]
    assert redeem(verifier).json()["error"] == "invalid_grant"  # single use

    # A code taken on its way back is useless without the verifier (and is spent by the attempt).
    again = login.http.post(authorize, data={**form, "username": user["userPrincipalName"], "password": password})
    params = dict(parse_qsl(urlsplit(again.headers["location"]).query))
    stolen = redeem(base64.urlsafe_b64encode(os.urandom(40)).decode().rstrip("="))
    assert stolen.status_code == 400 and "code_verifier" in stolen.json()["error_description"]
    assert redeem(verifier).json()["error"] == "invalid_grant"


def test_a_temporary_password_signs_in_only_with_a_new_one(server: ServerProcess) -> None:
    login = Login(server)
    suffix = uuid.uuid4().hex[:8]
    name, temporary, chosen = f"tmp-{suffix}@example.test", f"given by admin {suffix}", f"chosen by me {suffix}"
    with server.client() as admin:
        body = {
            "userPrincipalName": name,
            "displayName": "T",
            "password": temporary,
            "forceChangePasswordNextSignIn": True,
        }
        assert admin.post(f"{DIR}/users", params=V, json=body).status_code == 201
    grant = login.start()
    asked = login.enter(grant["user_code"], name, temporary)
    assert asked.status_code == 400 and 'name="new_password"' in asked.text
    assert login.poll(grant["device_code"]).json()["error"] == "authorization_pending"
    same = login.enter(grant["user_code"], name, temporary, new_password=temporary)
    assert same.status_code == 400 and "differ" in same.text
    changed = login.enter(grant["user_code"], name, temporary, new_password=chosen)
    assert changed.status_code == 200, changed.text
    assert login.poll(grant["device_code"]).status_code == 200
    # The temporary password is gone; the chosen one signs in without further ado.
    again = login.start()
    assert login.enter(again["user_code"], name, temporary).status_code == 400
    assert login.sign_in(name, chosen)["access_token"]


def test_sign_in_forms_posted_without_their_token_are_refused_plainly(server: ServerProcess) -> None:
    """CSRF: another site can make a browser post the sign-in or device form (with the attacker's password, to sign
    the victim in as the attacker), but cannot read the token our page gave that browser, nor set its cookie."""
    login = Login(server)
    with server.client() as admin:
        user, password = new_user(admin)
    credentials = {"username": user["userPrincipalName"], "password": password}
    challenge = base64.urlsafe_b64encode(hashlib.sha256(b"v" * 43).digest()).decode().rstrip("=")
    query = {
        "client_id": AZ_CLIENT, "response_type": "code", "redirect_uri": "http://localhost:38124/", "state": "one",
        "scope": login.scope, "code_challenge": challenge, "code_challenge_method": "S256",
    }  # fmt: skip
    authorize = f"/{login.tenant}/oauth2/v2.0/authorize"
    page = login.http.get(authorize, params=query)
    assert page.headers["set-cookie"].startswith("__Host-halyard-signin=")
    assert all(a in page.headers["set-cookie"] for a in ("HttpOnly", "Secure", "SameSite=Lax", "Path=/"))
    form = form_of(page.text).fields
    assert form["csrf_token"]
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as stranger:  # another browser: no cookie
        refused = [
            login.http.post(authorize, data={**query, **credentials}),  # no token at all
            login.http.post(authorize, data={**form, "csrf_token": form["csrf_token"][:-4] + "AAAA", **credentials}),
            login.http.post(authorize, data={**form, "state": "two", **credentials}),  # another request's token
            stranger.post(authorize, data={**form, **credentials}),  # the right token, without its cookie
        ]
        device = login.http.get("/devicelogin")
        grant = login.start()
        device_form = {**form_of(device.text).fields, "user_code": grant["user_code"], **credentials}
        refused += [
            login.http.post("/devicelogin", data={k: v for k, v in device_form.items() if k != "csrf_token"}),
            login.http.post("/devicelogin", data={**device_form, "csrf_token": form["csrf_token"]}),  # a sign-in's
            stranger.post("/devicelogin", data=device_form),
        ]
    for r in refused:
        assert r.status_code == 403, r.text
        assert (
            r.headers["content-type"].startswith("text/html")
            and "default-src 'none'" in r.headers["content-security-policy"]
        )
        assert "was not opened in this browser" in r.text and "Traceback" not in r.text and "<form" not in r.text
    assert login.poll(grant["device_code"]).json()["error"] == "authorization_pending"  # nothing was approved
    # The same browser with its token signs in.
    assert login.http.post("/devicelogin", data=device_form).status_code == 200
    assert login.http.post(authorize, data={**form, **credentials}).status_code == 303
