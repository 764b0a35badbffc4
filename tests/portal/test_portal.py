"""The portal in a real headless Chromium against a real server: an operator signs in, sees the fleet with the
right statuses, watches a cluster go Offline without reloading, opens a cluster, approves a private endpoint, reads a
gateway's audit, adds a role assignment and signs out. Readers cannot change anything, rights on one group show
nothing of another, every answer carries a strict CSP and script in names and tags stays text."""

from __future__ import annotations

import asyncio
import ssl
import time
from urllib.parse import quote

import httpx
import pytest
from playwright.sync_api import Browser

from tests.api.agentcreds import Agent
from tests.api.helpers import cluster_body
from tests.portal.conftest import OWNER, READER, PortalPlane, Visit, open_browser, sign_in
from tests.portal.fleet import apart, heartbeating, onboard
from tests.support.signin import Login

pytestmark = pytest.mark.e2e
HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}
CC = {"api-version": "2026-05-01"}


def _status_of(visit: Visit, name: str) -> str:
    return visit.page.inner_text(f"tr[data-cluster='{name}'] [data-testid=status]")


def _pending_endpoint(plane: PortalPlane, group: str) -> str:
    """A private link scope and a private endpoint asking to connect to it (manual: Pending); the scope's id."""
    base = f"/subscriptions/{plane.sub}/resourceGroups/{group}/providers"
    scope, vnet = (
        f"{base}/Microsoft.HybridCompute/privateLinkScopes/scope-a",
        f"{base}/Microsoft.Network/virtualNetworks/vnet-a",
    )
    with plane.server.client() as c:
        for path, api, body in (
            (scope, HC, {"location": "eastus", "properties": {"publicNetworkAccess": "Disabled"}}),
            (vnet, NET, {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.7.0.0/16"]},
             "subnets": [{"name": "default", "properties": {"addressPrefix": "10.7.0.0/24"}}]}}),
            (f"{base}/Microsoft.Network/privateEndpoints/pe-a", NET, {"location": "eastus", "properties": {
             "subnet": {"id": f"{vnet}/subnets/default"}, "manualPrivateLinkServiceConnections": [{"name": "c",
             "properties": {"privateLinkServiceId": scope, "groupIds": ["hybridcompute"], "requestMessage": "please"}}]}}),
        ):  # fmt: skip
            r = c.put(path, params=api, json=body)
            assert r.status_code == 201, r.text
            plane.settle(c, r)
    return scope


def _denied_through_gateway(plane: PortalPlane, group: str, agent: Agent) -> str:
    """A gateway, ``agent``'s cluster linked to it, and one connection it refuses (a destination outside Halyard),
    so its audit has a row; the gateway's id."""
    gw_api = {"api-version": "2024-07-31-preview"}
    path = f"/subscriptions/{plane.sub}/resourceGroups/{group}/providers/Microsoft.HybridCompute/gateways/gw-a"
    with plane.server.client() as c:
        r = c.put(path, params=gw_api, json={"location": "eastus", "properties": {"allowedFeatures": ["*"]}})
        assert r.status_code == 201, r.text
        plane.settle(c, r)
        endpoint = c.get(path, params=gw_api).json()["properties"]["gatewayEndpoint"]
        settings = f"{agent.path}/providers/Microsoft.HybridCompute/settings/default"
        r = c.put(settings, params=gw_api, json={"properties": {"gatewayProperties": {"gatewayResourceId": path}}})
        assert r.status_code in (200, 201), r.text
        plane.settle(c, r)

    async def refused() -> int:
        tls = ssl.create_default_context(cafile=plane.server.ca)
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", plane.gateway_port, ssl=tls, server_hostname=endpoint
        )
        writer.write(
            f"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\nProxy-Authorization: Bearer {agent.token}\r\n\r\n".encode()
        )
        head = await reader.readuntil(b"\r\n\r\n")
        writer.close()
        return int(head.split()[1])

    assert apart(asyncio.run, refused()) == 403
    with plane.server.client() as c:
        deadline = time.monotonic() + 10
        while not c.get(f"{path}/auditRecords", params=gw_api).json()["value"]:
            assert time.monotonic() < deadline, "the refusal was never audited"
            time.sleep(0.1)
    return path


