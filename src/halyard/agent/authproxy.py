"""auth-proxy (kube-aad-proxy's role): checks who the control plane says is calling, and speaks for them.

Every cluster-connect stream starts with the relay's header. In AAD mode it carries an assertion the control plane
signed (ES256, its published keys): this principal, for this cluster, for at most five minutes, used once. The
proxy verifies it, then sends each of the stream's requests to the API server with its own least-privilege
credential and ``Impersonate-User``/``Impersonate-Group`` for the principal; whatever credentials or impersonation
the client sent are dropped. The cluster's own RBAC (and guard, when azure-rbac is on) decides from there. In
Token mode the client's bearer token (a service-account token) goes to the API server untouched.

Requests on a stream that came through kubectl's direct kubeconfig keep the relay's path prefix, which is stripped
here; a request naming another prefix (another cluster) is refused, never served from this one.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

from halyard.agent.endpoints import Url, url_of
from halyard.tunnel.rewrite import RequestRewriter, RewriteRefused
from halyard.tunnel.splice import HIGH_WATER, LOW_WATER, Reading

log = logging.getLogger("halyard.agent")
MAX_ASSERTION_LIFETIME = 300 + 60  # five minutes, and the issuer's one-minute not-before allowance
KEYS_REFRESH_MIN = 30.0  # an unknown key id refetches the key set at most this often
_DROPPED = {"authorization", "impersonate-user", "impersonate-group", "impersonate-uid", "proxy-authorization"}


class AssertionRefused(Exception):
    pass


@dataclass(frozen=True)
class Principal:
    object_id: str
    groups: tuple[str, ...]


class AssertionVerifier:
    """Verifies the relay's assertions against the control plane's published signing keys, each once."""

    def __init__(
        self, http: httpx.AsyncClient, *, jwks_url: Url, issuer: str, cluster_id: str, now: Callable[[], float]
    ) -> None:
        self._http = http
        self._jwks_url = jwks_url  # read at each fetch: private link may move the login service (endpoints.py)
        self._issuer = issuer
        self._cluster = cluster_id.lower()
        self._now = now
        self._keys: dict[str, Any] = {}
        self._fetched_at = -KEYS_REFRESH_MIN
        self._used: dict[str, float] = {}  # assertion id → its expiry

    async def verify(self, assertion: str) -> Principal:
        try:
            kid = jwt.get_unverified_header(assertion).get("kid", "")
        except jwt.PyJWTError as exc:
            raise AssertionRefused(f"not a JWT: {exc}") from None
        key = await self._key(kid)
        try:
            claims = jwt.decode(
                assertion,
                key,
                algorithms=["ES256"],
                issuer=self._issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "aud", "oid", "uti"]},
                leeway=30,
            )
        except jwt.PyJWTError as exc:
            raise AssertionRefused(str(exc)) from None
        if str(claims["aud"]).lower() != self._cluster:
            raise AssertionRefused("the assertion is for another cluster")
        if int(claims["exp"]) - int(claims["iat"]) > MAX_ASSERTION_LIFETIME:
            raise AssertionRefused("the assertion lives longer than five minutes")
        now = self._now()
        for used, expiry in list(self._used.items()):
            if expiry < now - 60:
                del self._used[used]
        if claims["uti"] in self._used:
            raise AssertionRefused("the assertion was already used")
        self._used[str(claims["uti"])] = float(claims["exp"])
        groups = claims.get("groups") or []
        return Principal(str(claims["oid"]), tuple(str(g) for g in groups if isinstance(g, str))[:200])

    async def _key(self, kid: str) -> Any:
        if kid not in self._keys and self._now() - self._fetched_at >= KEYS_REFRESH_MIN:
            self._fetched_at = self._now()
            response = await self._http.get(url_of(self._jwks_url))
            response.raise_for_status()
            self._keys = {k["kid"]: jwt.PyJWK.from_dict(k).key for k in response.json().get("keys", []) if "kid" in k}
        if kid not in self._keys:
            raise AssertionRefused(f"signed with an unknown key {kid!r}")
        return self._keys[kid]


@dataclass(frozen=True)
class ApiServer:
    """Where auth-proxy reaches the API server, and how it trusts it."""

    host: str
    port: int
    tls: ssl.SSLContext | None
    host_header: str
    path: str = ""  # the server URL's path (a kubeconfig may name one): every request goes under it

    @classmethod
    def of(cls, server: str, tls: ssl.SSLContext | None) -> ApiServer:
        parts = urlsplit(server)
        secure = parts.scheme == "https"
        port = parts.port or (443 if secure else 80)
        return cls(parts.hostname or "", port, tls if secure else None, parts.netloc, parts.path.rstrip("/"))


class AuthProxy:
    def __init__(
        self,
        api: ApiServer,
        verifier: AssertionVerifier,
        own_token: Callable[[], Awaitable[str]],
    ) -> None:
        self._api = api
        self._verifier = verifier
        self._own_token = own_token
        self.active = 0
        self.served = 0

    async def serve(self, client: asyncio.Transport, header: dict[str, Any], rest: bytes) -> None:
        """Carry one stream (the agent's data connection, paused) to the API server until either side ends."""
        self.active += 1
        try:
            await self._serve(client, header, rest)
        finally:
            self.active -= 1
            self.served += 1

    async def _serve(self, client: asyncio.Transport, header: dict[str, Any], rest: bytes) -> None:
        mode = str(header.get("mode", ""))
        prefix = str(header.get("prefix", ""))
        principal: Principal | None = None
        try:
            if mode == "AAD":
                principal = await self._verifier.verify(str(header.get("assertion", "")))
            elif mode != "TOKEN":
                raise AssertionRefused(f"unknown authentication mode {mode!r}")
        except AssertionRefused as exc:
            log.warning("cluster-connect stream refused", extra={"reason": str(exc)})
            _refuse(client, RewriteRefused(401, "Unauthorized", f"cluster connect: {exc}"))
            return
        try:
            own = await self._own_token() if principal is not None else ""
        except Exception as exc:
            log.warning("auth-proxy has no credential", extra={"error": f"{type(exc).__name__}: {exc}"})
            message = f"cluster connect: auth-proxy could not get its own credential: {type(exc).__name__}: {exc}"
            _refuse(client, RewriteRefused(502, "BadGateway", message))
            return
        rewriter = RequestRewriter(_head_rewriter(prefix, principal, own, self._api))
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        down = _Downstream(client, rewriter, done)
        try:
            upstream, up = await loop.create_connection(
                lambda: _Upstream(client, done),
                self._api.host,
                self._api.port,
                ssl=self._api.tls,
                server_hostname=self._api.host if self._api.tls else None,
            )
        except OSError as exc:
            _refuse(client, RewriteRefused(502, "BadGateway", f"cluster connect: API server unreachable: {exc}"))
            return
        upstream.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        client.set_write_buffer_limits(high=HIGH_WATER, low=LOW_WATER)
        down.upstream = upstream
        up.peer = down
        down.reading, up.reading = Reading(client), Reading(upstream)
        down.upstream_reading = up.reading
        client.set_protocol(down)
        if rest:
            down.data_received(rest)
        if not client.is_closing():
            client.resume_reading()
        await done
        for transport in (client, upstream):
            if not transport.is_closing():
                transport.close()


def _head_rewriter(
    prefix: str, principal: Principal | None, own_token: str, api: ApiServer
) -> Callable[[str, str, list[tuple[str, str]]], tuple[str, list[tuple[str, str]]]]:
    def rewrite(method: str, target: str, fields: list[tuple[str, str]]) -> tuple[str, list[tuple[str, str]]]:
        if prefix:
            if target != prefix and not target.startswith(prefix + "/") and not target.startswith(prefix + "?"):
                raise RewriteRefused(421, "MisdirectedRequest", "this stream carries requests for another cluster")
            target = target[len(prefix) :] or "/"
            if not target.startswith("/"):
                target = "/" + target
        target = api.path + target
        if principal is None:  # Token mode: the client's own credentials, untouched
            out = [(k, v) for k, v in fields if k.lower() != "host"]
        else:
            out = [(k, v) for k, v in fields if k.lower() not in _DROPPED and k.lower() != "host"
                   and not k.lower().startswith("impersonate-extra-")]  # fmt: skip
            out.append(("Authorization", f"Bearer {own_token}"))
            out.append(("Impersonate-User", principal.object_id))
            out.extend(("Impersonate-Group", g) for g in principal.groups)
        out.insert(0, ("Host", api.host_header))
        return target, out

    return rewrite


def _refuse(client: asyncio.Transport, error: RewriteRefused) -> None:
    """A Kubernetes Status answer (kubectl prints its message) and the stream closed."""
    status = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
    body = json.dumps({**status, "message": error.message, "reason": error.reason, "code": error.status}).encode()
    head = (
        f"HTTP/1.1 {error.status} {error.reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    ).encode()
    if not client.is_closing():
        client.write(head + body)
        client.close()


class _Downstream(asyncio.Protocol):
    """The stream from the relay: requests rewritten towards the API server."""

    def __init__(self, client: asyncio.Transport, rewriter: RequestRewriter, done: asyncio.Future[None]) -> None:
        self.client = client
        self.rewriter = rewriter
        self.done = done
        self.upstream: asyncio.Transport | None = None
        self.reading: Reading | None = None  # the client's
        self.upstream_reading: Reading | None = None
        self.started = time.monotonic()

    def data_received(self, data: bytes) -> None:
        assert self.upstream is not None
        try:
            out = self.rewriter.feed(data)
        except RewriteRefused as exc:
            log.warning("cluster-connect request refused", extra={"reason": exc.message})
            _refuse(self.client, exc)
            self.upstream.close()
            return
        if out and not self.upstream.is_closing():
            self.upstream.write(out)
        if self.reading is not None:
            self.reading.passed(len(data))

    def eof_received(self) -> bool | None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.upstream is not None and not self.upstream.is_closing():
            self.upstream.close()
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:  # the relay side is slow: stop reading the API server
        if self.upstream_reading is not None:
            self.upstream_reading.hold(True)

    def resume_writing(self) -> None:
        if self.upstream_reading is not None:
            self.upstream_reading.hold(False)


class _Upstream(asyncio.Protocol):
    """The API server's side: its bytes go back to the relay untouched."""

    def __init__(self, client: asyncio.Transport, done: asyncio.Future[None]) -> None:
        self.client = client
        self.done = done
        self.peer: _Downstream | None = None
        self.reading: Reading | None = None  # the API server's

    def data_received(self, data: bytes) -> None:
        if not self.client.is_closing():
            self.client.write(data)
        if self.reading is not None:
            self.reading.passed(len(data))

    def eof_received(self) -> bool | None:
        if not self.client.is_closing():
            self.client.close()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.client.is_closing():
            self.client.close()
        if not self.done.done():
            self.done.set_result(None)

    def pause_writing(self) -> None:  # the API server reads slowly: stop reading the relay side
        if self.peer is not None and self.peer.reading is not None:
            self.peer.reading.hold(True)

    def resume_writing(self) -> None:
        if self.peer is not None and self.peer.reading is not None:
            self.peer.reading.hold(False)


SA_NAMESPACE = "halyard-system"
SA_NAME = "halyard-auth-proxy"
SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
OWN_TOKEN_SECONDS = 3600


class OwnCredential:
    """auth-proxy's own credential at the API server: a service account allowed to impersonate users and groups
    and nothing else. In a pod, the projected token the kubelet rotates; for local agents, a token requested for
    the same service account (created with its role on first use, as the chart creates it)."""

    def __init__(self, kube: Any, *, in_cluster: bool, now: Callable[[], float]) -> None:
        self._kube = kube
        self._in_cluster = in_cluster
        self._now = now
        self._token = ""
        self._expires = 0.0
        self._ensured = False

    async def __call__(self) -> str:
        if self._in_cluster:
            token = await asyncio.to_thread(Path(SA_TOKEN_FILE).read_text)  # re-read: the kubelet rotates it
            return token.strip()
        if self._now() < self._expires - 300:
            return self._token
        if not self._ensured:
            await ensure_impersonator(self._kube)
            self._ensured = True
        from lightkube.models.authentication_v1 import TokenRequestSpec
        from lightkube.models.meta_v1 import ObjectMeta
        from lightkube.resources.core_v1 import ServiceAccount

        request = ServiceAccount.Token(
            metadata=ObjectMeta(name=SA_NAME, namespace=SA_NAMESPACE),
            spec=TokenRequestSpec(audiences=[], expirationSeconds=OWN_TOKEN_SECONDS),
        )
        answer = await self._kube.create(request, SA_NAME, namespace=SA_NAMESPACE)
        self._token = answer.status.token
        self._expires = self._now() + OWN_TOKEN_SECONDS
        return self._token


async def ensure_impersonator(kube: Any) -> None:
    """The service account, its ClusterRole (impersonate users and groups only) and the binding (idempotent)."""
    from lightkube.core.exceptions import ApiError
    from lightkube.models.meta_v1 import ObjectMeta
    from lightkube.models.rbac_v1 import PolicyRule, RoleRef, Subject
    from lightkube.resources.core_v1 import ServiceAccount
    from lightkube.resources.rbac_authorization_v1 import ClusterRole, ClusterRoleBinding

    labels = {"app.kubernetes.io/managed-by": "halyard"}
    objects = [
        ServiceAccount(metadata=ObjectMeta(name=SA_NAME, namespace=SA_NAMESPACE, labels=labels)),
        ClusterRole(
            metadata=ObjectMeta(name=SA_NAME, labels=labels),
            rules=[PolicyRule(apiGroups=[""], resources=["users", "groups"], verbs=["impersonate"])],
        ),
        ClusterRoleBinding(
            metadata=ObjectMeta(name=SA_NAME, labels=labels),
            roleRef=RoleRef(apiGroup="rbac.authorization.k8s.io", kind="ClusterRole", name=SA_NAME),
            subjects=[Subject(kind="ServiceAccount", name=SA_NAME, namespace=SA_NAMESPACE)],
        ),
    ]
    for obj in objects:
        try:
            await kube.create(obj)
        except ApiError as exc:
            if exc.status.code != 409:
                raise
