"""The Kubernetes REST surface of one virtual cluster: routing, authentication, authorization, content
negotiation, discovery, OpenAPI, CRUD, subresources, reviews and watch streams.

Transport-free: :meth:`ClusterApi.handle` takes a :class:`Request` and returns a :class:`Response` whose body is
bytes or an async iterator of chunks (watch, follow logs). ``app.py`` adapts it to ASGI.
"""

from __future__ import annotations

import asyncio
import copy
import datetime as dt
import json
import logging
import time
import urllib.parse
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from halyard.core import websocket
from halyard.core.clock import Clock
from halyard.sim import containers, discovery, metrics, openapi, patching, protobuf, tables, webhookauthz
from halyard.sim.cluster import VirtualCluster, WriteContext, decode_body, rfc3339
from halyard.sim.errors import ApiError, forbidden
from halyard.sim.rbac import Attributes, UserInfo, authorize, rules_for
from halyard.sim.resources import ResourceType
from halyard.sim.selectors import (
    FieldRequirement,
    Requirement,
    fields_match,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)
from halyard.sim.store import Event, Obj, Watcher, deliver_filtered, object_key
from halyard.sim.streaming import ExecSpec, PortForwardSpec, UpgradePlan

log = logging.getLogger(__name__)
JSON = "application/json"
PROTOBUF = "application/vnd.kubernetes.protobuf"
ANONYMOUS = UserInfo("system:anonymous", ("system:unauthenticated",))
# Paths every client may read before it has credentials sorted out (the real server's system:public-info-viewer).
_PUBLIC = ("/version", "/healthz", "/livez", "/readyz")
# Subresources a real server has that need real containers or nodes.
_NO_CONTAINERS = frozenset({"proxy", "ephemeralcontainers", "binding"})
# Pod subresources that upgrade the connection to a stream protocol (``streaming.py`` serves them).
_STREAMING = frozenset({"exec", "attach", "portforward"})
# What the kubelet negotiates: SPDY offers v4 at most (v5 exists only over WebSocket), port-forward its own.
_SPDY_EXEC_PROTOCOLS = (websocket.V4_CHANNEL,)
_WS_EXEC_PROTOCOLS = (websocket.V5_CHANNEL, websocket.V4_CHANNEL)
_PORTFORWARD = "portforward.k8s.io"


@dataclass
class Request:
    method: str
    path: str  # inside the cluster: "/api/v1/namespaces/default/pods"
    query: dict[str, str]
    headers: list[tuple[str, str]]  # lower-case names, in order, repeated names kept
    body: bytes = b""
    cert_user: UserInfo | None = None  # from a verified client certificate for this cluster
    query_all: list[tuple[str, str]] = field(default_factory=list)  # every parameter, repeated ones too (command)

    def header(self, name: str, default: str = "") -> str:
        for k, v in self.headers:
            if k == name:
                return v
        return default

    def header_all(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k == name]


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = JSON
    headers: list[tuple[str, str]] = field(default_factory=list)
    stream: AsyncIterator[bytes] | None = None
    upgrade: UpgradePlan | None = None  # status 101: the connection switches to this stream session


@dataclass(frozen=True)
class ApiSettings:
    kubernetes_version: str = "v1.31.2"
    bookmark_interval: float = 60.0
    log_lines: int = 10  # lines of simulated container log per pod
    platform: str = "linux/amd64"


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def json_response(
    obj: Any, status: int = 200, *, content_type: str = JSON, warnings: list[str] | None = None
) -> Response:
    headers = [("warning", "299 - " + json.dumps(w)) for w in warnings or []]
    return Response(status, dumps(obj), content_type, headers)


def error_response(e: ApiError) -> Response:
    return json_response(e.status(), e.code)


def _wants_table(req: Request) -> bool:
    return "as=Table" in req.header("accept")


@dataclass(frozen=True, slots=True)
class Route:
    group: str
    version: str
    resource: str
    namespace: str | None
    name: str
    subresource: str


def parse_route(path: str) -> Route | None:
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")]
    if len(parts) >= 3 and parts[0] == "api":
        group, version, rest = "", parts[1], parts[2:]
    elif len(parts) >= 4 and parts[0] == "apis":
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return None
    namespace = None
    if rest[0] == "namespaces" and len(rest) >= 3 and not (group == "" and rest[2] in ("status", "finalize")):
        namespace, rest = rest[1], rest[2:]
    if len(rest) > 3:
        return None
    return Route(group, version, rest[0], namespace, rest[1] if len(rest) > 1 else "", rest[2] if len(rest) > 2 else "")


