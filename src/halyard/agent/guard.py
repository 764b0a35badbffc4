"""guard: the cluster's Kubernetes authorization webhook for azure-rbac, deciding from the control plane's roles.

kube-apiserver (``--authorization-mode=...,Webhook``) posts a SubjectAccessReview for each request its other
authorizers did not allow; guard answers it by asking the control plane's access check (``POST {dp}/v1/checkaccess``)
with this cluster's agent token, so the control plane knows which cluster asks and answers only about it.

What guard decides alone, as Arc's guard does (kubeguard/guard ``authz/providers/azure/azure.go``):

- ``system:`` users (the cluster's own components): no opinion, the cluster's RBAC decides;
- a user that is not a directory object id (nor carries one in ``extra["oid"]``): no opinion (Arc's
  ``--azure.skip-authz-for-non-aad-users``), so local users and service accounts keep their RBAC;
- everything else is decided by the control plane, and every refusal says ``denied: true`` (kube-apiserver stops
  there). A 4xx from the control plane (a request it cannot map, a wildcard) is a refusal; a 5xx or an unreachable
  control plane is an HTTP 500 here, which kube-apiserver counts as no opinion (and so, last in the chain, as
  denied), and it is not cached.

Decisions, allowed and denied, are cached for ``ttl`` seconds (default 15) in at most ``max_entries`` entries: a
revoked role assignment stops working at most ``ttl`` seconds later (plus kube-apiserver's own webhook cache, set
with ``--authorization-webhook-cache-{un,}authorized-ttl``).

It listens on 127.0.0.1 only, over TLS (kube-apiserver calls webhooks over https) with a CA and certificate it
generates in its state directory, and writes ``guard.kubeconfig`` there: the ``--authorization-webhook-config-file``
naming its URL and CA.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import logging
import socket
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx
import uvicorn
import yaml
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from halyard.agent.controlplane import ControlPlaneError, send
from halyard.agent.endpoints import Url, url_of
from halyard.api.checkaccess import DP_CHECKACCESS_PATH, MAX_GROUPS, CheckAccessReply, is_guid
from halyard.core.clock import Clock
from halyard.core.files import write_private
from halyard.core.pki import ensure_server_tls

log = logging.getLogger("halyard.agent.guard")

LOOPBACK = "127.0.0.1"
DEFAULT_TTL = 15.0
DEFAULT_MAX_ENTRIES = 10_000
MAX_REVIEW_BYTES = 64 * 1024
KUBECONFIG = "guard.kubeconfig"
API_VERSIONS = ("authorization.k8s.io/v1", "authorization.k8s.io/v1beta1")
NO_OPINION_SYSTEM = "Azure does not have opinion for this user."
NO_OPINION_NON_AAD = (
    "Azure does not have opinion for this non AAD user. If you are an AAD user, please set Extra:oid parameter for "
    "impersonated user in the kubeconfig"
)
CHECK_FAILED = "Access denied due to Azure RBAC check failure."


class TokenSource(Protocol):
    async def token(self) -> str: ...

    def forget_token(self) -> None: ...


@dataclass(frozen=True)
class Decision:
    allowed: bool
    denied: bool
    reason: str

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = {"allowed": self.allowed, "reason": self.reason}
        if self.denied:
            status["denied"] = True
        return status


class BadReview(ValueError):
    """The body is not a SubjectAccessReview guard can answer."""


def _strings(value: Any, what: str, *, limit: int) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > limit:
        raise BadReview(f"{what} must be a list of at most {limit} strings")
    return value


def check_request(spec: Mapping[str, Any]) -> dict[str, Any] | Decision:
    """The access check to ask the control plane for a SubjectAccessReview ``spec``, or the decision guard makes
    alone (no opinion for system and non-directory users). Pure."""
    user = spec.get("user")
    if not isinstance(user, str) or not user:
        raise BadReview("spec.user must be a non-empty string")
    if user.lower().startswith("system:"):
        return Decision(False, False, NO_OPINION_SYSTEM)
    extra = spec.get("extra") or {}
    if not isinstance(extra, dict):
        raise BadReview("spec.extra must be an object")
    oids = _strings(extra.get("oid"), "spec.extra.oid", limit=1)
    oid = oids[0] if oids else user
    if not is_guid(oid):
        return Decision(False, False, NO_OPINION_NON_AAD)
    # v1 says ``groups``; v1beta1 said ``group``.
    groups = _strings(spec.get("groups", spec.get("group")), "spec.groups", limit=MAX_GROUPS)
    body: dict[str, Any] = {"user": oid.lower(), "groups": sorted({g.lower() for g in groups if is_guid(g)})}
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if isinstance(resource, dict):
        # The name and version decide nothing (the data action names neither), so they are not asked about:
        # one cached decision serves every object of a kind.
        keys = ("namespace", "verb", "group", "resource", "subresource")
        body["resourceAttributes"] = {k: str(resource.get(k) or "") for k in keys}
    elif isinstance(non_resource, dict):
        body["nonResourceAttributes"] = {k: str(non_resource.get(k) or "") for k in ("path", "verb")}
    else:
        raise BadReview("spec must hold resourceAttributes or nonResourceAttributes")
    return body


class DecisionCache:
    """Decisions by request for ``ttl`` seconds, the ``max_entries`` most recently used at most. Time comes from
    ``clock``, so tests move it."""

    def __init__(self, clock: Clock, *, ttl: float = DEFAULT_TTL, max_entries: int = DEFAULT_MAX_ENTRIES) -> None:
        self._clock = clock
        self._ttl = dt.timedelta(seconds=ttl)
        self._max = max_entries
        self._entries: OrderedDict[str, tuple[dt.datetime, Decision]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> Decision | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if self._clock.now() >= entry[0]:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return entry[1]

    def put(self, key: str, decision: Decision) -> None:
        self._entries[key] = (self._clock.now() + self._ttl, decision)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class Guard:
    """The webhook as a reconcile-loop agent: ``reconcile`` keeps it listening; :meth:`review` answers one
    SubjectAccessReview (also usable without the server)."""

    name = "guard"

    def __init__(
        self,
        http: httpx.AsyncClient,
        dp_url: Url,
        tokens: TokenSource,
        clock: Clock,
        state_dir: Path,
        *,
        port: int = 0,
        ttl: float = DEFAULT_TTL,
        max_entries: int = DEFAULT_MAX_ENTRIES,
    ) -> None:
        self._http = http
        self._dp = dp_url  # read at each check: private link may move it (endpoints.py)
        self._tokens = tokens
        self._state_dir = state_dir
        self._port = port
        self.cache = DecisionCache(clock, ttl=ttl, max_entries=max_entries)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self.port: int | None = None

    def _check_url(self) -> str:
        return url_of(self._dp) + DP_CHECKACCESS_PATH

    @property
    def kubeconfig(self) -> Path:
        """The webhook configuration file for kube-apiserver (and the simulator), once listening."""
        return self._state_dir / KUBECONFIG

    async def review(self, spec: Mapping[str, Any]) -> Decision:
        """The decision for a SubjectAccessReview's ``spec``; BadReview if malformed, ControlPlaneError if the
        control plane could not decide (not cached)."""
        request = check_request(spec)
        if isinstance(request, Decision):
            return request
        key = json.dumps(request, sort_keys=True, separators=(",", ":"))
        cached = self.cache.get(key)
        if cached is not None:
            return cached
        try:
            answer = await self._ask(request)
            try:
                reply = CheckAccessReply.model_validate(answer)
            except ValidationError:
                raise ControlPlaneError(f"{self._check_url()}: the access check answered no decision") from None
            decision = Decision(reply.allowed, not reply.allowed, reply.reason)
        except ControlPlaneError as exc:
            if not 400 <= exc.status < 500:
                raise
            decision = Decision(False, True, f"{CHECK_FAILED} ({exc.status} {exc.code})")
        self.cache.put(key, decision)
        return decision

    async def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        for attempt in (1, 2):
            headers = {"Authorization": f"Bearer {await self._tokens.token()}"}
            try:
                return await send(self._http, "POST", self._check_url(), json=request, headers=headers)
            except ControlPlaneError as exc:
                if exc.status != 401 or attempt == 2:
                    raise
                self._tokens.forget_token()  # a refused token (key rotation, restore): mint a new one once
        raise AssertionError("unreachable")

    async def _app(self, scope: Any, receive: Any, send_: Any) -> None:
        if scope["type"] != "http":
            return
        response = await self._handle(Request(scope, receive))
        await response(scope, receive, send_)

    async def _handle(self, request: Request) -> Response:
        if request.method != "POST":
            return JSONResponse({"error": "only POST"}, status_code=405)
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_REVIEW_BYTES:
                return JSONResponse({"error": "SubjectAccessReview too large"}, status_code=413)
        try:
            review = json.loads(body)
            if not isinstance(review, dict) or review.get("kind") != "SubjectAccessReview":
                raise BadReview("not a SubjectAccessReview")
            api_version = review.get("apiVersion")
            if api_version not in API_VERSIONS:
                raise BadReview(f"apiVersion must be one of {', '.join(API_VERSIONS)}")
            spec = review.get("spec")
            if not isinstance(spec, dict):
                raise BadReview("spec must be an object")
            decision = await self.review(spec)
        except (ValueError, BadReview) as exc:
            return JSONResponse({"error": str(exc)[:300]}, status_code=400)
        except ControlPlaneError as exc:
            log.warning("access check failed", extra={"error": str(exc)[:300]})
            return JSONResponse({"error": "the access check failed; retry later"}, status_code=500)
        return JSONResponse({"apiVersion": api_version, "kind": "SubjectAccessReview", "status": decision.status()})

    async def reconcile(self) -> float:
        if self._task is not None and self._task.done():
            self._task, self._server = None, None  # the server stopped: start it again
        if self._task is None:
            await self._start()
        return 60.0

    async def _start(self) -> None:
        tls = ensure_server_tls(self._state_dir / "guard-tls", "guard", ["localhost"], [LOOPBACK])
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((LOOPBACK, self._port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            lifespan="off",
            interface="asgi3",
            limit_concurrency=256,  # kube-apiserver's reviews at once; beyond, 503 (no opinion) rather than memory
            log_config=None,
            access_log=False,
            ssl_certfile=str(tls.cert),
            ssl_keyfile=str(tls.key),
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="guard-webhook")
        while not self._server.started:
            if self._task.done():
                self._task.result()  # raises why it could not start
            await asyncio.sleep(0.01)
        write_private(self.kubeconfig, webhook_kubeconfig(f"https://{LOOPBACK}:{self.port}/", tls.ca_cert.read_bytes()))
        log.info("guard listening", extra={"port": self.port})

    async def close(self) -> None:
        """Stop listening (the manager's stop)."""
        if self._server is not None and self._task is not None:
            # Kept-alive connections from kube-apiserver would hold a graceful shutdown; a review cut short is
            # retried by kube-apiserver (or counts as no opinion), so guard does not wait for them.
            self._server.should_exit = self._server.force_exit = True
            await asyncio.wait([self._task], timeout=5)
        self._server = self._task = None


def webhook_kubeconfig(url: str, ca_pem: bytes) -> bytes:
    """The kubeconfig kube-apiserver reads with ``--authorization-webhook-config-file``: the webhook is the cluster,
    kube-apiserver the user (no client credentials: guard listens on loopback only)."""
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "guard",
                "cluster": {"server": url, "certificate-authority-data": base64.b64encode(ca_pem).decode()},
            }
        ],
        "users": [{"name": "apiserver", "user": {}}],
        "contexts": [{"name": "webhook", "context": {"cluster": "guard", "user": "apiserver"}}],
        "current-context": "webhook",
    }
    return yaml.safe_dump(config, sort_keys=False).encode()
