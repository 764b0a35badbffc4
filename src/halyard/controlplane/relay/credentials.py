"""What ``listClusterUserCredential`` returns: a relay token for the local proxy and a kubeconfig for kubectl.

The kubeconfig's server is the relay's URL of that cluster, trusted through the control plane's CA. For AAD its
user is the ``halyard get-token`` exec plugin (a management token, refreshed by the CLI), which the relay verifies
and turns into an assertion for auth-proxy. Token mode needs the local proxy: kubectl's bearer token is then the
user's service-account token, bound for the API server, and cannot also prove who the caller is to the relay.
"""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import yaml

from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.identity.tokens import TokenService
from halyard.core.settings import Settings
from halyard.tunnel.protocol import PREFIX

EXEC_PLUGIN = {
    "apiVersion": "client.authentication.k8s.io/v1",
    "command": "halyard",
    "args": ["get-token", "--output", "json"],
    "interactiveMode": "Never",
    "provideClusterInfo": False,
}


def stream_url(settings: Settings, cluster_id: str) -> str:
    return f"{settings.base_url}{PREFIX}{cluster_id}"


def kubeconfig(settings: Settings, cluster_id: str, *, token_mode: bool) -> dict[str, Any]:
    name = cluster_id.rsplit("/", 1)[-1]
    group = cluster_id.split("/")[4]
    cluster: dict[str, Any] = {"server": stream_url(settings, cluster_id)}
    if settings.ca_bundle is not None and settings.ca_bundle.exists():
        cluster["certificate-authority-data"] = base64.b64encode(settings.ca_bundle.read_bytes()).decode()
    user_name = f"clusterUser_{group}_{name}"
    user: dict[str, Any] = {"token": ""} if token_mode else {"exec": dict(EXEC_PLUGIN)}
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": cluster}],
        "users": [{"name": user_name, "user": user}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": user_name}}],
        "current-context": name,
        "preferences": {},
    }


def user_credential(
    settings: Settings, tokens: TokenService, caller: AuthorizedCaller, cluster_id: str, *, token_mode: bool,
    now: dt.datetime,
) -> dict[str, Any]:  # fmt: skip
    who = caller.caller
    token, lifetime = tokens.issue(
        tenant_id=who.tenant_id,
        object_id=who.object_id,
        app_id=who.app_id,
        kind=who.kind,
        audience=settings.relay_audience,
        resource_id=cluster_id,
    )
    text = yaml.safe_dump(kubeconfig(settings, cluster_id, token_mode=token_mode), sort_keys=False)
    return {
        "hybridConnectionConfig": {
            "expirationTime": int(now.timestamp()) + lifetime,
            "hybridConnectionName": cluster_id,
            "relay": stream_url(settings, cluster_id),
            "token": token,
            "relayTid": who.tenant_id,
            "relayType": "Halyard",
        },
        "kubeconfigs": [{"name": "credentialUser", "value": base64.b64encode(text.encode()).decode()}],
    }
