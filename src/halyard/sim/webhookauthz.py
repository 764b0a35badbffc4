"""Webhook authorization for the simulator's clusters, as kube-apiserver's ``--authorization-mode=RBAC,Webhook``.

A cluster with a webhook configured asks it about every request RBAC did not allow, with the SubjectAccessReview
kube-apiserver sends (``authorization.k8s.io/v1``, as with ``--authorization-webhook-version=v1``). The decision
follows kube-apiserver's union authorizer (k8s.io/apiserver ``pkg/authorization/union``): authorizers are asked in
order and the first that decides wins: RBAC allows or has no opinion (it never denies); the webhook allows
(``status.allowed``), denies (``status.denied``, which ends the chain, and wins over ``allowed`` if both are set)
or has no opinion (neither; k8s.io/apiserver ``plugin/pkg/authorizer/webhook``). No opinion from
every authorizer is a refusal. A webhook that fails (unreachable, not 200, not a review) has no opinion, as
kube-apiserver's webhook authorizer without a failure policy.

The webhook is configured per cluster by a kubeconfig file, as kube-apiserver's
``--authorization-webhook-config-file``: ``<sim data dir>/authz-webhooks/<cluster>.kubeconfig`` (its cluster's
``server`` and ``certificate-authority-data``/``certificate-authority``; no client credentials). It is read again
when the file changes, so a test or ``halyard`` can set and remove it while the simulator runs (:func:`configure`).
A file on the host, not an object in the cluster: like an apiserver flag, it is the machine owner's to set, and no
user of the cluster's API can point its authorization elsewhere.

Decisions are not cached (``--authorization-webhook-cache-authorized-ttl=0``, ``…-unauthorized-ttl=0``): the webhook
(guard) caches its own, and a test sees a revocation as soon as guard does.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from halyard.core.files import write_private
from halyard.sim.rbac import Attributes, UserInfo

log = logging.getLogger("halyard.sim.webhookauthz")

API_VERSION = "authorization.k8s.io/v1"
TIMEOUT = 10.0
ALLOW, DENY, NO_OPINION = "allow", "deny", "no-opinion"


def webhook_path(data_dir: Path, cluster: str) -> Path:
    """Where the simulator reads the webhook configuration of ``cluster``."""
    return data_dir / "authz-webhooks" / f"{cluster}.kubeconfig"


def configure(data_dir: Path, cluster: str, kubeconfig: bytes | None) -> None:
    """Set (or, with None, remove) the authorization webhook of ``cluster``; the running simulator sees it on the
    cluster's next request."""
    path = webhook_path(data_dir, cluster)
    if kubeconfig is None:
        path.unlink(missing_ok=True)
    else:
        write_private(path, kubeconfig)


def review_body(user: UserInfo, a: Attributes) -> dict[str, Any]:
    """The SubjectAccessReview kube-apiserver sends for ``user`` doing ``a`` (empty fields left out, as its
    ``omitempty`` JSON tags do)."""
    spec: dict[str, Any] = {}
    if a.resource_request:
        attrs = {
            "namespace": a.namespace,
            "verb": a.verb,
            "group": a.api_group,
            "version": a.version,
            "resource": a.resource,
            "subresource": a.subresource,
            "name": a.name,
        }
        spec["resourceAttributes"] = {k: v for k, v in attrs.items() if v}
    else:
        spec["nonResourceAttributes"] = {"path": a.path, "verb": a.verb}
    spec["user"] = user.name
    if user.groups:
        spec["groups"] = list(user.groups)
    if user.extra:
        spec["extra"] = {k: list(v) for k, v in user.extra.items()}
    if user.uid:
        spec["uid"] = user.uid
    return {
        "apiVersion": API_VERSION,
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": spec,
        "status": {"allowed": False},
    }


def decision_of(review: Any) -> tuple[str, str]:
    """(allow | deny | no-opinion, reason) from the webhook's reply, as kube-apiserver reads it."""
    status = review.get("status") if isinstance(review, dict) else None
    if not isinstance(status, dict):
        return NO_OPINION, "the webhook answered no SubjectAccessReview status"
    reason = str(status.get("reason") or "")[:1024]
    # Denied first: kube-apiserver's webhook authorizer reads allowed-and-denied as a denial (with an error).
    if status.get("denied") is True:
        return DENY, reason
    if status.get("allowed") is True:
        return ALLOW, reason
    return NO_OPINION, reason


