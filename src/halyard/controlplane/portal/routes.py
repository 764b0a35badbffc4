"""The portal's pages. Each handler signs the user in (or sends them to), calls the management API with their token
(``management.py``) and renders a template; errors the API returns are shown as ARM wrote them."""

from __future__ import annotations

import base64
import datetime as dt
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from halyard.controlplane.arm.resourcetypes import Placement
from halyard.controlplane.plane import ControlPlane
from halyard.controlplane.portal import fleet
from halyard.controlplane.portal.management import (
    AUTHORIZATION_API,
    CLUSTERS,
    CLUSTERS_API,
    DIRECTORY_API,
    HYBRIDCOMPUTE_API,
    RESOURCES_API,
    ApiError,
    Management,
)
from halyard.controlplane.portal.security import CSRF_FIELD, CSRF_HEADER, HEADERS, PAGE_HEADERS, csrf_ok
from halyard.controlplane.portal.sessions import Session, Sessions

PREFIX = "/portal"
CLIENT_ID = "halyard-portal"  # the portal is a public client of Halyard's own login service
COOKIE = "__Host-halyard-portal"  # __Host-: Secure, Path=/, no Domain, so no sibling host can set or read it
SIGNIN_COOKIE = "__Host-halyard-portal-signin"
SCAN_LIMIT = 10_000  # clusters one filtered page or the counts read at most
ACTIVITY_API = "2015-04-01"
ACTIVITY_ROWS = 50  # a cluster page's activity: its newest events
_HERE = Path(__file__).parent
_STATIC = {
    "htmx-2.0.11.min.js": "text/javascript; charset=utf-8",
    "htmx-LICENSE.txt": "text/plain; charset=utf-8",
    "portal.css": "text/css; charset=utf-8",
}
HYBRIDCOMPUTE = "providers/Microsoft.HybridCompute"

router = APIRouter(prefix=PREFIX, include_in_schema=False)


class SignInNeeded(Exception):
    """No session (or it expired): a page goes to sign-in, an htmx fragment asks the page to."""


@dataclass
class Portal:
    cp: ControlPlane
    sessions: Sessions
    api: Management
    templates: jinja2.Environment
    static: dict[str, bytes]


def install(app: FastAPI, cp: ControlPlane) -> Portal:
    """Serve the portal on ``app`` (its routes, static files and the sign-in redirect)."""
    templates = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=True,  # every template, every value: names and tags are the user's text
    )
    portal = Portal(
        cp,
        Sessions(cp.db, cp.sealer, cp.clock),
        Management(app, cp.settings.base_url),
        templates,
        {name: (_HERE / "static" / name).read_bytes() for name in _STATIC},
    )
    app.state.portal = portal
    app.include_router(router)

    async def sign_in_needed(request: Request, exc: Exception) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={**PAGE_HEADERS, "HX-Redirect": f"{PREFIX}/signin"})
        back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"{PREFIX}/signin?{urlencode({'return_to': back})}", 303, headers=PAGE_HEADERS)

    app.add_exception_handler(SignInNeeded, sign_in_needed)
    return portal


def _portal(request: Request) -> Portal:
    portal = request.app.state.portal
    assert isinstance(portal, Portal)
    return portal


# ---- pages and their plumbing --------------------------------------------------------------------------------------