class ClusterApi:
    """Serves the API of every virtual cluster; state lives in the clusters, settings here."""

    def __init__(self, settings: ApiSettings, clock: Clock, prefix_of: Callable[[str], str]) -> None:
        self.settings = settings
        self.clock = clock
        self.prefix_of = prefix_of  # cluster name -> URL path prefix ("/clusters/<name>")
        self.webhooks: webhookauthz.WebhookAuthorizer | None = None  # RBAC then each cluster's webhook, if set

    # ---- entry point
    async def handle(self, c: VirtualCluster, req: Request) -> Response:
        try:
            user = self._authenticate(c, req)
            if user is ANONYMOUS and req.path not in _PUBLIC:
                raise ApiError(401, "Unauthorized", reason="Unauthorized")
            user = await self._impersonate(c, req, user)
            return await self._dispatch(c, req, user)
        except ApiError as e:
            return error_response(e)
        except Exception:
            # A bug of the simulator: say so as a real server would (a 500 Status), and log the type only.
            log.exception("sim request failed method=%s path=%s", req.method, req.path)
            return error_response(ApiError(500, "an error on the server (the simulator) has prevented the request "
                                           "from succeeding", reason="InternalError"))  # fmt: skip

    def _authenticate(self, c: VirtualCluster, req: Request) -> UserInfo:
        auth = req.header("authorization")
        if auth[:7].lower() == "bearer ":
            user = c.user_for_token(auth[7:].strip())
            if user is None:
                raise ApiError(401, "Unauthorized", reason="Unauthorized")
            return user
        if req.cert_user is not None:
            return req.cert_user
        return ANONYMOUS

    async def _impersonate(self, c: VirtualCluster, req: Request, user: UserInfo) -> UserInfo:
        target = req.header("impersonate-user")
        groups = [g for g in req.header_all("impersonate-group") if g]
        uid = req.header("impersonate-uid")
        extra: dict[str, list[str]] = {}
        for k, v in req.headers:
            if k.startswith("impersonate-extra-"):
                extra.setdefault(urllib.parse.unquote(k[len("impersonate-extra-") :]), []).append(v)
        if not target:
            if groups or extra or uid:
                raise ApiError(500, "requested impersonation of groups or extra without impersonating a user")
            return user
        checks: list[Attributes] = []
        if target.startswith("system:serviceaccount:") and target.count(":") == 3:
            _, _, ns, sa = target.split(":")
            checks.append(Attributes("impersonate", "", "serviceaccounts", namespace=ns, name=sa))
        else:
            checks.append(Attributes("impersonate", "", "users", name=target))
        checks += [Attributes("impersonate", "", "groups", name=g) for g in groups]
        if uid:
            checks.append(Attributes("impersonate", "authentication.k8s.io", "uids", name=uid))
        checks += [
            Attributes("impersonate", "authentication.k8s.io", "userextras", subresource=k, name=v)
            for k, vs in extra.items()
            for v in vs
        ]
        for a in checks:
            allowed, _ = await self._decide(c, user, a)
            if not allowed:
                raise forbidden(user.name, "impersonate", a.api_group, a.resource, a.namespace, a.name)
        if target.startswith("system:serviceaccount:"):
            ns = target.split(":")[2]
            groups = [*groups, "system:serviceaccounts", f"system:serviceaccounts:{ns}"]
        if "system:authenticated" not in groups and target != "system:anonymous":
            groups.append("system:authenticated")
        return UserInfo(target, tuple(groups), uid, extra)

    async def _decide(self, c: VirtualCluster, user: UserInfo, a: Attributes) -> tuple[bool, str]:
        """(allowed, reason): RBAC, then the cluster's authorization webhook for what RBAC did not allow."""
        return await webhookauthz.authorize(user, a, authorize(user, a, c.rbac()), self.webhooks, c.name)

    async def _authorize(self, c: VirtualCluster, user: UserInfo, a: Attributes) -> None:
        allowed, _ = await self._decide(c, user, a)
        if allowed:
            return
        if not a.resource_request:
            raise ApiError(403, f'forbidden: User "{user.name}" cannot {a.verb} path "{a.path}"', reason="Forbidden")
        raise forbidden(user.name, a.verb, a.api_group, a.resource, a.namespace, a.name, a.subresource)

    # ---- routing
    async def _dispatch(self, c: VirtualCluster, req: Request, user: UserInfo) -> Response:
        path = req.path.rstrip("/") or "/"
        if (req.method == "GET" and not (path.startswith("/api/") or path.startswith("/apis/"))) or path in (
            "/api",
            "/apis",
        ):
            if user is not ANONYMOUS or path not in _PUBLIC:
                await self._authorize(c, user, Attributes("get", path=path))
            return self._non_resource(c, req, path)
        if req.method == "GET":
            parts = path.strip("/").split("/")
            if parts[0] == "apis" and len(parts) in (2, 3):
                await self._authorize(c, user, Attributes("get", path=path))
                types = c.registry.all_types()
                doc = discovery.api_group(types, parts[1]) if len(parts) == 2 else discovery.resource_list(
                    types, parts[1], parts[2])  # fmt: skip
                if doc is None:
                    raise ApiError(404, "the server could not find the requested resource", details={})
                return json_response(doc)
            if parts[0] == "api" and len(parts) == 2:
                await self._authorize(c, user, Attributes("get", path=path))
                doc = discovery.resource_list(c.registry.all_types(), "", parts[1])
                if doc is None:
                    raise ApiError(404, "the server could not find the requested resource", details={})
                return json_response(doc)
        route = parse_route(path)
        if route is None:
            raise ApiError(404, "the server could not find the requested resource", details={})
        rt = c.registry.lookup(route.group, route.version, route.resource)
        if rt is None:
            raise ApiError(404, "the server could not find the requested resource", details={})
        if route.subresource in _STREAMING and rt.group == "" and rt.plural == "pods" and route.namespace:
            if req.method not in ("GET", "POST"):
                raise ApiError(405, "the server does not allow this method on the requested resource",
                               reason="MethodNotAllowed")  # fmt: skip
            # kube-apiserver authorizes exec, attach and port-forward as "create" whether sent as POST (SPDY) or
            # GET (WebSocket).
            await self._authorize(
                c, user, Attributes("create", "", "pods", route.subresource, route.namespace, route.name)
            )
            return self._connect(c, req, rt, route)
        if route.subresource and route.subresource not in rt.subresources:
            if route.subresource in _NO_CONTAINERS:
                raise ApiError(405, f"the simulator does not implement {rt.plural}/{route.subresource}: its "
                               "containers are simulated, there is nothing to connect to", reason="MethodNotAllowed",
                               details={"kind": rt.plural, "name": route.name})  # fmt: skip
            raise ApiError(404, "the server could not find the requested resource", details={})
        if rt.namespaced and route.namespace is None and route.name:
            raise ApiError(404, "the server could not find the requested resource", details={})
        verb = self._verb(req, route)
        if verb not in rt.verbs and not route.subresource:
            raise ApiError(
                405, "the server does not allow this method on the requested resource", reason="MethodNotAllowed",
                details={"kind": rt.plural},
            )  # fmt: skip
        ns = (route.namespace or "") if rt.namespaced else ""
        attrs = Attributes(verb, rt.group, rt.plural, route.subresource, ns, route.name, version=route.version)
        if rt.persisted or verb != "create":  # reviews (create-only, not stored) authorize what they review
            await self._authorize(c, user, attrs)
        handler = getattr(self, f"_do_{verb}")
        result: Response = await handler(c, req, user, rt, route, ns)
        return result

    def _verb(self, req: Request, route: Route) -> str:
        m = req.method
        if m == "GET":
            if req.query.get("watch") in ("true", "1") and not route.subresource:
                return "watch"  # a watch of one object by name too (the deprecated form some clients still use)
            return "get" if route.name else "list"
        if m == "POST":
            return "create"
        if m == "PUT":
            return "update"
        if m == "PATCH":
            return "patch"
        if m == "DELETE":
            return "delete" if route.name else "deletecollection"
        raise ApiError(405, f"method {m} is not allowed", reason="MethodNotAllowed")

    # ---- non-resource endpoints
    def _non_resource(self, c: VirtualCluster, req: Request, path: str) -> Response:
        if path == "/version":
            return json_response(self.version_info())
        if path in ("/healthz", "/livez", "/readyz"):
            return Response(200, b"ok", "text/plain; charset=utf-8")
        types = c.registry.all_types()
        if path in ("/api", "/apis"):
            agg = discovery.negotiate_aggregated(req.header("accept"))
            if agg:
                doc = discovery.aggregated(types, core=path == "/api", content_type=agg)
                return json_response(doc, content_type=agg)
            return json_response(discovery.api_versions() if path == "/api" else discovery.api_group_list(types))
        if path == "/openapi/v2":
            if "protobuf" in req.header("accept") or not req.header("accept"):
                return Response(200, b"", openapi.V2_CONTENT_TYPE)
            raise ApiError(404, "the simulator serves /openapi/v2 only as an empty protobuf document; use /openapi/v3",
                           details={})  # fmt: skip
        if path == "/openapi/v3":
            return json_response(openapi.root_document(self.prefix_of(c.name), self._v3_hashes(c)))
        if path.startswith("/openapi/v3/"):
            gv = path[len("/openapi/v3/") :]
            found = self._v3_document(c, gv)
            if found is None:
                raise ApiError(404, "the server could not find the requested resource", details={})
            body, digest = found
            return Response(200, body, JSON, [("etag", f'"{digest}"'), ("cache-control", "public, immutable")])
        raise ApiError(404, "the server could not find the requested resource", details={})

    def version_info(self) -> dict[str, Any]:
        v = self.settings.kubernetes_version.lstrip("v")
        major, minor = v.split(".")[:2]
        return {
            "major": major,
            "minor": minor,
            "gitVersion": self.settings.kubernetes_version,
            "gitCommit": "halyard-sim",
            "gitTreeState": "clean",
            "buildDate": "2026-01-01T00:00:00Z",
            "goVersion": "go1.22.0",
            "compiler": "gc",
            "platform": self.settings.platform,
        }

    def _v3_hashes(self, c: VirtualCluster) -> dict[str, str]:
        out: dict[str, str] = {}
        for group, versions, _ in discovery.ordered_groups(c.registry.all_types()):
            for v in versions:
                doc = self._v3_document(c, openapi.gv_path(group, v))
                if doc is not None:
                    out[openapi.gv_path(group, v)] = doc[1]
        return out

    def _v3_document(self, c: VirtualCluster, gv: str) -> tuple[bytes, str] | None:
        parts = gv.split("/")
        if parts[0] == "api" and len(parts) == 2:
            group, version = "", parts[1]
        elif parts[0] == "apis" and len(parts) == 3:
            group, version = parts[1], parts[2]
        else:
            return None
        types = [
            t for t in c.registry.all_types() if t.group == group and t.version == version and (t.model_module or t.crd)
        ]
        if not types:
            return None  # unknown, or served without a schema (the metrics API)
        if all(t.crd is None for t in types):
            return openapi.builtin_document(group, version, self.settings.kubernetes_version)
        return openapi.custom_document(types, self.settings.kubernetes_version)

    # ---- bodies and contexts
    def _decode(self, req: Request) -> Any:
        ctype = req.header("content-type", JSON).split(";")[0].strip()
        if ctype == PROTOBUF:
            return protobuf.decode(req.body)
        if ctype in (JSON, "application/yaml", "text/yaml", ""):
            return decode_body(req.body, ctype or JSON)
        raise ApiError(415, f"the body of the request was in an unknown format - accepted media types include: "
                       f"application/json, application/yaml, {PROTOBUF}", reason="UnsupportedMediaType")  # fmt: skip

    def _ctx(self, req: Request, user: UserInfo, default_manager: str = "") -> WriteContext:
        dry = req.query.get("dryRun", "")
        if dry and dry != "All":
            raise ApiError(400, f'Invalid dryRun value "{dry}": only "All" is supported')
        validation = req.query.get("fieldValidation", "Warn") or "Warn"
        if validation not in ("Strict", "Warn", "Ignore"):
            raise ApiError(400, f"fieldValidation must be one of Ignore, Warn or Strict, got {validation}")
        manager = req.query.get("fieldManager") or default_manager or _manager_from_agent(req.header("user-agent"))
        return WriteContext(user, bool(dry), manager, validation)

    # ---- verbs
    async def _do_get(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                      ns: str) -> Response:  # fmt: skip
        if rt.group == metrics.GROUP:
            return self._metrics(c, rt, ns, route.name, req)
        obj = c.get(rt, ns, route.name)
        if route.subresource == "scale":
            return json_response(self._scale(rt, obj))
        if route.subresource == "log":
            return self._log(c, req, obj)
        if _wants_table(req) and not route.subresource:
            return json_response(self._table(rt, [obj], obj["metadata"]["resourceVersion"], req))
        return json_response(obj)

    async def _do_list(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                       ns: str) -> Response:  # fmt: skip
        if rt.group == metrics.GROUP:
            return self._metrics(c, rt, route.namespace if rt.namespaced else None, "", req)
        q = req.query
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""))
        limit = int(q.get("limit") or 0)
        items, rv, cont, remaining = c.list(
            rt, route.namespace if rt.namespaced else None, labels, fields, limit=limit,
            continue_token=q.get("continue", ""),
        )  # fmt: skip
        if _wants_table(req):
            return json_response(self._table(rt, items, rv, req, continue_token=cont))
        meta: dict[str, Any] = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        return json_response({"kind": f"{rt.kind}List", "apiVersion": rt.group_version, "metadata": meta,
                              "items": items})  # fmt: skip

    async def _do_watch(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                        ns: str) -> Response:  # fmt: skip
        q = req.query
        labels = parse_label_selector(q.get("labelSelector", ""))
        fields = parse_field_selector(q.get("fieldSelector", ""))
        if route.name:
            fields += parse_field_selector(f"metadata.name={route.name}")
        namespace = route.namespace if rt.namespaced else None
        rv = q.get("resourceVersion", "")
        send_initial = q.get("sendInitialEvents") == "true"
        if send_initial and q.get("resourceVersionMatch") != "NotOlderThan":
            raise ApiError(
                422,
                "sendInitialEvents requires resourceVersionMatch=NotOlderThan",
                details={"causes": [{"reason": "FieldValueForbidden", "field": "resourceVersionMatch"}]},
            )
        timeout = float(q.get("timeoutSeconds") or 1800)
        bookmarks = q.get("allowWatchBookmarks") == "true"
        table_mode = _wants_table(req)

        def accept(o: Obj) -> bool:
            return _matches(labels, fields, o)

        queue: asyncio.Queue[Event] = asyncio.Queue()
        watcher = Watcher(rt.key, namespace, accept, queue.put_nowait)
        initial: list[Event] = []
        error: ApiError | None = None
        if rv in ("", "0") or send_initial:
            for o in c.store.list(rt.key, namespace):
                if accept(o):
                    initial.append(Event(int(o["metadata"]["resourceVersion"]), rt.key, "ADDED", o))
                    watcher.seen.add(object_key(o))
        else:
            try:
                start = int(rv)
            except ValueError as e:
                raise ApiError(400, f'invalid resource version "{rv}"') from e
            for o in c.store.list(rt.key, namespace):
                if accept(o) and int(o["metadata"]["resourceVersion"]) <= start:
                    watcher.seen.add(object_key(o))
            try:
                replay = c.store.events_since(rt.key, start)
            except ApiError as e:
                error, replay = e, []
            for ev in replay:
                deliver_filtered(Watcher(rt.key, namespace, accept, initial.append, watcher.seen), ev)
        if error is None:
            c.store.add_watcher(watcher)
        store = c.store
        interval = self.settings.bookmark_interval
        render = self._watch_renderer(rt, req, table_mode)

        async def stream() -> AsyncIterator[bytes]:
            try:
                if error is not None:
                    yield dumps({"type": "ERROR", "object": error.status()}) + b"\n"
                    return
                for ev in initial:
                    yield render(ev.type, ev.obj)
                if send_initial:
                    yield render("BOOKMARK", _bookmark(rt, str(store.rv), initial_end=True))
                deadline = time.monotonic() + timeout
                next_bookmark = time.monotonic() + interval
                while True:
                    now = time.monotonic()
                    wait = deadline - now
                    if bookmarks:
                        wait = min(wait, next_bookmark - now)
                    if wait <= 0 and now >= deadline:
                        return
                    try:
                        ev = await asyncio.wait_for(queue.get(), timeout=max(wait, 0.001))
                    except TimeoutError:
                        if time.monotonic() >= deadline:
                            return
                        if bookmarks:
                            yield render("BOOKMARK", _bookmark(rt, str(store.rv)))
                            next_bookmark = time.monotonic() + interval
                        continue
                    chunk = [render(ev.type, ev.obj)]
                    while not queue.empty():
                        ev = queue.get_nowait()
                        chunk.append(render(ev.type, ev.obj))
                    yield b"".join(chunk)
            finally:
                store.remove_watcher(watcher)

        return Response(200, content_type=JSON, stream=stream())

    def _watch_renderer(self, rt: ResourceType, req: Request, table_mode: bool) -> Callable[[str, Obj], bytes]:
        first = [True]

        def render(kind: str, obj: Obj) -> bytes:
            if table_mode and kind != "BOOKMARK":
                obj = self._table(rt, [obj], obj["metadata"]["resourceVersion"], req, with_columns=first[0])
                first[0] = False
            return dumps({"type": kind, "object": obj}) + b"\n"

        return render

    async def _do_create(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                         ns: str) -> Response:  # fmt: skip
        body = self._decode(req)
        if not rt.persisted:
            return await self._review(c, user, rt, ns, body)
        if route.subresource == "token":
            return self._token_request(c, rt, ns, route.name, body)
        if route.subresource == "eviction":
            # No PodDisruptionBudgets here: an eviction is a deletion (kubectl drain uses it).
            options = (body or {}).get("deleteOptions") or {}
            c.delete(rt, ns, route.name, options, self._ctx(req, user))
            return json_response({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}, 201)
        if route.name or route.subresource:
            raise ApiError(405, "the server does not allow this method on the requested resource",
                           reason="MethodNotAllowed")  # fmt: skip
        ctx = self._ctx(req, user)
        obj = c.create(rt, ns if rt.namespaced else "", body, ctx)
        return json_response(obj, 201, warnings=ctx.warnings)

    async def _do_update(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                         ns: str) -> Response:  # fmt: skip
        body = self._decode(req)
        ctx = self._ctx(req, user)
        if route.subresource == "scale":
            return self._set_scale(c, rt, ns, route.name, body, ctx)
        if route.subresource not in ("", "status", "finalize"):
            raise ApiError(405, "the server does not allow this method on the requested resource",
                           reason="MethodNotAllowed")  # fmt: skip
        obj = c.update(rt, ns, route.name, body, ctx, subresource=route.subresource)
        return json_response(obj, warnings=ctx.warnings)

    async def _do_patch(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                        ns: str) -> Response:  # fmt: skip
        ctx = self._ctx(req, user)
        ctype = req.header("content-type")
        force = req.query.get("force") == "true"
        if route.subresource == "scale":
            current = self._scale(rt, c.get(rt, ns, route.name))
            doc = decode_body(req.body, "json")
            base = copy.deepcopy(current)
            if ctype.startswith(patching.JSON_PATCH):
                new = patching.json_patch(base, doc)
            else:
                new = patching.merge_patch(base, doc)
            return self._set_scale(c, rt, ns, route.name, new, ctx)
        if route.subresource not in ("", "status"):
            raise ApiError(405, "the server does not allow this method on the requested resource",
                           reason="MethodNotAllowed")  # fmt: skip
        applies = ctype.startswith((patching.APPLY_PATCH, patching.APPLY_PATCH_CBOR))
        if applies and not route.subresource and c.store.get(rt.key, ns if rt.namespaced else "", route.name) is None:
            # An apply that creates is authorized as a create too, as kube-apiserver's patch handler does (its
            # createAuthorizerAttributes): `patch` alone never creates an object.
            await self._authorize(
                c, user, Attributes("create", rt.group, rt.plural, "", ns, route.name, version=route.version)
            )
        obj, created = c.patch(rt, ns, route.name, ctype, req.body, ctx, subresource=route.subresource, force=force)
        return json_response(obj, 201 if created else 200, warnings=ctx.warnings)

    async def _do_delete(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType, route: Route,
                         ns: str) -> Response:  # fmt: skip
        options = self._delete_options(req)
        ctx = self._ctx(req, user)
        body, _ = c.delete(rt, ns, route.name, options, ctx)
        return json_response(body)  # 200 also for a deletion a finalizer holds (a real server answers so)

    async def _do_deletecollection(self, c: VirtualCluster, req: Request, user: UserInfo, rt: ResourceType,
                                   route: Route, ns: str) -> Response:  # fmt: skip
        options = self._delete_options(req)
        ctx = self._ctx(req, user)
        labels = parse_label_selector(req.query.get("labelSelector", ""))
        fields = parse_field_selector(req.query.get("fieldSelector", ""))
        items, _, _, _ = c.list(rt, route.namespace if rt.namespaced else None, labels, fields)
        deleted = []
        for o in items:
            c.delete(rt, o["metadata"].get("namespace", ""), o["metadata"]["name"], options, ctx)
            deleted.append(o)
        return json_response({"kind": f"{rt.kind}List", "apiVersion": rt.group_version,
                              "metadata": {"resourceVersion": str(c.store.rv)}, "items": deleted})  # fmt: skip

    def _delete_options(self, req: Request) -> dict[str, Any]:
        options: dict[str, Any] = {}
        if req.body.strip():
            decoded = self._decode(req)
            if isinstance(decoded, dict):
                options = decoded
        for k in ("propagationPolicy", "gracePeriodSeconds"):
            if k in req.query:
                options[k] = req.query[k]
        if req.query.get("orphanDependents") == "true":
            options["orphanDependents"] = True
        return options

    # ---- the metrics API
    def _metrics(self, c: VirtualCluster, rt: ResourceType, ns: str | None, name: str, req: Request) -> Response:
        labels = parse_label_selector(req.query.get("labelSelector", ""))
        now = rfc3339(self.clock)
        if rt.plural == "nodes":
            pods = c.store.list("/pods")
            nodes = [n for n in c.store.list("/nodes") if (not name or n["metadata"]["name"] == name)]
            items = [metrics.node_metrics(n, pods, now) for n in nodes if labels_match(labels, n)]
        else:
            chosen = [p for p in c.store.list("/pods", ns) if metrics.running(p) and labels_match(labels, p)]
            items = [metrics.pod_metrics(p, now) for p in chosen if not name or p["metadata"]["name"] == name]
        if not name:
            return json_response(metrics.as_list(rt.kind, items))
        if not items:
            raise ApiError(
                404,
                f'{rt.plural}.{rt.group} "{name}" not found',
                details={"name": name, "kind": rt.plural, "group": rt.group},
            )
        return json_response({"kind": rt.kind, "apiVersion": rt.group_version, **items[0]})

    # ---- subresources
    def _scale(self, rt: ResourceType, obj: Obj) -> dict[str, Any]:
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {k: v for k, v in obj["metadata"].items() if k in
                         ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")},
            "spec": {"replicas": spec.get("replicas", 0)},
            "status": {"replicas": status.get("replicas", 0),
                       "selector": ",".join(f"{k}={v}" for k, v in selector.items())},
        }  # fmt: skip

    def _set_scale(self, c: VirtualCluster, rt: ResourceType, ns: str, name: str, body: Any,
                   ctx: WriteContext) -> Response:  # fmt: skip
        if not isinstance(body, dict) or not isinstance((body.get("spec") or {}).get("replicas"), int):
            raise ApiError(422, "Scale.spec.replicas must be an integer")
        obj = copy.deepcopy(c.get(rt, ns, name))
        rv = (body.get("metadata") or {}).get("resourceVersion")
        if rv:
            obj["metadata"]["resourceVersion"] = rv
        obj.setdefault("spec", {})["replicas"] = body["spec"]["replicas"]
        return json_response(self._scale(rt, c.update(rt, ns, name, obj, ctx)))

    def _log(self, c: VirtualCluster, req: Request, pod: Obj) -> Response:
        containers = [x.get("name") for x in (pod.get("spec") or {}).get("containers") or []]
        container = req.query.get("container") or (containers[0] if len(containers) == 1 else "")
        if not container:
            raise ApiError(400, f"a container name must be specified for pod {pod['metadata']['name']}, "
                           f"choose one of: {containers}")  # fmt: skip
        if container not in containers:
            raise ApiError(400, f"container {container} is not valid for pod {pod['metadata']['name']}")
        if (pod.get("status") or {}).get("phase") == "Pending":
            raise ApiError(400, f'container "{container}" in pod "{pod["metadata"]["name"]}" is waiting to start: '
                           "ContainerCreating")  # fmt: skip
        lines = pod_log_lines(pod, container, self.settings.log_lines)
        written = len(lines)  # what the container has written so far, whatever part of it is shown
        if "tailLines" in req.query:
            n = int(req.query["tailLines"])
            lines = lines[-n:] if n > 0 else []
        stamp = req.query.get("timestamps") == "true"
        started = ((pod.get("status") or {}).get("startTime")) or rfc3339(self.clock)
        text = "".join(f"{started} {line}\n" if stamp else f"{line}\n" for line in lines).encode()
        if req.query.get("follow") != "true":
            return Response(200, text, "text/plain")
        store = c.store
        key = object_key(pod)

        async def follow() -> AsyncIterator[bytes]:
            yield text
            n = written
            # The simulated container keeps writing a line a second for as long as the pod exists.
            while store.get("/pods", *key) is not None:
                await asyncio.sleep(1.0)
                n += 1
                now = rfc3339(self.clock)
                yield (f"{now} " if stamp else "").encode() + f"[{container}] heartbeat {n}\n".encode()

        return Response(200, content_type="text/plain", stream=follow())

    # ---- exec, attach, port-forward
    def _connect(self, c: VirtualCluster, req: Request, rt: ResourceType, route: Route) -> Response:
        """Checks a streaming request as the API server and kubelet would, and plans the upgrade (101)."""
        ns = route.namespace or ""
        pod = c.get(rt, ns, route.name)
        name = pod["metadata"]["name"]
        spec = pod.get("spec") or {}
        phase = (pod.get("status") or {}).get("phase")
        if route.subresource != "portforward" and phase in ("Succeeded", "Failed"):
            raise ApiError(400, f"cannot {route.subresource} into a container in a completed pod; current phase is "
                           f"{phase}")  # fmt: skip
        if phase not in ("Running", "Succeeded", "Failed"):
            if not spec.get("nodeName"):
                raise ApiError(400, f"pod {name} does not have a host assigned")
            raise ApiError(400, f"pod {name} is not running yet (phase {phase}): its containers are waiting to start")
        connection = [t.strip().lower() for v in req.header_all("connection") for t in v.split(",")]
        upgrade = req.header("upgrade").strip().lower()
        if "upgrade" not in connection or upgrade not in ("websocket", "spdy/3.1"):
            raise ApiError(400, "Upgrade request required")
        ws = upgrade == "websocket"
        if ws:
            offered = [p.strip() for v in req.header_all("sec-websocket-protocol") for p in v.split(",") if p.strip()]
        else:
            offered = [p.strip() for v in req.header_all("x-stream-protocol-version") for p in v.split(",")
                       if p.strip()]  # fmt: skip
        plan_spec: ExecSpec | PortForwardSpec
        if route.subresource == "portforward":
            supported: tuple[str, ...] = (websocket.SPDY_TUNNEL_PREFIX + _PORTFORWARD,) if ws else (_PORTFORWARD,)
            ports = {p.get("containerPort") for ctr in spec.get("containers") or [] for p in ctr.get("ports") or []}
            plan_spec = PortForwardSpec(name, ns, pod["metadata"].get("uid", ""),
                                        frozenset(p for p in ports if isinstance(p, int)) or None)  # fmt: skip
        else:
            supported = _WS_EXEC_PROTOCOLS if ws else _SPDY_EXEC_PROTOCOLS
            plan_spec = self._exec_spec(req, pod, route.subresource)
        chosen = next((p for p in offered if p in supported), None)
        if chosen is None:
            raise ApiError(400, f"unable to upgrade: unable to negotiate protocol: client supports {offered}, server "
                           f"accepts {list(supported)}")  # fmt: skip
        if ws:
            key = req.header("sec-websocket-key")
            if not key or req.header("sec-websocket-version") != "13":
                raise ApiError(400, "a WebSocket upgrade needs Sec-WebSocket-Key and Sec-WebSocket-Version: 13")
            headers = [("upgrade", "websocket"), ("connection", "Upgrade"),
                       ("sec-websocket-accept", websocket.accept_key(key)), ("sec-websocket-protocol", chosen)]  # fmt: skip
        else:
            headers = [("connection", "Upgrade"), ("upgrade", "SPDY/3.1"), ("x-stream-protocol-version", chosen)]
        plan = UpgradePlan("websocket" if ws else "spdy", chosen, plan_spec)
        return Response(101, content_type="", headers=headers, upgrade=plan)

    def _exec_spec(self, req: Request, pod: Obj, subresource: str) -> ExecSpec:
        ctrs = (pod.get("spec") or {}).get("containers") or []
        names = [x.get("name") for x in ctrs]
        name = pod["metadata"]["name"]
        container = req.query.get("container") or (names[0] if len(names) == 1 else "")
        if not container:
            raise ApiError(400, f"a container name must be specified for pod {name}, choose one of: {names}")
        if container not in names:
            raise ApiError(400, f"container {container} is not valid for pod {name}")
        flags = {k: req.query.get(k, "") in ("true", "1") for k in ("stdin", "stdout", "stderr", "tty")}
        command = tuple(v for k, v in req.query_all if k == "command")
        if subresource == "exec" and not command:
            raise ApiError(400, "you must specify at least 1 command")
        if not (flags["stdin"] or flags["stdout"] or flags["stderr"]):
            raise ApiError(400, "you must specify at least 1 of stdin, stdout, stderr")
        ctr = next(x for x in ctrs if x.get("name") == container)
        env = {e["name"]: str(e.get("value", "")) for e in ctr.get("env") or [] if isinstance(e, dict) and "name" in e}
        spec = containers.Container(name, pod["metadata"].get("namespace", ""), container, env)
        first = len(pod_log_lines(pod, container, self.settings.log_lines)) + 1
        return ExecSpec(spec, command, flags["stdin"], flags["stdout"], flags["stderr"], flags["tty"],
                        attach=subresource == "attach", first_line=first)  # fmt: skip

    def _token_request(self, c: VirtualCluster, rt: ResourceType, ns: str, name: str, body: Any) -> Response:
        sa = c.get(rt, ns, name)
        spec = (body or {}).get("spec") or {}
        seconds = int(spec.get("expirationSeconds") or 3600)
        user = UserInfo(f"system:serviceaccount:{ns}:{name}",
                        ("system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"),
                        sa["metadata"]["uid"])  # fmt: skip
        token, expires_at = c.issue_token(user, dt.timedelta(seconds=seconds))
        expires = expires_at.strftime("%Y-%m-%dT%H:%M:%SZ")
        return json_response({
            "kind": "TokenRequest", "apiVersion": "authentication.k8s.io/v1",
            "metadata": {"name": name, "namespace": ns, "creationTimestamp": None},
            "spec": {"audiences": spec.get("audiences") or ["https://kubernetes.default.svc"],
                     "expirationSeconds": seconds, "boundObjectRef": spec.get("boundObjectRef")},
            "status": {"token": token, "expirationTimestamp": expires},
        }, 201)  # fmt: skip

    # ---- reviews: answered, never stored
    async def _review(self, c: VirtualCluster, user: UserInfo, rt: ResourceType, ns: str, body: Any) -> Response:
        if not isinstance(body, dict):
            raise ApiError(400, "the body of the request must be an object")
        spec = body.get("spec") or {}
        out = {"kind": rt.kind, "apiVersion": rt.group_version,
               "metadata": {"creationTimestamp": None, **(body.get("metadata") or {})}, "spec": spec}  # fmt: skip
        if rt.plural == "tokenreviews":
            await self._authorize(c, user, Attributes("create", rt.group, rt.plural))
            found = c.user_for_token(spec.get("token", ""))
            out["status"] = {"authenticated": True, "user": found.as_status(),
                             "audiences": spec.get("audiences") or []} if found else {"authenticated": False}  # fmt: skip
            return json_response(out, 201)
        if rt.plural == "selfsubjectreviews":
            out["status"] = {"userInfo": user.as_status()}
            return json_response(out, 201)
        if rt.plural == "selfsubjectrulesreviews":
            await self._authorize(c, user, Attributes("create", rt.group, rt.plural))
            rules = rules_for(user, spec.get("namespace", ""), c.rbac())
            out["status"] = {
                "resourceRules": [{k: r[k] for k in ("verbs", "apiGroups", "resources", "resourceNames") if k in r}
                                  for r in rules if "resources" in r],
                "nonResourceRules": [{"verbs": r["verbs"], "nonResourceURLs": r["nonResourceURLs"]}
                                     for r in rules if "nonResourceURLs" in r],
                "incomplete": False,
            }  # fmt: skip
            return json_response(out, 201)
        if rt.plural == "selfsubjectaccessreviews":
            await self._authorize(c, user, Attributes("create", rt.group, rt.plural))
            subject = user
        else:
            await self._authorize(c, user, Attributes("create", rt.group, rt.plural, namespace=ns))
            subject = UserInfo(spec.get("user", ""), tuple(spec.get("groups") or ()), spec.get("uid", ""))
        ra = spec.get("resourceAttributes")
        nra = spec.get("nonResourceAttributes")
        if ra:
            if rt.plural == "localsubjectaccessreviews" and ra.get("namespace", ns) != ns:
                raise ApiError(400, "spec.resourceAttributes.namespace must match the namespace of the request")
            attrs = Attributes(ra.get("verb", ""), ra.get("group", ""), ra.get("resource", ""),
                               ra.get("subresource", ""), ra.get("namespace", ""), ra.get("name", ""))  # fmt: skip
        elif nra:
            attrs = Attributes(nra.get("verb", ""), path=nra.get("path", "/"))
        else:
            raise ApiError(
                422,
                f"{rt.kind}.authorization.k8s.io is invalid: spec.resourceAttributes: Invalid value: "
                "null: exactly one of nonResourceAttributes or resourceAttributes must be specified",
                details={"causes": [{"reason": "FieldValueInvalid", "field": "spec.resourceAttributes"}]},
            )
        allowed, reason = await self._decide(c, subject, attrs)
        out["status"] = {"allowed": allowed} | ({"reason": reason} if reason else {})
        return json_response(out, 201)

    def _table(self, rt: ResourceType, objs: list[Obj], rv: str, req: Request, *, with_columns: bool = True,
               continue_token: str = "") -> dict[str, Any]:  # fmt: skip
        return tables.table(rt, objs, resource_version=rv, include_object=req.query.get("includeObject", "Metadata"),
                            now=self.clock.now(), with_columns=with_columns, continue_token=continue_token)  # fmt: skip