def test_an_operator_runs_the_fleet_from_the_portal(
    portal_plane: PortalPlane, browser: Browser, visits: list[Visit]
) -> None:
    plane = portal_plane
    group = plane.group("fleet")
    agents = {name: onboard(plane.server, group, name) for name in ("c-steady", "c-fading")}
    quiet = onboard(plane.server, group, "c-new")  # onboarded, never heartbeats: Connecting
    scope = _pending_endpoint(plane, group)
    with plane.server.client() as c:  # c-new joins the scope (it never beats, so the scope's rules never refuse it)
        body = c.get(quiet.path, params=CC).json()
        props = {"agentPublicKeyCertificate": body["properties"]["agentPublicKeyCertificate"],
                 "privateLinkState": "Enabled", "privateLinkScopeResourceId": scope}  # fmt: skip
        r = c.put(
            quiet.path,
            params=CC,
            json={"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": props},
        )
        assert r.status_code in (200, 201), r.text
        plane.settle(c, r)
    gateway = _denied_through_gateway(plane, group, agents["c-steady"])
    user, password = plane.user(OWNER, f"/subscriptions/{plane.sub}")
    colleague, _ = plane.user()

    with heartbeating(plane.server, agents) as silent:
        visit = open_browser(browser)
        visits.append(visit)
        page = visit.page
        sign_in(visit, plane, user, password, f"/portal/clusters?group={group}")
        assert _status_of(visit, "c-steady") == "Connected"
        assert _status_of(visit, "c-fading") == "Connected"
        assert _status_of(visit, "c-new") == "Connecting"
        page.wait_for_selector("[data-testid=count-connected]")
        assert page.inner_text("[data-testid=count-all]") == "3"
        plane.shot(page, "clusters")

        # c-fading stops beating: the table (polled, no reload) shows it Offline within the threshold and a poll.
        silent.add("c-fading")
        url = page.url
        page.wait_for_function(
            "() => document.querySelector(\"tr[data-cluster='c-fading'] [data-testid=status]\")?.textContent === 'Offline'",
            timeout=(4 + 5 + 6) * 1000,
        )
        assert page.url == url and _status_of(visit, "c-steady") == "Connected"
        plane.shot(page, "clusters-offline")

        # Filter by status (server side, through the API's pages).
        page.select_option("select[name=status]", "Offline")
        page.click("form.filters button[type=submit]")
        page.wait_for_url("**status=Offline**")
        assert [r.get_attribute("data-cluster") for r in page.query_selector_all("tr[data-cluster]")] == ["c-fading"]

        # A cluster's page: its properties, the agents' report, how to reach it.
        page.goto(f"{plane.server.url}/portal/clusters?group={group}")
        page.click("text=c-steady")
        page.wait_for_url("**/clusters/c-steady")
        main = page.inner_text("main")
        assert "v1.31.2" in main and "k3s" in main and "az connectedk8s proxy -n c-steady" in main
        assert "Microsoft.KubernetesConfiguration/extensions" in main
        assert page.inner_text("[data-testid=agent-state]") == "Succeeded" and "identity-operator" in main
        plane.shot(page, "cluster")

        # Phone width: the same table, narrower.
        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(f"{plane.server.url}/portal/clusters?group={group}")
        assert page.is_visible("tr[data-cluster='c-steady'] [data-testid=status]")
        plane.shot(page, "clusters-phone")
        page.set_viewport_size({"width": 1280, "height": 800})

    # Private link: the Pending endpoint is approved from the portal.
    page.goto(f"{plane.server.url}/portal/privatelink")
    assert "c-new" in page.inner_text("[data-testid=scope-clusters]")
    row = page.locator("tr[data-connection]").filter(has_text="pe-a")
    assert row.locator("[data-testid=connection-state]").inner_text() == "Pending"
    row.get_by_role("button", name="Approve").click()
    page.wait_for_url("**/portal/privatelink?notice=**")
    assert (
        page.locator("tr[data-connection]")
        .filter(has_text="pe-a")
        .locator("[data-testid=connection-state]")
        .inner_text()
        == "Approved"
    )
    plane.shot(page, "privatelink")
    with plane.server.client() as c:
        states = [x["properties"]["privateLinkServiceConnectionState"]["status"]
                  for x in c.get(f"{scope}/privateEndpointConnections", params=HC).json()["value"]]  # fmt: skip
    assert states == ["Approved"]

    # A gateway: the clusters using it and its audit (loaded and refreshed by htmx), filterable by verdict.
    page.goto(f"{plane.server.url}/portal/gateways")
    page.click("text=gw-a")
    page.wait_for_selector("table.audit")
    audit = page.inner_text("[data-testid=audit]")
    assert "example.com:443" in audit and "denied" in audit and "c-steady" in page.inner_text("main")
    plane.shot(page, "gateway")
    page.select_option("select[name=verdict]", "allowed")
    page.click("form.filters button[type=submit]")
    page.wait_for_selector("[data-testid=audit] .empty")
    assert gateway.endswith("gw-a")

    # A role assignment: Reader for a colleague on the group, made from the portal, seen by the API.
    page.goto(f"{plane.server.url}/portal/access")
    page.fill("input[name=scope]", f"/subscriptions/{plane.sub}/resourceGroups/{group}")
    page.select_option("select[name=role]", label="Reader")
    page.fill("input[name=principal]", colleague["id"])
    page.click("form.stacked button[type=submit]")
    page.wait_for_url("**/portal/access?notice=**")
    plane.shot(page, "access")
    with plane.server.client() as c:
        made = c.get(f"/subscriptions/{plane.sub}/resourceGroups/{group}/providers/Microsoft.Authorization/roleAssignments",
                     params={"api-version": "2022-04-01"}).json()["value"]  # fmt: skip
    assert any(
        a["properties"]["principalId"] == colleague["id"]
        and a["properties"]["roleDefinitionId"].endswith(READER.rsplit("/", 1)[-1])
        for a in made
    )

    # Delete, confirmed by typing the name: a wrong name deletes nothing.
    page.goto(f"{plane.server.url}/portal/subscriptions/{plane.sub}/resourceGroups/{group}/clusters/c-new")
    page.click("text=Delete this cluster")
    page.fill("input[name=confirm_name]", "c-other")
    page.keyboard.press("Enter")
    page.wait_for_selector("text=does not match")
    page.fill("input[name=confirm_name]", "c-new")
    page.keyboard.press("Enter")
    page.wait_for_url("**/portal/clusters?**notice=**")
    with plane.server.client() as c:
        path = (
            f"/subscriptions/{plane.sub}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters/c-new"
        )
        deadline = time.monotonic() + 20
        while c.get(path, params=CC).status_code != 404:
            assert time.monotonic() < deadline, "the cluster was never deleted"
            time.sleep(0.1)

    # Every portal answer carried the strict policy; nothing ever opened a dialog.
    for url, status, headers in visit.answers:
        assert "default-src 'none'" in headers.get("content-security-policy", ""), (url, status)
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert not visit.dialogs

    # Sign out: the session is gone; the portal asks to sign in again.
    page.click("text=Sign out")
    page.wait_for_selector("text=You are signed out")
    page.goto(f"{plane.server.url}/portal/clusters")
    assert "/oauth2/v2.0/authorize" in page.url


