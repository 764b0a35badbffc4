"""The rules of a Flux configuration, and what a cluster is told to run for one: pure, no I/O.

``checked`` is what a PUT or PATCH must satisfy beyond the models (one source matching ``sourceKind``, a URL whose
scheme Flux can fetch, one repository reference, kustomization names that make valid object names, ``dependsOn``
naming kustomizations of the same configuration without a cycle, credentials that fit the URL), and fills the
defaults Arc fills. ``engine_entry`` turns a stored configuration (a fluxConfiguration, or a sourceControlConfiguration
translated into one GitRepository and one Kustomization) into the one shape config-agent reads: every object name
decided here, so the agent and the control plane can never disagree on them.
"""

from __future__ import annotations

import base64
import binascii
import copy
import re
import shlex
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from halyard.core.errors import InvalidRequest

CONFIG_NAME = re.compile(r"^[a-z0-9]([a-z0-9.-]{0,28}[a-z0-9])?$")
CONFIG_NAME_RULE = "1-30 lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
KUSTOMIZATION_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,28}[a-z0-9])?$")
NAMESPACE_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
MAX_OBJECT_NAME = 63  # `<config>-<kustomization>` is also a label value
DEFAULT_NAMESPACE = "default"
DEFAULT_INTERVAL = 600
DEFAULT_TIMEOUT = 600
SOURCES = {"GitRepository": "gitRepository", "Bucket": "bucket", "OCIRepository": "ociRepository"}
GIT_SCHEMES = ("http", "https", "ssh", "file")  # file://: local repositories (the simulator's source controller)
BASE64_SETTINGS = ("sshPrivateKey", "httpsKey", "bucketSecretKey", "sshKnownHosts")
SCP_LIKE = re.compile(r"^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[^/].*$")  # git@github.com:org/repo


def _bad(message: str, target: str, code: str = "InvalidFluxConfiguration") -> InvalidRequest:
    return InvalidRequest(message, code=code, target=target)


def checked(
    props: dict[str, Any], name: str, protected: Mapping[str, str], old: Mapping[str, Any] | None
) -> dict[str, Any]:
    """The configuration as stored (defaults filled), or the 400 naming the first rule broken."""
    props = copy.deepcopy(props)
    scope = props.setdefault("scope", "cluster")
    namespace = props.setdefault("namespace", DEFAULT_NAMESPACE)
    if not NAMESPACE_NAME.match(namespace):
        raise _bad(f"properties.namespace '{namespace}' is not a valid namespace name.", "properties.namespace")
    if old is not None:
        for key in ("scope", "namespace"):
            if old.get(key) is not None and old.get(key) != props[key]:
                raise _bad(
                    f"properties.{key} cannot change; delete the configuration and create it again.",
                    f"properties.{key}",
                    "PropertyChangeNotAllowed",
                )
    if scope not in ("cluster", "namespace"):
        raise _bad("properties.scope is 'cluster' or 'namespace'.", "properties.scope")
    props.setdefault("suspend", False)
    if props.get("azureBlob") is not None or props.get("sourceKind") == "AzureBlob":
        raise _bad(
            "AzureBlob sources need Azure storage, which this control plane does not offer; use a Bucket "
            "(S3-compatible) or a GitRepository.",
            "properties.sourceKind",
        )
    given = [kind for kind, key in SOURCES.items() if props.get(key) is not None]
    kind = props.get("sourceKind") or (given[0] if len(given) == 1 else "GitRepository")
    props["sourceKind"] = kind
    key = SOURCES[kind]
    if props.get(key) is None:
        raise _bad(
            f"A {kind} source needs properties.{key} (with at least its url).", f"properties.{key}", "MissingSource"
        )
    for other_kind, other in SOURCES.items():
        if other_kind != kind and props.get(other) is not None:
            raise _bad(
                f"properties.{other} is given but properties.sourceKind is {kind}: a configuration has one source.",
                f"properties.{other}",
            )
    source = props[key]
    source.setdefault("syncIntervalInSeconds", DEFAULT_INTERVAL)
    source.setdefault("timeoutInSeconds", DEFAULT_TIMEOUT)
    if kind == "GitRepository":
        _check_git(source, protected)
    elif kind == "Bucket":
        _check_bucket(source, protected)
    else:
        _check_oci(source)
    for setting in BASE64_SETTINGS:
        value = protected.get(setting)
        if value is not None and not _is_base64(value):
            raise _bad(
                f"configurationProtectedSettings.{setting} must be base64-encoded (as the CLI sends it).",
                f"properties.configurationProtectedSettings.{setting}",
            )
    props["kustomizations"] = _kustomizations(props.get("kustomizations") or {}, name)
    return props


