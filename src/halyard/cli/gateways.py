"""Gateways and cluster network settings as the CLI addresses and checks them: what ``arcgateway``,
``connectedk8s connect`` and ``connectedk8s update`` share (ids, the settings/default link, proxy flags checked
before anything is written)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from halyard.cli.context import Invocation
from halyard.cli.errors import UsageError
from halyard.cli.resourceids import extension_id, resource_id, resources_collection, with_resource_group

NAMESPACE = "Microsoft.HybridCompute"
TYPE = "gateways"
API_VERSION = "2024-07-31-preview"  # what az arcgateway sends
TABLE = (
    ("Name", "name"),
    ("ResourceGroup", "resourceGroup"),
    ("Location", "location"),
    ("GatewayEndpoint", "gatewayEndpoint"),
    ("AllowedFeatures", "allowedFeatures"),
    ("ProvisioningState", "provisioningState"),
)
GATEWAY_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}/resourceGroups/"
    r"[a-zA-Z0-9_.()-]+/providers/Microsoft\.HybridCompute/gateways/[a-zA-Z0-9_-]+$",
    re.IGNORECASE,
)
PROXY_FEATURE = "proxy"  # the cluster's arcAgentryConfigurations entry the agents read their proxy from


def gateway_id(subscription_id: str, group: str, name: str) -> str:
    return resource_id(subscription_id, group, NAMESPACE, TYPE, name)


def gateways_collection(subscription_id: str, group: str | None = None) -> str:
    return resources_collection(subscription_id, NAMESPACE, TYPE, group)


def settings_id(base_resource_id: str) -> str:
    """``{resource}/providers/Microsoft.HybridCompute/settings/default``: where a resource's gateway link lives."""
    return extension_id(base_resource_id, NAMESPACE, "settings", "default")


def flatten(resource: dict[str, Any]) -> dict[str, Any]:
    flat = {k: v for k, v in resource.items() if k != "properties"}
    flat.update(resource.get("properties") or {})
    return dict(with_resource_group(flat))


def check_gateway_id(value: str) -> str:
    if not GATEWAY_ID.match(value):
        raise UsageError(
            f"argument --gateway-resource-id: '{value}' is not a gateway id: /subscriptions/<guid>/resourceGroups/"
            "<group>/providers/Microsoft.HybridCompute/gateways/<name>."
        )
    return value


def link(inv: Invocation, cluster_resource_id: str, gateway: str | None) -> dict[str, Any]:
    """PUT the cluster's settings/default (GET first, as az arcgateway settings update): link it, or (None) unlink."""
    path = settings_id(cluster_resource_id)
    body = {"properties": {"gatewayProperties": {"gatewayResourceId": gateway}}}
    first = inv.arm.request("PUT", path, params={"api-version": API_VERSION}, json=body)
    result: dict[str, Any] = inv.arm.wait("PUT", inv.arm.resource_url(path, API_VERSION), first)
    return result


@dataclass(frozen=True)
class ProxySettings:
    """``--proxy-https/--proxy-http/--proxy-skip-range/--proxy-cert`` checked: URLs with a scheme and a host, a
    readable PEM certificate. The URLs may carry basic-auth credentials, so they travel as protected settings."""

    https: str | None = None
    http: str | None = None
    skip_range: str | None = None
    cert_pem: str | None = None

    @property
    def empty(self) -> bool:
        return not (self.https or self.http or self.skip_range or self.cert_pem)

    def configuration(self) -> dict[str, Any]:
        """The cluster's ``arcAgentryConfigurations`` entry for these settings."""
        settings = {k: v for k, v in (("noProxy", self.skip_range), ("proxyCert", self.cert_pem)) if v}
        protected = {k: v for k, v in (("httpsProxy", self.https), ("httpProxy", self.http)) if v}
        entry: dict[str, Any] = {"feature": PROXY_FEATURE, "settings": settings}
        if protected:
            entry["protectedSettings"] = protected
        return entry


def _proxy_url(flag: str, value: str | None) -> str | None:
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(
            f"argument {flag}: '{_redacted(value)}' must be a URL with its scheme, as http://proxy.example:3128 "
            "(credentials as http://user:password@proxy.example:3128)."
        )
    try:
        parts.port  # noqa: B018 - a port that is not a number raises here
    except ValueError:
        raise UsageError(f"argument {flag}: '{_redacted(value)}' has a port that is not a number.") from None
    return value


def _redacted(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


def proxy_settings(https: str | None, http: str | None, skip_range: str | None, cert: Path | None) -> ProxySettings:
    """The proxy flags checked, each failure one usage error naming its flag."""
    pem = None
    if cert is not None:
        try:
            pem = cert.expanduser().read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"argument --proxy-cert: cannot read '{cert}': {exc.__class__.__name__}.") from None
        if "-----BEGIN CERTIFICATE-----" not in pem:
            raise UsageError(f"argument --proxy-cert: '{cert}' holds no PEM certificate.")
    if skip_range is not None:
        entries = [e.strip() for e in skip_range.split(",")]
        if not all(entries):
            raise UsageError("argument --proxy-skip-range: an empty entry; give CIDRs, hosts and .domain suffixes.")
    return ProxySettings(_proxy_url("--proxy-https", https), _proxy_url("--proxy-http", http), skip_range, pem)


def with_proxy(cluster: dict[str, Any], proxy: ProxySettings | None) -> dict[str, Any]:
    """The cluster body with its proxy configuration replaced (None: removed), for a PUT."""
    properties = cluster.setdefault("properties", {})
    configs = [c for c in properties.get("arcAgentryConfigurations") or [] if c.get("feature") != PROXY_FEATURE]
    if proxy is not None and not proxy.empty:
        configs.append(proxy.configuration())
    properties["arcAgentryConfigurations"] = configs
    return cluster