@dataclass(frozen=True)
class Webhook:
    url: str
    client: httpx.AsyncClient


def parse_kubeconfig(data: bytes, base: Path) -> tuple[str, ssl.SSLContext | bool]:
    """The webhook URL and TLS verification of a webhook kubeconfig; ValueError if it names none."""
    config = yaml.safe_load(data)
    context_name = (config or {}).get("current-context")
    contexts = {c.get("name"): c.get("context") or {} for c in (config or {}).get("contexts") or []}
    clusters = {c.get("name"): c.get("cluster") or {} for c in (config or {}).get("clusters") or []}
    cluster_name = (contexts.get(context_name) or {}).get("cluster") if context_name else None
    if cluster_name is None and len(clusters) == 1:
        cluster_name = next(iter(clusters))
    cluster = clusters.get(cluster_name)
    if not cluster or not isinstance(cluster.get("server"), str):
        raise ValueError("the webhook kubeconfig names no cluster server")
    url: str = cluster["server"]
    if not url.startswith("https://"):
        raise ValueError("the webhook must be served over https, as kube-apiserver requires")
    if cluster.get("certificate-authority-data"):
        pem = base64.b64decode(cluster["certificate-authority-data"]).decode()
        return url, ssl.create_default_context(cadata=pem)
    if cluster.get("certificate-authority"):
        return url, ssl.create_default_context(cafile=str(base / cluster["certificate-authority"]))
    return url, True


class WebhookAuthorizer:
    """The webhooks of every cluster of one simulator, each read from its file when that file changes."""

    def __init__(self, path_of: Callable[[str], Path]) -> None:
        self._path_of = path_of
        self._loaded: dict[str, tuple[tuple[int, int], Webhook | None]] = {}
        self._closing: set[asyncio.Task[None]] = set()

    def _webhook(self, cluster: str) -> Webhook | None:
        path = self._path_of(cluster)
        try:
            st = path.stat()
        except FileNotFoundError:
            self._drop(cluster)
            return None
        stamp = (st.st_mtime_ns, st.st_size)
        loaded = self._loaded.get(cluster)
        if loaded is not None and loaded[0] == stamp:
            return loaded[1]
        self._drop(cluster)
        try:
            url, verify = parse_kubeconfig(path.read_bytes(), path.parent)
            webhook: Webhook | None = Webhook(url, httpx.AsyncClient(verify=verify, timeout=TIMEOUT))
        except (OSError, ValueError, yaml.YAMLError, ssl.SSLError) as exc:
            log.warning("authorization webhook of cluster %s not usable: %s", cluster, exc)
            webhook = None
        self._loaded[cluster] = (stamp, webhook)
        return webhook

    def _drop(self, cluster: str) -> None:
        loaded = self._loaded.pop(cluster, None)
        if loaded is not None and loaded[1] is not None:
            self._close_later(loaded[1].client)

    def _close_later(self, client: httpx.AsyncClient) -> None:
        """Close a replaced webhook's client once its requests finish; nothing here waits on it."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        task = loop.create_task(client.aclose())
        self._closing.add(task)  # referenced until done (the loop holds tasks only weakly)
        task.add_done_callback(self._closing.discard)

    async def decide(self, cluster: str, user: UserInfo, a: Attributes) -> tuple[str, str]:
        """The webhook's decision for ``user`` doing ``a`` in ``cluster`` (no opinion when none is configured)."""
        webhook = self._webhook(cluster)
        if webhook is None:
            return NO_OPINION, ""
        try:
            response = await webhook.client.post(webhook.url, json=review_body(user, a))
            if response.status_code != 200:
                return NO_OPINION, f"the authorization webhook answered {response.status_code}"
            return decision_of(response.json())
        except (httpx.HTTPError, ValueError) as exc:
            return NO_OPINION, f"the authorization webhook failed: {type(exc).__name__}"

    async def aclose(self) -> None:
        for _, webhook in self._loaded.values():
            if webhook is not None:
                await webhook.client.aclose()
        self._loaded.clear()


async def authorize(
    user: UserInfo, a: Attributes, rbac_decision: tuple[bool, str], webhooks: WebhookAuthorizer | None, cluster: str
) -> tuple[bool, str]:
    """kube-apiserver's union of RBAC then the webhook: (allowed, reason)."""
    allowed, reason = rbac_decision
    if allowed or webhooks is None:
        return allowed, reason
    decision, why = await webhooks.decide(cluster, user, a)
    return decision == ALLOW, why
