"""``POST …/connectedClusters/NAME/listClusterUserCredential``: what ``proxy`` needs to open streams through the
relay (``clientProxy: true``) and the kubeconfig ``get-credentials`` writes (``clientProxy: false``)."""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
from typing import Any

from halyard.cli.arm import ArmClient
from halyard.cli.errors import CliError
from halyard.cli.kubeconfigs import parse

API_VERSION = "2024-01-01"
AAD = "AAD"
TOKEN = "Token"


@dataclass(frozen=True)
class RelayAccess:
    """``hybridConnectionConfig``: where streams to the cluster open and the bearer token that opens them."""

    relay: str  # the relay URL of this cluster (https://host[:port]/path)
    name: str  # the cluster's resource id
    token: str
    expires_at: float  # epoch seconds


@dataclass(frozen=True)
class ClusterCredentials:
    relay: RelayAccess | None
    kubeconfig: dict[str, Any] | None


def auth_method(token: str | None) -> str:
    """``Token`` when the user brings a service-account token, else ``AAD`` (the caller's identity), as az."""
    return TOKEN if token is not None else AAD


def list_credentials(arm: ArmClient, resource_id: str, *, method: str, client_proxy: bool) -> ClusterCredentials:
    """The credentials, or the control plane's refusal (forbidden, cluster offline, feature off) as its ARM error."""
    response = arm.request(
        "POST",
        f"{resource_id}/listClusterUserCredential",
        params={"api-version": API_VERSION},
        json={"authenticationMethod": method, "clientProxy": client_proxy},
    )
    try:
        body = response.json()
    except ValueError:
        body = None
    return parse_credentials(body)


def parse_credentials(body: Any) -> ClusterCredentials:
    if not isinstance(body, dict):
        raise _invalid("the answer is not a JSON object")
    relay: RelayAccess | None = None
    hybrid = body.get("hybridConnectionConfig")
    if isinstance(hybrid, dict) and hybrid.get("relay"):
        try:
            relay = RelayAccess(
                relay=str(hybrid["relay"]),
                name=str(hybrid.get("hybridConnectionName") or ""),
                token=str(hybrid["token"]),
                expires_at=float(hybrid["expirationTime"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise _invalid(f"hybridConnectionConfig lacks {exc}") from None
    kubeconfig: dict[str, Any] | None = None
    configs = body.get("kubeconfigs")
    if isinstance(configs, list) and configs and isinstance(configs[0], dict) and configs[0].get("value"):
        try:
            text = base64.b64decode(str(configs[0]["value"]), validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _invalid("kubeconfigs[0].value is not base64 of a kubeconfig") from None
        kubeconfig = parse(text, "The kubeconfig the control plane returned")
    return ClusterCredentials(relay, kubeconfig)


def _invalid(what: str) -> CliError:
    return CliError(f"listClusterUserCredential answered in an unexpected shape: {what}.", "InvalidResponse")