def test_the_table_sorts_the_whole_group_and_pages_both_ways(
    portal_plane: PortalPlane, browser: Browser, visits: list[Visit]
) -> None:
    plane = portal_plane
    group = plane.group("sort")
    names = ["s-a", "S-b", "s-c", "s-d", "s-e"]  # five: two pages of three (the plane's page size)
    with plane.server.client() as c:
        for name in names:
            path = f"/subscriptions/{plane.sub}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters/{name}"
            r = c.put(path, params=CC, json=cluster_body())
            assert r.status_code == 201, r.text
            plane.settle(c, r)
    user, password = plane.user(READER, f"/subscriptions/{plane.sub}/resourceGroups/{group}")
    visit = open_browser(browser)
    visits.append(visit)
    page = visit.page

    def shown() -> list[str | None]:
        return [r.get_attribute("data-cluster") for r in page.query_selector_all("tr[data-cluster]")]

    sign_in(visit, plane, user, password, f"/portal/clusters?group={group}")
    assert shown() == ["s-a", "S-b", "s-c"]  # the first page of three
    page.click("a[data-sort=name]")  # by name, whatever its case
    page.wait_for_url("**sort=name**")
    assert shown() == ["s-a", "S-b", "s-c"]
    page.click("a[data-sort=name]")  # descending, over the whole group: not the page shown reversed
    page.wait_for_url("**order=desc**")
    assert shown() == ["s-e", "s-d", "s-c"]
    page.click("a[rel=next]")
    page.wait_for_url("**back=**")
    assert shown() == ["S-b", "s-a"] and page.query_selector("a[rel=next]") is None
    plane.shot(page, "clusters-sorted-page-2")
    page.click("a[rel=prev]")
    page.wait_for_selector("a[rel=next]")
    assert shown() == ["s-e", "s-d", "s-c"] and page.query_selector("a[rel=prev]") is None
    assert "order=desc" in page.url