def _check_git(source: dict[str, Any], protected: Mapping[str, str]) -> None:
    url = source.get("url") or ""
    scheme = _scheme(url)
    if scheme not in GIT_SCHEMES:
        raise _bad(
            f"properties.gitRepository.url '{url}' is not a git URL Flux can fetch: use http://, https://, ssh:// "
            "(or git@host:path), or file:// for a repository on the cluster's nodes.",
            "properties.gitRepository.url",
            "InvalidUrl",
        )
    ref = source.get("repositoryRef") or {}
    chosen = [k for k in ("branch", "tag", "semver", "commit") if ref.get(k)]
    if not chosen:
        raise _bad(
            "properties.gitRepository.repositoryRef needs one of branch, tag, semver or commit.",
            "properties.gitRepository.repositoryRef",
        )
    if len([k for k in chosen if k != "commit"]) > 1:
        raise _bad(
            "properties.gitRepository.repositoryRef names one of branch, tag or semver (a commit may go with a "
            "branch).",
            "properties.gitRepository.repositoryRef",
        )
    if ref.get("commit") and not re.fullmatch(r"[0-9a-f]{7,64}", ref["commit"]):
        raise _bad(
            "properties.gitRepository.repositoryRef.commit is a hexadecimal commit id.",
            "properties.gitRepository.repositoryRef.commit",
        )
    https = source.get("httpsUser") or protected.get("httpsKey")
    if https and scheme not in ("http", "https"):
        raise _bad(
            "httpsUser and the httpsKey protected setting apply to http(s) URLs only.", "properties.gitRepository"
        )
    if bool(source.get("httpsUser")) != bool(protected.get("httpsKey")):
        raise _bad(
            "httpsUser and the httpsKey protected setting go together (user name and key or token).",
            "properties.gitRepository.httpsUser",
        )
    if protected.get("sshPrivateKey") and scheme != "ssh":
        raise _bad("The sshPrivateKey protected setting applies to ssh URLs only.", "properties.gitRepository.url")
    if source.get("localAuthRef") and (https or protected.get("sshPrivateKey")):
        raise _bad(
            "localAuthRef names a Secret of the cluster's own: give it or inline credentials, not both.",
            "properties.gitRepository.localAuthRef",
        )


def _check_bucket(source: dict[str, Any], protected: Mapping[str, str]) -> None:
    url = source.get("url") or ""
    if _scheme(url) not in ("http", "https"):
        raise _bad(
            f"properties.bucket.url '{url}' must be an http:// or https:// endpoint of an S3-compatible store.",
            "properties.bucket.url",
            "InvalidUrl",
        )
    if not source.get("bucketName"):
        raise _bad("properties.bucket.bucketName is required.", "properties.bucket.bucketName")
    if bool(source.get("accessKey")) != bool(protected.get("bucketSecretKey")):
        raise _bad(
            "properties.bucket.accessKey and the bucketSecretKey protected setting go together.",
            "properties.bucket.accessKey",
        )


def _check_oci(source: dict[str, Any]) -> None:
    url = source.get("url") or ""
    if _scheme(url) != "oci":
        raise _bad(
            f"properties.ociRepository.url '{url}' must be an oci:// URL.", "properties.ociRepository.url", "InvalidUrl"
        )
    ref = source.get("repositoryRef") or {}
    if len([k for k in ("tag", "semver", "digest") if ref.get(k)]) > 1:
        raise _bad(
            "properties.ociRepository.repositoryRef names one of tag, semver or digest.",
            "properties.ociRepository.repositoryRef",
        )


def _scheme(url: str) -> str:
    if SCP_LIKE.match(url):
        return "ssh"
    try:
        parts = urlsplit(url)
    except ValueError:
        return ""
    if parts.scheme == "file":
        return "file" if parts.path else ""
    return parts.scheme.lower() if parts.netloc else ""


def _is_base64(value: str) -> bool:
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _kustomizations(given: Mapping[str, Any], config: str) -> dict[str, dict[str, Any]]:
    result: dict[str, dict[str, Any]] = {}
    for name, spec in given.items():
        target = f"properties.kustomizations.{name}"
        if not KUSTOMIZATION_NAME.match(name):
            raise _bad(
                f"Kustomization name '{name}' is invalid: 1-30 lower-case letters, digits and '-', starting and "
                "ending with a letter or digit.",
                target,
                "InvalidKustomizationName",
            )
        if len(f"{config}-{name}") > MAX_OBJECT_NAME:
            raise _bad(
                f"'{config}-{name}' (the Kustomization object's name) is longer than {MAX_OBJECT_NAME} characters.",
                target,
                "InvalidKustomizationName",
            )
        k = dict(spec or {})
        path = k.get("path") or ""
        if path.startswith("/") or ".." in path.split("/"):
            raise _bad(f"{target}.path must be relative to the source's root, without '..'.", f"{target}.path")
        k["path"] = path
        k.setdefault("dependsOn", [])
        k.setdefault("syncIntervalInSeconds", DEFAULT_INTERVAL)
        k.setdefault("timeoutInSeconds", DEFAULT_TIMEOUT)
        k.setdefault("prune", False)
        k.setdefault("force", False)
        k.setdefault("wait", True)
        k["name"] = name
        result[name] = k
    for name, k in result.items():
        for dep in k["dependsOn"]:
            if dep not in result:
                raise _bad(
                    f"Kustomization '{name}' depends on '{dep}', which is not a kustomization of this configuration "
                    f"(it has: {', '.join(sorted(result))}).",
                    f"properties.kustomizations.{name}.dependsOn",
                    "InvalidDependsOn",
                )
    cycle = _cycle({n: k["dependsOn"] for n, k in result.items()})
    if cycle:
        raise _bad(
            f"The kustomizations' dependsOn form a cycle: {' -> '.join(cycle)}.",
            "properties.kustomizations",
            "InvalidDependsOn",
        )
    return result


