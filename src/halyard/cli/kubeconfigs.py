"""Kubeconfig files as ``az connectedk8s proxy`` and ``az aks get-credentials`` write them: a new cluster, user and
context merged into an existing file (other entries kept, same-named ones replaced, the new context made current),
or printed for ``-f -``. The merge is pure; reading and writing are the two functions at the end."""

from __future__ import annotations

import base64
import copy
import os
from pathlib import Path
from typing import Any

import yaml

from halyard.cli.errors import CliError
from halyard.core.files import write_private

SECTIONS = ("clusters", "users", "contexts")
STDOUT = "-"


def empty() -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [],
        "users": [],
        "contexts": [],
        "current-context": "",
    }


def single(
    *, context: str, cluster: str, server: str, ca_pem: bytes | None, user: str, credentials: dict[str, Any]
) -> dict[str, Any]:
    """A kubeconfig of one cluster, one user and one context (made current)."""
    cluster_entry: dict[str, Any] = {"server": server}
    if ca_pem:
        cluster_entry["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    config = empty()
    config["clusters"] = [{"name": cluster, "cluster": cluster_entry}]
    config["users"] = [{"name": user, "user": dict(credentials)}]
    config["contexts"] = [{"name": context, "context": {"cluster": cluster, "user": user}}]
    config["current-context"] = context
    return config


def parse(text: str, origin: str) -> dict[str, Any]:
    """A kubeconfig document (``origin`` names it in errors)."""
    try:
        data = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError as exc:
        raise CliError(f"{origin} is not a valid kubeconfig: {exc}.", "InvalidKubeconfig") from None
    if data is None:
        return empty()
    if not isinstance(data, dict) or any(not isinstance(data.get(s) or [], list) for s in SECTIONS):
        raise CliError(f"{origin} is not a valid kubeconfig (not a Config document).", "InvalidKubeconfig")
    return data


def with_token(config: dict[str, Any], token: str) -> dict[str, Any]:
    """The kubeconfig with ``token`` as every user's credential (``--token``: a service-account token), in place of
    whatever the user entries held (an exec plugin, say), as az's insert_token_in_kubeconfig does."""
    result = copy.deepcopy(config)
    for entry in result.get("users") or []:
        entry["user"] = {"token": token}
    return result


def rename_context(config: dict[str, Any], name: str) -> dict[str, Any]:
    """The kubeconfig with its current context named ``name`` (``--context``/``--kube-context``)."""
    result = copy.deepcopy(config)
    current = result.get("current-context") or ((result.get("contexts") or [{}])[0].get("name"))
    for entry in result.get("contexts") or []:
        if entry.get("name") == current:
            entry["name"] = name
    result["current-context"] = name
    return result


def merge(existing: dict[str, Any], addition: dict[str, Any]) -> dict[str, Any]:
    """``existing`` with every cluster, user and context of ``addition`` (same-named entries replaced, the others
    kept in their order) and ``addition``'s current context made current."""
    result = copy.deepcopy(existing)
    for section in SECTIONS:
        new = [copy.deepcopy(e) for e in addition.get(section) or []]
        names = {e.get("name") for e in new}
        result[section] = [e for e in result.get(section) or [] if e.get("name") not in names] + new
    if addition.get("current-context"):
        result["current-context"] = addition["current-context"]
    result.setdefault("apiVersion", "v1")
    result.setdefault("kind", "Config")
    return result


def dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, default_flow_style=False, sort_keys=False)


def default_path() -> Path:
    """``~/.kube/config``, as az's ``--file`` default (not $KUBECONFIG: az does not read it either)."""
    return Path.home() / ".kube" / "config"


def merge_into_file(path: Path, addition: dict[str, Any]) -> None:
    """Merge ``addition`` into the kubeconfig at ``path`` (created if missing), written atomically and owner-only."""
    path = path.expanduser()
    try:
        text = path.read_text() if path.exists() else ""
    except OSError as exc:
        raise CliError(f"Cannot read {path}: {exc.strerror or exc}.", "KubeconfigError") from None
    merged = merge(parse(text, str(path)), addition)
    try:
        if not path.parent.exists():
            os.makedirs(path.parent, mode=0o700, exist_ok=True)
        write_private(path, dump(merged).encode())
    except OSError as exc:
        raise CliError(f"Cannot write {path}: {exc.strerror or exc}.", "KubeconfigError") from None