def test_a_clusters_page_shows_its_activity(portal_plane: PortalPlane, browser: Browser, visits: list[Visit]) -> None:
    """The cluster page's Activity: the activity log's events of the cluster, newest first, with who (a user by
    sign-in name), what, how it ended and when, read through the API with the signed-in user's token."""
    plane = portal_plane
    group = plane.group("log")
    agent = onboard(plane.server, group, "c-log")
    user, password = plane.user(OWNER, f"/subscriptions/{plane.sub}/resourceGroups/{group}")
    token = Login(plane.server).sign_in(user["userPrincipalName"], password)["access_token"]
    with plane.server.client(token) as c:
        body = c.get(agent.path, params=CC).json()
        again = {"location": body["location"], "identity": {"type": "SystemAssigned"}, "tags": {"by": "user"},
                 "properties": {"agentPublicKeyCertificate": body["properties"]["agentPublicKeyCertificate"]}}  # fmt: skip
        r = c.put(agent.path, params=CC, json=again)
        assert r.status_code == 200, r.text
        plane.settle(c, r)
        assert c.put(agent.path, params=CC, json=again, headers={"If-Match": '"stale"'}).status_code == 412
    visit = open_browser(browser)
    visits.append(visit)
    page = visit.page
    sign_in(visit, plane, user, password, f"/portal/subscriptions/{plane.sub}/resourceGroups/{group}/clusters/c-log")
    rows = [[cell.inner_text() for cell in row.query_selector_all("td")]
            for row in page.query_selector_all("[data-testid=activity] tr[data-testid=event]")]  # fmt: skip
    write = "Microsoft.Kubernetes/connectedClusters/write"
    upn = user["userPrincipalName"]
    assert [(r[1], r[2], r[3]) for r in rows[:5]] == [
        (write, "Failed (PreconditionFailed)", upn), (write, "Started", upn), (write, "Succeeded (OK)", upn),
        (write, "Accepted (OK)", upn), (write, "Started", upn),
    ]  # fmt: skip
    assert len(rows) == 8 and rows[-1][2] == "Started" and rows[-1][3] != upn  # the onboarding, by its principal
    assert [r[0] for r in rows] == sorted((r[0] for r in rows), reverse=True)
    plane.shot(page, "cluster-activity")