def _cycle(graph: Mapping[str, list[str]]) -> list[str]:
    """A dependency cycle (its names, the first repeated at the end), or an empty list."""
    state: dict[str, int] = {}  # 1 visiting, 2 done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for dep in graph.get(node, []):
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return []


def merge_patch(stored: dict[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """A fluxConfigurations PATCH onto the stored properties: objects merge (a null removes a key, a null
    kustomization removes it), anything else replaces."""
    result = copy.deepcopy(stored)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge_patch(result[key], value)
        else:
            result[key] = copy.deepcopy(value)
    return result


# ---- what the cluster runs ---------------------------------------------------------------------------------------


def engine_entry(
    kind: str, name: str, resource_id: str, generation: str, props: Mapping[str, Any], protected: Mapping[str, str]
) -> dict[str, Any]:
    """One configuration as config-agent reads it (``kind``: fluxConfiguration or sourceControlConfiguration)."""
    if kind == "sourceControlConfiguration":
        props = from_source_control(props)
    source_kind = props["sourceKind"]
    return {
        "kind": kind,
        "name": name,
        "id": resource_id,
        "generation": generation,
        "namespace": props["namespace"],
        "scope": props["scope"],
        "suspend": bool(props.get("suspend")),
        "sourceKind": source_kind,
        "source": copy.deepcopy(props[SOURCES[source_kind]]),
        "sourceName": name,
        "kustomizations": [
            {**copy.deepcopy(k), "objectName": name if kind == "sourceControlConfiguration" else f"{name}-{k['name']}"}
            for k in props["kustomizations"].values()
        ],
        "configurationProtectedSettings": dict(protected),
    }


def from_source_control(props: Mapping[str, Any]) -> dict[str, Any]:
    """A sourceControlConfiguration (Flux v1: a repository, a branch and a path in ``operatorParams``) as the
    one GitRepository and one Kustomization that do the same on Flux v2; the Kustomization bears the
    configuration's own name, as the one Flux v1 operator instance did."""
    params = _operator_params(props.get("operatorParams") or "")
    namespace = props.get("operatorNamespace") or DEFAULT_NAMESPACE
    return {
        "scope": props.get("operatorScope") or "namespace",
        "namespace": namespace,
        "sourceKind": "GitRepository",
        "suspend": False,
        "gitRepository": {
            "url": props["repositoryUrl"],
            "repositoryRef": {"branch": params.get("git-branch", "master")},
            "syncIntervalInSeconds": DEFAULT_INTERVAL,
            "timeoutInSeconds": DEFAULT_TIMEOUT,
            **({"sshKnownHosts": props["sshKnownHostsContents"]} if props.get("sshKnownHostsContents") else {}),
        },
        "kustomizations": {
            "sync": {
                "name": "sync",
                "path": params.get("git-path", "").strip("/"),
                "dependsOn": [],
                "prune": True,
                "force": False,
                "wait": False,
                "syncIntervalInSeconds": DEFAULT_INTERVAL,
                "timeoutInSeconds": DEFAULT_TIMEOUT,
            }
        },
    }


def _operator_params(text: str) -> dict[str, str]:
    """``--git-branch=main --git-path=apps`` (Flux v1's operator flags) as a mapping; unknown flags are ignored."""
    try:
        words = shlex.split(text)
    except ValueError:
        words = text.split()
    result = {}
    for word in words:
        if word.startswith("--") and "=" in word:
            key, value = word[2:].split("=", 1)
            result[key] = value
    return result


def check_source_control(props: Mapping[str, Any]) -> None:
    """The older API's few rules: a git URL, a namespace name, known credentials."""
    url = props.get("repositoryUrl") or ""
    if _scheme(url) not in GIT_SCHEMES:
        raise _bad(
            f"properties.repositoryUrl '{url}' is not a git URL Flux can fetch (http, https, ssh, git@host:path, "
            "file).",
            "properties.repositoryUrl",
            "InvalidUrl",
        )
    namespace = props.get("operatorNamespace") or DEFAULT_NAMESPACE
    if not NAMESPACE_NAME.match(namespace):
        raise _bad(
            f"properties.operatorNamespace '{namespace}' is not a valid namespace name.",
            "properties.operatorNamespace",
        )
    if props.get("enableHelmOperator"):
        raise _bad(
            "The Flux v1 Helm operator is not offered: create a fluxConfiguration with a HelmRelease in its "
            "repository instead.",
            "properties.enableHelmOperator",
            "NotSupported",
        )
