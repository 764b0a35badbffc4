"""Connecting to a cluster with lightkube: a kubeconfig file and context, or the in-cluster service account."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lightkube import AsyncClient, KubeConfig
from lightkube.config.kubeconfig import SingleConfig
from lightkube.core.exceptions import ApiError
from lightkube.resources.core_v1 import ConfigMap, Secret

FIELD_MANAGER = "halyard"


class KubeConfigError(Exception):
    """The kubeconfig cannot be used (missing file, bad YAML, unknown context)."""


def load_config(
    kubeconfig: Path | None = None, context: str | None = None, *, in_cluster: bool = False
) -> SingleConfig:
    """The connection settings of ``context`` in ``kubeconfig`` (or $KUBECONFIG, ~/.kube/config), or the pod's
    service account with ``in_cluster``."""
    try:
        if in_cluster:
            config = KubeConfig.from_service_account()
        elif kubeconfig is not None:
            if not kubeconfig.exists():
                raise KubeConfigError(f"the kubeconfig {kubeconfig} does not exist")
            config = KubeConfig.from_file(str(kubeconfig))
        else:
            config = KubeConfig.from_env()
        single = config.get(context_name=context)
        if single is None:
            raise KubeConfigError("no context selected")
        return single
    except KubeConfigError:
        raise
    except Exception as exc:  # lightkube raises ConfigError, yaml errors, KeyError for unknown contexts
        where = str(kubeconfig) if kubeconfig else "the default kubeconfig"
        detail = f"context {context!r} not found" if isinstance(exc, KeyError) else str(exc) or type(exc).__name__
        raise KubeConfigError(f"cannot load {where}: {detail}") from exc


def connect(kubeconfig: Path | None = None, context: str | None = None, *, in_cluster: bool = False) -> AsyncClient:
    return AsyncClient(load_config(kubeconfig, context, in_cluster=in_cluster), field_manager=FIELD_MANAGER)


async def server_version(client: AsyncClient) -> dict[str, Any]:
    """``GET /version``. lightkube has no typed call for it, so this goes through its configured HTTP client (same
    server, TLS and credentials as every other request)."""
    http = client._client._client  # lightkube's private HTTP client: configured, authenticated, no public seam
    response = await http.get("version")
    response.raise_for_status()
    body: dict[str, Any] = response.json()
    return body


async def data_of(
    client: AsyncClient, kind: type[Secret] | type[ConfigMap], name: str, namespace: str
) -> dict[str, str] | None:
    """The ``data`` of a Secret or ConfigMap, None when there is none of that name."""
    try:
        found = await client.get(kind, name, namespace=namespace)
    except ApiError as exc:
        if exc.status.code == 404:
            return None
        raise
    return dict(found.data or {})