@dataclass
class Ctx:
    """One request of a signed-in user: their session and the management API as them."""

    request: Request
    portal: Portal
    session: Session

    async def api(self, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
        return (await self.portal.api.call(method, path, self.session.access_token, **kwargs)).body

    def render(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        return render(self.portal, template, status, user=self.session.user_name, csrf=self.session.csrf, **values)

    async def form(self) -> dict[str, str]:
        """The posted form, once its CSRF token and origin are checked (a 403 page otherwise)."""
        form = await _form(self.request)
        sent = form.get(CSRF_FIELD) or self.request.headers.get(CSRF_HEADER)
        if not csrf_ok(
            self.session.csrf, sent, self.request.headers.get("origin"),
            self.portal.cp.settings.base_url,
        ):  # fmt: skip
            raise ApiError(
                403, "InvalidCsrfToken", "This form is stale or was not sent by the portal: reload the page."
            )
        return form


MAX_FORM = 16 * 1024


async def _form(request: Request) -> dict[str, str]:
    """A posted urlencoded form (the portal's forms are all small and flat), bounded."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        raise ApiError(415, "UnsupportedMediaType", "The portal's forms are sent urlencoded.")
    raw = await request.body()
    if len(raw) > MAX_FORM:
        raise ApiError(413, "RequestTooLarge", "The form is too large.")
    try:
        return {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        raise ApiError(400, "InvalidRequest", "The form is not valid UTF-8.") from None


def render(portal: Portal, template: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("user", "")
    values.setdefault("csrf", "")
    body = portal.templates.get_template(template).render(prefix=PREFIX, **values)
    return HTMLResponse(body, status_code=status, headers=PAGE_HEADERS)


async def signed_in(request: Request) -> Ctx:
    portal = _portal(request)
    key = request.cookies.get(COOKIE)
    session = await portal.sessions.get(key)
    if session is None or key is None:
        raise SignInNeeded()
    if portal.sessions.needs_refresh(session):
        session = await _refresh(portal, key, session)
    return Ctx(request, portal, session)


async def _refresh(portal: Portal, key: str, session: Session) -> Session:
    """The session with a fresh access token: redeemed here if this request wins the claim (one redemption at a
    time across replicas), else the current token while it lasts, else the one another request is fetching."""
    sessions = portal.sessions
    if not await sessions.claim_refresh(session):
        if not sessions.expired(session):
            return session
        fresh = await sessions.refreshed_elsewhere(key)
        if fresh is None:
            raise SignInNeeded()
        return fresh
    try:
        tokens = await _token(portal, {"grant_type": "refresh_token", "refresh_token": session.refresh_token})
    except ApiError:
        await sessions.end(key)
        raise SignInNeeded() from None
    return await sessions.refreshed(
        key, session, tokens["access_token"], tokens["refresh_token"], int(tokens["expires_in"])
    )


Page = Callable[[Ctx], Awaitable[Response]]


async def page(request: Request, handler: Page) -> Response:
    """Run a page for the signed-in user; an API error becomes the error page with ARM's code and message."""
    ctx = await signed_in(request)
    try:
        return await handler(ctx)
    except ApiError as exc:
        if exc.status == 401:  # the token stopped being accepted (the user was deleted, keys rotated): sign in again
            await ctx.portal.sessions.end(request.cookies.get(COOKIE))
            raise SignInNeeded() from None
        template = "fragment_error.html" if request.headers.get("hx-request") else "error.html"
        return ctx.render(template, status=exc.status, error=exc)


async def _tenant(portal: Portal) -> str:
    tenants = await portal.cp.directory.tenants()
    return tenants[0].id


async def _token(portal: Portal, form: dict[str, str]) -> dict[str, Any]:
    tenant = await _tenant(portal)
    form = {**form, "client_id": CLIENT_ID, "scope": _scope(portal)}
    return (await portal.api.call("POST", f"/{tenant}/oauth2/v2.0/token", None, form=form)).body


def _scope(portal: Portal) -> str:
    return f"{portal.cp.settings.audience}.default openid profile offline_access"


def _local(path: str) -> str:
    """``path`` if it is a page of the portal (no open redirect through return_to), else the portal's home."""
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/") or "\\" in path:
        return f"{PREFIX}/clusters"
    return path


# ---- sign-in and sign-out ------------------------------------------------------------------------------------------


@router.get("")
@router.get("/")
async def home() -> Response:
    return RedirectResponse(f"{PREFIX}/clusters", 303, headers=PAGE_HEADERS)


@router.get("/signin")
async def sign_in(request: Request, return_to: str = "") -> Response:
    """The authorization code flow with PKCE against Halyard's own login service, the portal as its client."""
    portal = _portal(request)
    state, pending = await portal.sessions.begin_sign_in(_local(return_to))
    tenant = await _tenant(portal)
    query = urlencode(
        {
            "client_id": CLIENT_ID,
            "response_type": "code",
            "redirect_uri": f"{portal.cp.settings.base_url}{PREFIX}/callback",
            "scope": _scope(portal),
            "state": state,
            "code_challenge": pending.challenge,
            "code_challenge_method": "S256",
        }
    )
    r = RedirectResponse(f"/{tenant}/oauth2/v2.0/authorize?{query}", 303, headers=PAGE_HEADERS)
    # The state is bound to this browser too: a code and state pasted into another browser do not sign it in.
    r.set_cookie(SIGNIN_COOKIE, state, max_age=600, secure=True, httponly=True, samesite="strict", path="/")
    return r


@router.get("/callback")
async def callback(request: Request, code: str = "", state: str = "", error: str = "") -> Response:
    portal = _portal(request)
    bound = request.cookies.get(SIGNIN_COOKIE, "")
    pending = await portal.sessions.finish_sign_in(state) if state and hmac.compare_digest(bound, state) else None
    if error or not code or pending is None:
        message = request.query_params.get("error_description") or "The sign-in did not complete; start it again."
        problem = ApiError(400, error or "SignInFailed", message)
        return render(portal, "signed_out.html", 400, error=problem)
    redirect_uri = f"{portal.cp.settings.base_url}{PREFIX}/callback"
    try:
        tokens = await _token(
            portal,
            {
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": redirect_uri,
                "code_verifier": pending.verifier,
            },
        )
    except ApiError as exc:
        return render(portal, "signed_out.html", 400, error=exc)
    user = _claims(tokens.get("id_token", "")).get("preferred_username") or "?"
    key = await portal.sessions.create(
        str(user), tokens["access_token"], tokens["refresh_token"], int(tokens["expires_in"])
    )
    r = RedirectResponse(pending.return_to, 303, headers=PAGE_HEADERS)
    r.set_cookie(COOKIE, key, secure=True, httponly=True, samesite="strict", path="/")
    r.delete_cookie(SIGNIN_COOKIE, secure=True, httponly=True, samesite="strict", path="/")
    return r


def _claims(token: str) -> dict[str, Any]:
    """The id token's claims, for the user's name on the page only (it came straight from the token endpoint)."""
    try:
        body = token.split(".")[1]
        value = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (IndexError, ValueError):
        return {}
    return value if isinstance(value, dict) else {}


@router.post("/signout")
async def sign_out(request: Request) -> Response:
    """Revoke the session's refresh tokens at the login service and forget the session."""
    ctx = await signed_in(request)
    try:
        await ctx.form()
    except ApiError as exc:
        return ctx.render("error.html", status=exc.status, error=exc)
    portal = ctx.portal
    tenant = await _tenant(portal)
    await portal.api.call(
        "POST", f"/{tenant}/oauth2/v2.0/revoke", None, form={"token": ctx.session.refresh_token, "client_id": CLIENT_ID}
    )
    await portal.sessions.end(request.cookies.get(COOKIE))
    r = render(portal, "signed_out.html", error=None)
    r.delete_cookie(COOKIE, secure=True, httponly=True, samesite="strict", path="/")
    return r


@router.get("/static/{name}")
async def static(request: Request, name: str) -> Response:
    portal = _portal(request)
    if name not in portal.static:
        return Response("Not found", status_code=404, media_type="text/plain", headers=HEADERS)
    # htmx's name carries its version, so it may be cached for long; the portal's own files for a while.
    age = 31536000 if name.startswith("htmx-2") else 300
    return Response(
        portal.static[name], media_type=_STATIC[name], headers={**HEADERS, "Cache-Control": f"public, max-age={age}"}
    )


# ---- subscriptions -------------------------------------------------------------------------------------------------


async def _subscriptions(ctx: Ctx) -> tuple[list[dict[str, Any]], str]:
    """The subscriptions the user can see, and the one the page is about (``?subscription=``, else the first)."""
    subs = (await ctx.api("GET", "/subscriptions", params={"api-version": RESOURCES_API})).get("value", [])
    chosen = ctx.request.query_params.get("subscription", "")
    ids = [str(s.get("subscriptionId", "")) for s in subs]
    if chosen not in ids:
        chosen = ids[0] if ids else ""
    return subs, chosen


# ---- clusters ------------------------------------------------------------------------------------------------------


@dataclass
class TablePage:
    rows: list[fleet.ClusterRow]
    next_token: str
    scanned: int
    truncated: bool


def _skip_token(next_link: str | None) -> str:
    if not next_link:
        return ""
    values = parse_qs(urlsplit(next_link).query).get("$skipToken", [])
    return values[0] if values else ""


def _clusters_path(sub: str, group: str) -> str:
    return f"/subscriptions/{sub}" + (f"/resourceGroups/{group}" if group else "") + f"/{CLUSTERS}"


async def _table(ctx: Ctx, sub: str, criteria: fleet.Criteria, skip: str, order: dict[str, str]) -> TablePage:
    """One page of the table, sorted by the API (``$orderby``) over the whole filtered list: the API's own page when
    only the group and status are asked for (the status as the API's ``$filter``); with a name, the API's pages read
    in order and filtered here until the page holds a page's rows (whole API pages, so the next page starts at the
    API's next token: such a page may hold up to twice as many), at most SCAN_LIMIT clusters read."""
    path = _clusters_path(sub, criteria.group)
    page_size = ctx.portal.cp.settings.portal_page_size
    params = {"api-version": CLUSTERS_API, "$top": str(page_size), **criteria.api_filter, **order}
    if not criteria.local:
        items, token = await _api_page(ctx, path, params, skip)
        rows = [fleet.row(b) for b in items]
        return TablePage(rows, token, len(rows), False)
    found: list[fleet.ClusterRow] = []
    scanned = 0
    token = skip
    while True:
        items, token = await _api_page(ctx, path, params, token)
        batch = [fleet.row(b) for b in items]
        scanned += len(batch)
        found += [r for r in batch if criteria.matches(r)]
        if not token or len(found) >= page_size:
            return TablePage(found, token, scanned, False)
        if scanned >= SCAN_LIMIT:
            return TablePage(found, token, scanned, True)


async def _api_page(ctx: Ctx, path: str, params: dict[str, str], token: str) -> tuple[list[dict[str, Any]], str]:
    """One page of an API list from ``token`` (empty: the first): its items and the next page's token (empty: none)."""
    body = await ctx.api("GET", path, params={**params, **({"$skipToken": token} if token else {})})
    return body.get("value", []), _skip_token(body.get("nextLink"))


def _criteria(request: Request) -> fleet.Criteria:
    q = request.query_params
    status = q.get("status", "")
    return fleet.Criteria(
        group=q.get("group", "")[:90], name=q.get("name", "")[:253], status=status if status in fleet.STATUSES else ""
    )


def _order(request: Request) -> tuple[str, bool]:
    """The column the table is sorted by (one the API sorts by, else none) and whether descending."""
    sort = request.query_params.get("sort", "")
    return (sort if sort in fleet.SORTABLE else ""), request.query_params.get("order", "") == "desc"


def _table_values(request: Request, sub: str, criteria: fleet.Criteria, table: TablePage) -> dict[str, Any]:
    sort, descending = _order(request)
    skip = request.query_params.get("skip", "")
    back = request.query_params.get("back", "")[:8192]
    query = {"subscription": sub, "group": criteria.group, "name": criteria.name, "status": criteria.status}
    sorted_query = {**query, "sort": sort, "order": "desc" if descending else ""}
    here = {**sorted_query, "skip": skip, "back": back}
    previous = fleet.popped(back)

    def link(values: dict[str, str]) -> str:
        return urlencode({k: v for k, v in values.items() if v})

    return {
        "rows": table.rows,
        "table": table,
        "criteria": criteria,
        "sort": sort,
        "descending": descending,
        "statuses": fleet.STATUSES,
        "sortable": fleet.SORTABLE,
        "query": link(query),
        "sorted_query": link(sorted_query),
        "here": link(here),
        "next": link({**sorted_query, "skip": table.next_token, "back": fleet.pushed(back, skip)})
        if table.next_token
        else "",
        "previous": link({**sorted_query, "skip": previous[0], "back": previous[1]}) if previous else "",
        "sub": sub,
    }


@router.get("/clusters")
async def clusters(request: Request) -> Response:
    async def handler(ctx: Ctx) -> Response:
        subs, sub = await _subscriptions(ctx)
        criteria = _criteria(request)
        notice = request.query_params.get("notice", "")[:300]
        if not sub:
            return ctx.render("clusters.html", subs=subs, notice=notice, **_empty_values(criteria))
        values = await _table_or_error(ctx, request, sub, criteria)
        return ctx.render("clusters.html", subs=subs, notice=notice, **values)

    return await page(request, handler)


async def _table_or_error(ctx: Ctx, request: Request, sub: str, criteria: fleet.Criteria) -> dict[str, Any]:
    """The table's values, or ARM's error in its place (the filter form stays, to correct what was asked)."""
    try:
        sort, descending = _order(request)
        table = await _table(ctx, sub, criteria, request.query_params.get("skip", ""), fleet.orderby(sort, descending))
    except ApiError as exc:
        return {**_empty_values(criteria), "sub": sub, "table_error": exc}
    return {**_table_values(request, sub, criteria, table), "table_error": None}


def _empty_values(criteria: fleet.Criteria) -> dict[str, Any]:
    return {
        "rows": [], "table": TablePage([], "", 0, False), "criteria": criteria, "sort": "", "descending": False,
        "statuses": fleet.STATUSES, "sortable": fleet.SORTABLE, "query": "", "sorted_query": "", "here": "",
        "next": "", "previous": "", "sub": "", "table_error": None,
    }  # fmt: skip


@router.get("/clusters/table")
async def clusters_table(request: Request) -> Response:
    """The table alone, polled by the page (htmx, every 5 s) so a cluster going Offline shows without a reload."""

    async def handler(ctx: Ctx) -> Response:
        _, sub = await _subscriptions(ctx)
        return ctx.render("cluster_table.html", **await _table_or_error(ctx, request, sub, _criteria(request)))

    return await page(request, handler)


@router.get("/clusters/counts")
async def clusters_counts(request: Request) -> Response:
    """Clusters per status over the user's whole fleet (in the subscription and group asked), polled every 30 s:
    one aggregate query behind the API's statusCounts action, over what the user may read."""

    async def handler(ctx: Ctx) -> Response:
        _, sub = await _subscriptions(ctx)
        criteria = fleet.Criteria(group=_criteria(request).group)
        query = urlencode({k: v for k, v in {"subscription": sub, "group": criteria.group}.items() if v})
        counted = await ctx.api(
            "POST", f"{_clusters_path(sub, criteria.group)}/statusCounts", params={"api-version": CLUSTERS_API}
        )
        counts = fleet.counted(counted.get("byConnectivityStatus"))
        return ctx.render("cluster_counts.html", counts=counts, total=sum(counts.values()), query=query)

    return await page(request, handler)


def _cluster_path(sub: str, group: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/{CLUSTERS}/{name}"


@router.get("/subscriptions/{sub}/resourceGroups/{group}/clusters/{name}")
async def cluster(request: Request, sub: str, group: str, name: str) -> Response:
    async def handler(ctx: Ctx) -> Response:
        path = _cluster_path(sub, group, name)
        body = await ctx.api("GET", path, params={"api-version": CLUSTERS_API})
        under: list[dict[str, Any]] = []
        for rtype in ctx.portal.cp.types.all():
            parent = rtype.parent
            if rtype.placement is not Placement.EXTENSION or parent is None:
                continue
            if parent.full_type.lower() != "microsoft.kubernetes/connectedclusters":
                continue
            try:
                items = (
                    await ctx.api(
                        "GET", f"{path}/providers/{rtype.full_type}", params={"api-version": rtype.api_versions[0]}
                    )
                ).get("value", [])
                under.append({"type": rtype.full_type, "items": items, "error": None})
            except ApiError as exc:
                under.append({"type": rtype.full_type, "items": [], "error": exc})
        props = body.get("properties") or {}
        activity, activity_error = await _activity(ctx, sub, str(body.get("id") or path))
        return ctx.render(
            "cluster.html", cluster=body, row=fleet.row(body), props=props, under=under, sub=sub, group=group,
            name=name, system=body.get("systemData") or {}, activity=activity, activity_error=activity_error,
        )  # fmt: skip

    return await page(request, handler)


async def _activity(ctx: Ctx, sub: str, resource_id: str) -> tuple[list[dict[str, Any]], ApiError | None]:
    """The resource's activity log events (its first page, newest first) over the whole retention, through the
    activity-log API with the user's token: what they may not read is ARM's error, shown in place of the table."""
    start = ctx.portal.cp.clock.now() - dt.timedelta(days=ctx.portal.cp.settings.activity_log_retention_days)
    start += dt.timedelta(minutes=1)  # the request's own time passes: stay inside the window the API accepts
    params = {
        "api-version": ACTIVITY_API,
        "$filter": f"eventTimestamp ge '{start.strftime('%Y-%m-%dT%H:%M:%SZ')}' and resourceUri eq "
        + "'" + resource_id.replace("'", "''") + "'",
        "$select": "eventTimestamp,status,subStatus,operationName,caller,correlationId",
    }  # fmt: skip
    try:
        body = await ctx.api("GET", f"/subscriptions/{sub}/providers/Microsoft.Insights/eventtypes/management/values",
                             params=params)  # fmt: skip
    except ApiError as exc:
        return [], exc
    return list(body.get("value", []))[:ACTIVITY_ROWS], None


@router.get("/subscriptions/{sub}/resourceGroups/{group}/clusters/{name}/delete")
async def cluster_delete_confirm(request: Request, sub: str, group: str, name: str) -> Response:
    async def handler(ctx: Ctx) -> Response:
        await ctx.api("GET", _cluster_path(sub, group, name), params={"api-version": CLUSTERS_API})
        return ctx.render("cluster_delete.html", sub=sub, group=group, name=name, mistyped=False)

    return await page(request, handler)


@router.post("/subscriptions/{sub}/resourceGroups/{group}/clusters/{name}/delete")
async def cluster_delete(request: Request, sub: str, group: str, name: str) -> Response:
    async def handler(ctx: Ctx) -> Response:
        form = await ctx.form()
        if form.get("confirm_name") != name:
            return ctx.render("cluster_delete.html", status=400, sub=sub, group=group, name=name, mistyped=True)
        await ctx.api("DELETE", _cluster_path(sub, group, name), params={"api-version": CLUSTERS_API})
        notice = quote(f"Deleting {name}: it leaves the list when the operation completes.")
        return RedirectResponse(f"{PREFIX}/clusters?subscription={sub}&notice={notice}", 303, headers=PAGE_HEADERS)

    return await page(request, handler)


# ---- private link --------------------------------------------------------------------------------------------------


@router.get("/privatelink")
async def private_link(request: Request) -> Response:
    async def handler(ctx: Ctx) -> Response:
        subs, sub = await _subscriptions(ctx)
        v = {"api-version": HYBRIDCOMPUTE_API}
        scopes = []
        if sub:
            listed = await ctx.api("GET", f"/subscriptions/{sub}/{HYBRIDCOMPUTE}/privateLinkScopes", params=v)
            members = await _members(ctx, sub)
            for scope in listed.get("value", []):
                connections = await ctx.api("GET", f"{scope['id']}/privateEndpointConnections", params=v)
                scopes.append(
                    {
                        "scope": scope,
                        "connections": connections.get("value", []),
                        "clusters": members.get(str(scope["id"]).lower(), []),
                    }
                )
        return ctx.render(
            "privatelink.html", subs=subs, sub=sub, scopes=scopes, notice=request.query_params.get("notice", "")
        )

    return await page(request, handler)


async def _members(ctx: Ctx, sub: str) -> dict[str, list[fleet.ClusterRow]]:
    """Clusters by the private link scope they are in (the user's clusters, at most SCAN_LIMIT read)."""
    by_scope: dict[str, list[fleet.ClusterRow]] = {}
    params = {"api-version": CLUSTERS_API, "$top": "100"}
    token, read = "", 0
    while read < SCAN_LIMIT:
        items, token = await _api_page(ctx, _clusters_path(sub, ""), params, token)
        read += len(items)
        for b in items:
            scope = str((b.get("properties") or {}).get("privateLinkScopeResourceId") or "").lower()
            if scope:
                by_scope.setdefault(scope, []).append(fleet.row(b))
        if not token:
            break
    return by_scope


@router.post("/privatelink/connection")
async def private_link_decide(request: Request) -> Response:
    """Approve or reject a private endpoint's connection to a scope (a PUT of its state, as the portal does)."""

    async def handler(ctx: Ctx) -> Response:
        form = await ctx.form()
        connection, decision = str(form.get("connection", "")), str(form.get("decision", ""))
        if decision not in ("Approved", "Rejected") or "/privateEndpointConnections/" not in connection:
            raise ApiError(400, "InvalidRequest", "Choose Approve or Reject for a private endpoint connection.")
        state = {"status": decision, "description": f"{decision} in the portal by {ctx.session.user_name}"}
        await ctx.api(
            "PUT", connection, params={"api-version": HYBRIDCOMPUTE_API},
            json={"properties": {"privateLinkServiceConnectionState": state}},
        )  # fmt: skip
        notice = quote(f"{connection.rsplit('/', 1)[-1]}: {decision}.")
        return RedirectResponse(f"{PREFIX}/privatelink?notice={notice}", 303, headers=PAGE_HEADERS)

    return await page(request, handler)


# ---- gateways ------------------------------------------------------------------------------------------------------


@router.get("/gateways")
async def gateways(request: Request) -> Response:
    async def handler(ctx: Ctx) -> Response:
        subs, sub = await _subscriptions(ctx)
        v = {"api-version": HYBRIDCOMPUTE_API}
        items = []
        if sub:
            for gw in (await ctx.api("GET", f"/subscriptions/{sub}/{HYBRIDCOMPUTE}/gateways", params=v)).get(
                "value", []
            ):
                linked = await ctx.api("GET", f"{gw['id']}/linkedClusters", params=v)
                items.append({"gateway": gw, "clusters": linked.get("value", []), "link": _portal_path(gw["id"])})
        return ctx.render("gateways.html", subs=subs, sub=sub, gateways=items)

    return await page(request, handler)


def _portal_path(resource_id: str) -> str:
    parts = resource_id.split("/")
    return f"{PREFIX}/subscriptions/{parts[2]}/resourceGroups/{parts[4]}/gateways/{parts[-1]}"


def _gateway_path(sub: str, group: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/{HYBRIDCOMPUTE}/gateways/{name}"


@router.get("/subscriptions/{sub}/resourceGroups/{group}/gateways/{name}")
async def gateway(request: Request, sub: str, group: str, name: str) -> Response:
    async def handler(ctx: Ctx) -> Response:
        v = {"api-version": HYBRIDCOMPUTE_API}
        path = _gateway_path(sub, group, name)
        body = await ctx.api("GET", path, params=v)
        linked = await ctx.api("GET", f"{path}/linkedClusters", params=v)
        return ctx.render(
            "gateway.html", gateway=body, clusters=linked.get("value", []), sub=sub, group=group, name=name,
            verdict=_verdict(request), cluster=request.query_params.get("cluster", "")[:200],
            audit=f"{PREFIX}/subscriptions/{sub}/resourceGroups/{group}/gateways/{name}/audit",
        )  # fmt: skip

    return await page(request, handler)


def _verdict(request: Request) -> str:
    verdict = request.query_params.get("verdict", "")
    return verdict if verdict in ("allowed", "denied") else ""


@router.get("/subscriptions/{sub}/resourceGroups/{group}/gateways/{name}/audit")
async def gateway_audit(request: Request, sub: str, group: str, name: str) -> Response:
    """The gateway's latest audit records (newest first), polled every 5 s by the gateway's page."""

    async def handler(ctx: Ctx) -> Response:
        params = {"api-version": HYBRIDCOMPUTE_API, "$top": "1000"}
        verdict = _verdict(request)
        if verdict:
            params["verdict"] = verdict
        cluster_filter = request.query_params.get("cluster", "")[:200].lower()
        records = (await ctx.api("GET", f"{_gateway_path(sub, group, name)}/auditRecords", params=params)).get(
            "value", []
        )
        if cluster_filter:
            records = [r for r in records if cluster_filter in str(r.get("clusterId", "")).lower()]
        return ctx.render("audit_rows.html", records=list(reversed(records))[:200])

    return await page(request, handler)


# ---- access --------------------------------------------------------------------------------------------------------


@router.get("/access")
async def access(request: Request) -> Response:
    """Role assignments that matter at a scope (at, above or below it): the subscription unless ``?scope=`` names a
    group or a resource (a user with rights on one group only reads them there)."""

    async def handler(ctx: Ctx) -> Response:
        subs, sub = await _subscriptions(ctx)
        asked = request.query_params.get("scope", "").strip()[:1024]
        scope = asked if asked.lower().startswith(f"/subscriptions/{sub}".lower()) and sub else f"/subscriptions/{sub}"
        values: dict[str, Any] = {"subs": subs, "sub": sub, "scope": scope, "rows": [], "roles": [], "people": [],
                                  "notice": request.query_params.get("notice", ""), "scope_error": None}  # fmt: skip
        if not sub:
            return ctx.render("access.html", **values)
        v = {"api-version": AUTHORIZATION_API}
        try:
            assignments = await ctx.api("GET", f"{scope}/providers/Microsoft.Authorization/roleAssignments", params=v)
            roles = await ctx.api("GET", f"{scope}/providers/Microsoft.Authorization/roleDefinitions", params=v)
        except ApiError as exc:
            return ctx.render("access.html", **{**values, "scope_error": exc})
        names = {str(r["id"]).rsplit("/", 1)[-1].lower(): r["properties"]["roleName"] for r in roles.get("value", [])}
        people = await _people(ctx)
        values["rows"] = [
            {
                "id": a["id"],
                "scope": a["properties"].get("scope", ""),
                "role": names.get(str(a["properties"]["roleDefinitionId"]).rsplit("/", 1)[-1].lower(), "?"),
                "principal": people.get(a["properties"]["principalId"], a["properties"]["principalId"]),
                "principal_type": a["properties"].get("principalType", ""),
            }
            for a in assignments.get("value", [])
        ]
        values["roles"] = sorted(roles.get("value", []), key=lambda r: r["properties"]["roleName"])
        values["people"] = sorted(people.items(), key=lambda p: p[1].lower())
        return ctx.render("access.html", **values)

    return await page(request, handler)


async def _people(ctx: Ctx) -> dict[str, str]:
    """Users, groups and service principals by object id, named, as far as the user may read the directory."""
    found: dict[str, str] = {}
    for kind, label in (
        ("users", "userPrincipalName"),
        ("groups", "displayName"),
        ("servicePrincipals", "displayName"),
    ):
        try:
            body = await ctx.api("GET", f"/providers/Halyard.Directory/{kind}", params={"api-version": DIRECTORY_API})
        except ApiError:
            continue  # not allowed to read the directory: ids are shown as they are
        for item in body.get("value", []):
            found[str(item.get("id"))] = f"{item.get(label) or item.get('displayName') or item.get('id')}"
    return found


@router.post("/access/add")
async def access_add(request: Request) -> Response:
    async def handler(ctx: Ctx) -> Response:
        form = await ctx.form()
        scope, role, principal = (str(form.get(k, "")).strip() for k in ("scope", "role", "principal"))
        if not scope.startswith("/subscriptions/"):
            raise ApiError(400, "InvalidScope", "The scope must be a subscription, a resource group or a resource id.")
        await ctx.api(
            "PUT", f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": AUTHORIZATION_API},
            json={"properties": {"roleDefinitionId": role, "principalId": principal}},
        )  # fmt: skip
        return RedirectResponse(f"{PREFIX}/access?notice=" + quote("Role assignment added."), 303, headers=PAGE_HEADERS)

    return await page(request, handler)


@router.post("/access/remove")
async def access_remove(request: Request) -> Response:
    async def handler(ctx: Ctx) -> Response:
        form = await ctx.form()
        assignment = str(form.get("assignment", ""))
        if "/providers/Microsoft.Authorization/roleAssignments/" not in assignment:
            raise ApiError(400, "InvalidRequest", "Choose a role assignment to remove.")
        await ctx.api("DELETE", assignment, params={"api-version": AUTHORIZATION_API})
        return RedirectResponse(
            f"{PREFIX}/access?notice=" + quote("Role assignment removed."), 303, headers=PAGE_HEADERS
        )

    return await page(request, handler)


# ---- resource groups -----------------------------------------------------------------------------------------------


@router.get("/groups")
async def resource_groups(request: Request) -> Response:
    async def handler(ctx: Ctx) -> Response:
        subs, sub = await _subscriptions(ctx)
        groups = []
        if sub:
            body = await ctx.api("GET", f"/subscriptions/{sub}/resourcegroups", params={"api-version": RESOURCES_API})
            groups = body.get("value", [])
        return ctx.render("groups.html", subs=subs, sub=sub, groups=groups)

    return await page(request, handler)
