"""The portal's browser tests: one control plane (offline after a few seconds, a gateway listener) and one headless
Chromium (Debian's, driven by Playwright; no browser is downloaded) for the whole module set."""

from __future__ import annotations

import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.support.processes import ServerProcess, free_port
from tests.support.signin import new_user

OFFLINE_AFTER = 4  # seconds without a heartbeat before a cluster shows Offline
PAGE_SIZE = 3
RG_API = {"api-version": "2024-11-01"}
AUTHZ_API = {"api-version": "2022-04-01"}
ROLE = "/providers/Microsoft.Authorization/roleDefinitions/"
OWNER = ROLE + "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
READER = ROLE + "acdd72a7-3385-48ef-bd42-f606fba81ae7"


@dataclass
class PortalPlane:
    server: ServerProcess
    gateway_port: int
    shots: Path

    @property
    def sub(self) -> str:
        return str(self.server.admin["subscription"])

    def group(self, prefix: str = "portal") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:6]}"
        with self.server.client() as c:
            r = c.put(f"/subscriptions/{self.sub}/resourceGroups/{name}", params=RG_API, json={"location": "eastus"})
            assert r.status_code == 201, r.text
        return name

    def user(self, role: str | None = None, scope: str | None = None) -> tuple[dict[str, Any], str]:
        """A user, with ``role`` at ``scope`` (a path) when given, and their password."""
        with self.server.client() as admin:
            user, password = new_user(admin)
            if role and scope:
                self.assign(admin, scope, role, user["id"])
        return user, password

    def assign(self, admin: httpx.Client, scope: str, role: str, principal: str) -> None:
        path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        r = admin.put(path, params=AUTHZ_API, json={"properties": {"roleDefinitionId": role, "principalId": principal}})
        assert r.status_code == 201, r.text

    def settle(self, client: httpx.Client, r: httpx.Response) -> None:
        url = r.headers.get("Azure-AsyncOperation")
        deadline = time.monotonic() + 20
        while url and client.get(url).json()["status"] == "InProgress":
            assert time.monotonic() < deadline, f"{url} never finished"
            time.sleep(0.05)

    def shot(self, page: Page, name: str) -> None:
        path = self.shots / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        print(f"screenshot: {path}")


@pytest.fixture(scope="module")
def portal_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PortalPlane]:
    gateway_port = free_port()
    env = {"HALYARD_OFFLINE_THRESHOLD_SECONDS": str(OFFLINE_AFTER), "HALYARD_GATEWAY_PORT": str(gateway_port),
           # Pages of 3 rows, so a handful of clusters pages (no test group below holds more than 3 but one).
           "HALYARD_PORTAL_PAGE_SIZE": str(PAGE_SIZE)}  # fmt: skip
    server = ServerProcess(tmp_path_factory.mktemp("portal") / "data", free_port(), env=env).start()
    shots = tmp_path_factory.mktemp("portal-screenshots")
    print(f"portal screenshots in {shots}")
    plane = PortalPlane(server, gateway_port, shots)
    try:
        yield plane
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped: Playwright's sync API keeps an event loop running in this thread while it is open, and every
    later test of the worker that runs its own loop (asyncio.run) would fail beside it."""
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    assert chromium, "Debian's chromium is not installed: run scripts/install-system-deps.sh"
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            yield b
        finally:
            b.close()


@dataclass
class Visit:
    """A browser context of one user: its page, every dialog that fired and every portal answer's headers."""

    context: BrowserContext
    page: Page
    dialogs: list[str]
    answers: list[tuple[str, int, dict[str, str]]]


def open_browser(browser: Browser, width: int = 1280, height: int = 800) -> Visit:
    context = browser.new_context(ignore_https_errors=True, viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(15_000)
    dialogs: list[str] = []
    answers: list[tuple[str, int, dict[str, str]]] = []

    def dialog(d: Any) -> None:
        dialogs.append(d.message)
        d.dismiss()

    page.on("dialog", dialog)
    page.on("response", lambda r: answers.append((r.url, r.status, r.headers)) if "/portal" in r.url else None)
    return Visit(context, page, dialogs, answers)


def sign_in(
    visit: Visit, plane: PortalPlane, user: dict[str, Any], password: str, path: str = "/portal/clusters"
) -> None:
    """Open a portal page, be sent to Halyard's sign-in page, sign in, land back on the page."""
    page = visit.page
    page.goto(plane.server.url + path)
    assert "/oauth2/v2.0/authorize" in page.url
    page.fill("input[name=username]", user["userPrincipalName"])
    page.fill("input[name=password]", password)
    page.keyboard.press("Enter")  # keyboard only
    page.wait_for_url(f"**{path.split('?')[0]}**")
    assert page.inner_text("[data-testid=user]") == user["userPrincipalName"]


@pytest.fixture
def visits(browser: Browser) -> Iterator[list[Visit]]:
    """Browser contexts a test opens (closed at its end)."""
    opened: list[Visit] = []
    yield opened
    for v in opened:
        v.context.close()
