"""A user's sign-in with a device code, driven the way a person would on the device page (with httpx)."""

from __future__ import annotations

import base64
import json
import uuid
from html.parser import HTMLParser
from typing import Any

import httpx

from tests.support.processes import ServerProcess

DIRECTORY = "/providers/Halyard.Directory"
DIRECTORY_VERSION = {"api-version": "2026-01-01"}
AZ_CLIENT = "04b07795-8ddb-461a-bbee-02f9e1bf7b46"  # the Azure CLI's public client id
DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"


def claims_of(token: str) -> dict[str, Any]:
    body = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))))


class PageForm(HTMLParser):
    """The first form of a page, as a browser reads it: its action and its hidden fields (the CSRF token among
    them)."""

    def __init__(self) -> None:
        super().__init__()
        self.action: str | None = None
        self.fields: dict[str, str] = {}
        self._forms = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._forms += 1
            if self._forms == 1:
                self.action = a.get("action", "")
        elif tag == "input" and a.get("type") == "hidden" and self._forms == 1:
            self.fields[a["name"]] = a.get("value", "")


def form_of(html: str) -> PageForm:
    parser = PageForm()
    parser.feed(html)
    return parser


def fill_device_page(client: httpx.Client, page: str, fields: dict[str, str]) -> httpx.Response:
    """What a person does on the device page: open it (the browser gets its cookie and the form its token), then
    post the code, user name and password."""
    opened = client.get(page)
    assert opened.status_code == 200, opened.text
    return client.post(page, data={**form_of(opened.text).fields, **fields})


class Login:
    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.http = httpx.Client(base_url=server.url, verify=server.ca, timeout=30)
        self.tenant = server.admin["tenant"]
        self.scope = server.admin["audience"] + ".default offline_access openid profile"

    def start(self) -> dict[str, Any]:
        r = self.http.post(f"/{self.tenant}/oauth2/v2.0/devicecode", data={"client_id": AZ_CLIENT, "scope": self.scope})
        assert r.status_code == 200, r.text
        return dict(r.json())

    def poll(self, device_code: str) -> httpx.Response:
        return self.http.post(
            f"/{self.tenant}/oauth2/v2.0/token",
            data={"grant_type": DEVICE_GRANT, "client_id": AZ_CLIENT, "device_code": device_code},
        )

    def enter(self, user_code: str, user: str, password: str, **more: str) -> httpx.Response:
        return fill_device_page(
            self.http, "/devicelogin", {"user_code": user_code, "username": user, "password": password, **more}
        )

    def refresh(self, token: str) -> httpx.Response:
        return self.http.post(
            f"/{self.tenant}/oauth2/v2.0/token",
            data={"grant_type": "refresh_token", "client_id": AZ_CLIENT, "refresh_token": token, "scope": self.scope},
        )

    def sign_in(self, user: str, password: str) -> dict[str, Any]:
        grant = self.start()
        assert self.enter(grant["user_code"], user, password).status_code == 200
        r = self.poll(grant["device_code"])
        assert r.status_code == 200, r.text
        return dict(r.json())


def new_user(admin: httpx.Client, *, group_id: str | None = None) -> tuple[dict[str, Any], str]:
    """A user made through the management API (and put in ``group_id``), with their password."""
    suffix = uuid.uuid4().hex[:8]
    password = f"a good password {suffix}"
    body = {"userPrincipalName": f"user-{suffix}@example.test", "displayName": f"User {suffix}", "password": password}
    r = admin.post(f"{DIRECTORY}/users", params=DIRECTORY_VERSION, json=body)
    assert r.status_code == 201, r.text
    user = dict(r.json())
    if group_id:
        added = admin.post(
            f"{DIRECTORY}/groups/{group_id}/members", params=DIRECTORY_VERSION, json={"memberId": user["id"]}
        )
        assert added.status_code == 204, added.text
    return user, password


def new_group(admin: httpx.Client) -> dict[str, Any]:
    r = admin.post(
        f"{DIRECTORY}/groups", params=DIRECTORY_VERSION, json={"displayName": f"group-{uuid.uuid4().hex[:8]}"}
    )
    assert r.status_code == 201, r.text
    return dict(r.json())