def _matches(labels: list[Requirement], fields: list[FieldRequirement], o: Obj) -> bool:
    return labels_match(labels, o) and fields_match(fields, o)


def _bookmark(rt: ResourceType, rv: str, *, initial_end: bool = False) -> dict[str, Any]:
    meta: dict[str, Any] = {"resourceVersion": rv}
    if initial_end:
        meta["annotations"] = {"k8s.io/initial-events-end": "true"}
    return {"kind": rt.kind, "apiVersion": rt.group_version, "metadata": meta}


def _manager_from_agent(agent: str) -> str:
    """The real server's default field manager: the user agent up to the first '/'."""
    return (agent.split("/")[0] if agent else "unknown")[:128] or "unknown"


def pod_log_lines(pod: Obj, container: str, count: int) -> list[str]:
    """The simulated log of a container: the pod's ``sim.halyard.io/log`` annotation if set, else generated lines."""
    custom = (pod["metadata"].get("annotations") or {}).get("sim.halyard.io/log")
    if custom is not None:
        return custom.splitlines()
    image = next((x.get("image", "") for x in pod["spec"].get("containers") or [] if x.get("name") == container), "")
    name = pod["metadata"]["name"]
    return [f"[{container}] simulated container of pod {name} started from image {image}"] + [
        f"[{container}] log line {i}" for i in range(1, count)
    ]
