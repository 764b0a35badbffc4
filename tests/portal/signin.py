"""The portal's sign-in driven with httpx, as a browser does it (no Chromium): the portal's redirect to the login
service, its sign-in form, the callback, and the session cookie it sets."""

from __future__ import annotations

import httpx

from halyard.controlplane.portal.routes import COOKIE, SIGNIN_COOKIE
from tests.support.processes import ServerProcess
from tests.support.signin import form_of


def portal_session(server: ServerProcess, user_name: str, password: str) -> str:
    """Sign ``user_name`` in to the portal of ``server``; the session cookie's value."""
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
        start = http.get("/portal/signin", params={"return_to": "/portal/clusters"})
        assert start.status_code == 303, start.text
        state = start.cookies[SIGNIN_COOKIE]
        authorize = start.headers["location"]
        page = http.get(authorize)
        assert page.status_code == 200, page.text
        signed = http.post(
            authorize.split("?")[0], data={**form_of(page.text).fields, "username": user_name, "password": password}
        )
        assert signed.status_code == 303, signed.text
        back = http.get(signed.headers["location"], cookies={SIGNIN_COOKIE: state})
        assert back.status_code == 303 and back.headers["location"] == "/portal/clusters", back.text
        return str(back.cookies[COOKIE])


def portal_get(server: ServerProcess, path: str, cookie: str) -> httpx.Response:
    """A portal page with the session cookie ``cookie`` (no redirect followed)."""
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as http:
        return http.get(path, cookies={COOKIE: cookie})