def test_a_reader_sees_but_cannot_change(portal_plane: PortalPlane, browser: Browser, visits: list[Visit]) -> None:
    plane = portal_plane
    group = plane.group("read")
    onboard(plane.server, group, "c-read")
    reader, password = plane.user(READER, f"/subscriptions/{plane.sub}/resourceGroups/{group}")
    visit = open_browser(browser)
    visits.append(visit)
    page = visit.page
    sign_in(visit, plane, reader, password)
    page.wait_for_selector("tr[data-cluster='c-read']")
    page.goto(f"{plane.server.url}/portal/subscriptions/{plane.sub}/resourceGroups/{group}/clusters/c-read/delete")
    page.fill("input[name=confirm_name]", "c-read")
    page.keyboard.press("Enter")
    page.wait_for_selector("[data-testid=error]")
    assert "403 AuthorizationFailed" in page.inner_text("[data-testid=error]")
    plane.shot(page, "reader-refused")
    with plane.server.client() as c:
        path = (
            f"/subscriptions/{plane.sub}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters/c-read"
        )
        assert c.get(path, params=CC).status_code == 200

    # A form posted without the session's CSRF token is refused, whoever's cookie it carries.
    cookies = {c["name"]: c["value"] for c in visit.context.cookies()}
    r = httpx.post(f"{plane.server.url}/portal/access/remove", data={"assignment": "x"}, cookies=cookies,
                   verify=plane.server.ca)  # fmt: skip
    assert r.status_code == 403 and "InvalidCsrfToken" in r.text

    # The user deleted while signed in: the API no longer accepts their token, and the portal asks to sign in.
    with plane.server.client() as c:
        assert c.delete(
            f"/providers/Halyard.Directory/users/{reader['id']}", params={"api-version": "2026-01-01"}
        ).status_code in (200, 204)
    page.goto(f"{plane.server.url}/portal/clusters")
    assert "/oauth2/v2.0/authorize" in page.url


def test_rights_on_one_group_show_nothing_of_another(
    portal_plane: PortalPlane, browser: Browser, visits: list[Visit]
) -> None:
    plane = portal_plane
    group_a, group_b = plane.group("a"), plane.group("b")
    onboard(plane.server, group_a, "c-of-a")
    onboard(plane.server, group_b, "c-of-b")
    user, password = plane.user(OWNER, f"/subscriptions/{plane.sub}/resourceGroups/{group_a}")
    visit = open_browser(browser)
    visits.append(visit)
    page = visit.page
    sign_in(visit, plane, user, password)
    page.wait_for_selector("tr[data-cluster='c-of-a']")
    names = {r.get_attribute("data-cluster") for r in page.query_selector_all("tr[data-cluster]")}
    assert names == {"c-of-a"}
    page.wait_for_selector("[data-testid=count-all]")
    assert page.inner_text("[data-testid=count-all]") == "1"
    page.goto(f"{plane.server.url}/portal/groups")
    assert group_a in page.inner_text("main") and group_b not in page.content()
    # Who may do what in their group, yes; in the other group, ARM's 403 in place of the list.
    page.goto(f"{plane.server.url}/portal/access")
    page.fill("input[name=scope]", f"/subscriptions/{plane.sub}/resourceGroups/{group_a}")
    page.keyboard.press("Enter")
    page.wait_for_url("**scope=**")
    assert user["id"] in page.inner_text("main") and "Owner" in page.inner_text("main")
    page.goto(f"{plane.server.url}/portal/access?scope=/subscriptions/{plane.sub}/resourceGroups/{group_b}")
    assert "403" in page.inner_text("[data-testid=error]") and "<td>" not in page.content()
    page.goto(f"{plane.server.url}/portal/subscriptions/{plane.sub}/resourceGroups/{group_b}/clusters/c-of-b")
    assert (
        "403" in page.inner_text("[data-testid=error]")
        and "c-of-b" not in page.inner_text("[data-testid=error]").split("\n")[0]
    )


PAYLOADS = ['<script>alert("tag")</script>', '"><img src=x onerror=alert(1)>', "<svg onload=alert(2)>"]


def test_script_in_tags_and_names_is_shown_as_text(
    portal_plane: PortalPlane, browser: Browser, visits: list[Visit]
) -> None:
    plane = portal_plane
    group = plane.group("xss")
    agent = onboard(plane.server, group, "c-xss")
    tags = {f"t{i}": p for i, p in enumerate(PAYLOADS)}
    with plane.server.client() as c:
        r = c.patch(agent.path, params=CC, json={"tags": tags})
        assert r.status_code in (200, 202), r.text
        plane.settle(c, r)
    user, password = plane.user(OWNER, f"/subscriptions/{plane.sub}")
    visit = open_browser(browser)
    visits.append(visit)
    page = visit.page
    sign_in(visit, plane, user, password, f"/portal/clusters?group={group}&name=<script>alert(9)</script>")
    page.goto(f"{plane.server.url}/portal/clusters?group={group}")
    page.wait_for_selector("tr[data-cluster='c-xss']")
    text = page.inner_text("tr[data-cluster='c-xss']")
    assert all(f"t{i}={p}" in text for i, p in enumerate(PAYLOADS))
    page.goto(
        agent_page := f"{plane.server.url}/portal/subscriptions/{plane.sub}/resourceGroups/{group}/clusters/c-xss"
    )
    assert all(p in page.inner_text("main") for p in PAYLOADS)
    # What the user typed comes back in the form and in ARM's error message: as text too.
    page.goto(f"{plane.server.url}/portal/clusters?group={quote(PAYLOADS[1])}&name={quote(PAYLOADS[2])}")
    assert page.input_value("input[name=name]") == PAYLOADS[2]
    assert PAYLOADS[1] in page.inner_text("[data-testid=error]")
    assert page.query_selector("img") is None and page.query_selector("svg") is None
    plane.shot(page, "xss")
    page.wait_for_timeout(500)  # a handler that would fire on load has had its chance
    assert not visit.dialogs, visit.dialogs
    assert agent_page


def test_static_files_and_redirects_send_the_policy_too(portal_plane: PortalPlane) -> None:
    with httpx.Client(base_url=portal_plane.server.url, verify=portal_plane.server.ca) as http:
        for path in ("/portal/static/htmx-2.0.11.min.js", "/portal/static/portal.css", "/portal/static/nope.js",
                     "/portal/clusters", "/portal/signin", "/portal/no-such-page", "/portal/signout"):  # fmt: skip
            r = http.get(path)
            csp = r.headers.get("content-security-policy", "")
            assert "default-src 'none'" in csp and "script-src 'self'" in csp and "'unsafe-inline'" not in csp, path
            assert r.headers["x-frame-options"] == "DENY" and r.headers["x-content-type-options"] == "nosniff", path
        signin = http.get("/portal/signin")
        assert signin.status_code == 303 and "code_challenge_method=S256" in signin.headers["location"]
        cookie = signin.headers["set-cookie"].lower()
        assert "httponly" in cookie and "secure" in cookie and "samesite=strict" in cookie
        # Back from the login service with a state this browser never started: refused.
        r = http.get("/portal/callback", params={"code": "x", "state": "forged"})
        assert r.status_code == 400 and "__Host-halyard-portal=" not in r.headers.get("set-cookie", "")
        # return_to never leaves the portal.
        r = http.get("/portal/signin", params={"return_to": "https://evil.example/"})
        assert r.status_code == 303
