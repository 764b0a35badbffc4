"""The hostile-input fuzz layer (issue 11): every route of ``/openapi.json``, and the agent routes with valid agent
credentials, get the values that broke Halyard once (lone surrogates, NULs, huge strings, huge numbers, deep arrays,
many keys) in every field their schema names, in every path parameter, in their queries and headers. Then:

- no answer is a 5xx;
- nothing stored breaks a later read: every list and every seeded resource still answers 200 with JSON;
- memory stays bounded, oversized bodies included.

It is driven by the OpenAPI document, not by a list of routes: a resource type added tomorrow is fuzzed the day it
is added. Known-valid bodies (:data:`SEEDS`) make mutations reach the store instead of stopping at a missing field;
a route without one is fuzzed from its schema alone.
"""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import re
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.api.agentcreds import Agent, connect, onboarding_key_b64
from tests.api.helpers import READER
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e

GROUP = "fuzz"
CLUSTER = "fuzz-cc"
SENTINEL = "__HOSTILE__"
# Raw JSON text substituted for the sentinel: what a hostile client writes, not what json.dumps would.
HOSTILE_JSON = {
    "lone-surrogate": '"\\ud800"',
    "low-surrogate": '"x\\udfff"',
    "nul": '"a\\u0000b"',
    "huge-string": json.dumps("x" * 100_000),
    "huge-integer": "9" * 5000,
    "huge-float": "1e400",
    "negative": "-1",
    "deep-array": "[" * 5000 + "]" * 5000,
    "many-keys": json.dumps({f"k{i}": "v" for i in range(5000)}),
    "long-list": json.dumps(["x"] * 5000),
}
HOSTILE_SEGMENTS = {
    "long": "a" * 5000,
    "utf8-surrogate": "%ED%A0%80",
    "nul": "%00",
    "dots": "%2E%2E",
    "unicode": quote("ü\u202e"),
}
# Raw query strings (percent-encoded as sent: a surrogate's CESU bytes, which no client library would write).
HOSTILE_QUERIES = {
    "$filter=surrogate": "%24filter=tagName%20eq%20%27%ED%B2%80%27",
    "$filter=deep": "%24filter=" + "(" * 5000,
    "$top=huge": "%24top=" + "9" * 5000,
    "$skipToken=surrogate": "%24skipToken=%ED%A0%80%ED%A0%80",
    "$expand=long": "%24expand=" + "x" * 10_000,
    "api-version=surrogate": "api-version=%ED%A0%80",
}


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    # Thousands of refused requests from one address, many the first on a new connection:
    # the penalty that limits such an address's new connections (tests/api/test_connection_limits.py) is off here,
    # where what is measured is each answer.
    proc = ServerProcess(
        tmp_path_factory.mktemp("hostile-fuzz") / "data", free_port(), extra_args=["--refused-connection-penalty", "0"]
    ).start()
    yield proc
    proc.stop()


def _seeds(server: ServerProcess, agent: Agent, principal_id: str) -> dict[str, Any]:
    """Known-valid bodies, per operation id: mutations of them reach the handlers and the store."""
    return {
        "ResourceGroups_CreateOrUpdate": {"location": "eastus", "tags": {"a": "b"}, "managedBy": "m"},
        "ResourceGroups_Update": {"tags": {"a": "b"}, "managedBy": "m"},
        "connectedClusters_Put": {
            "location": "eastus",
            "identity": {"type": "SystemAssigned"},
            "tags": {"a": "b"},
            "properties": {"agentPublicKeyCertificate": onboarding_key_b64(agent.onboarding_key)},
        },
        "connectedClusters_Update": {"tags": {"a": "b"}, "properties": {"distribution": "k3s"}},
        "RoleAssignments_Create": {"properties": {"roleDefinitionId": READER, "principalId": principal_id}},
        "ServicePrincipals_Create": {"displayName": "fuzz"},
        "Dp_Heartbeat": {
            "agentVersion": "1.0.0",
            "totalNodeCount": 1,
            "agentErrors": [{"message": "m", "component": "c", "time": "2026-01-01T00:00:00Z"}],
        },
        "connectedClusters_ListClusterUserCredential": {"authenticationMethod": "Token"},
        "Dp_CheckAccess": {
            "user": principal_id,
            "groups": [principal_id],
            "resourceAttributes": {"namespace": "default", "verb": "get", "resource": "pods", "name": "p"},
        },
        "gateways_Put": {"location": "eastus", "tags": {"a": "b"}, "properties": {"allowedFeatures": ["*"]}},
        "gateways_Update": {"tags": {"a": "b"}, "properties": {"allowedFeatures": ["cluster-connect"]}},
        "settings_Put": {"properties": {"gatewayProperties": {"gatewayResourceId": None}}},
        "settings_Update": {"properties": {"gatewayProperties": {"gatewayResourceId": None}}},
    }


class Spec:
    """The OpenAPI document, with ``$ref`` resolved and a full body (every property, optional ones too) per schema."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            node: Any = self.doc
            for part in schema["$ref"].lstrip("#/").split("/"):
                node = node[part]
            schema = node
        for key in ("anyOf", "oneOf", "allOf"):
            if key in schema:
                options = [o for o in schema[key] if self.resolve(o).get("type") != "null"]
                if options:
                    return self.resolve(options[0])
        return schema

    def example(self, schema: dict[str, Any], depth: int = 0) -> Any:
        schema = self.resolve(schema)
        if "enum" in schema:
            return schema["enum"][0]
        if "const" in schema:
            return schema["const"]
        kind = schema.get("type")
        if schema.get("format") == "date-time":
            return "2026-01-01T00:00:00Z"
        if kind == "object" or "properties" in schema:
            if depth > 6:
                return {}
            props = schema.get("properties", {})
            if not props and schema.get("additionalProperties"):
                return {"k": self.example(schema["additionalProperties"], depth + 1)}
            return {name: self.example(sub, depth + 1) for name, sub in props.items()}
        if kind == "array":
            return [self.example(schema.get("items", {}), depth + 1)] if depth <= 6 else []
        return {"integer": 1, "number": 1.5, "boolean": True}.get(str(kind), "x")


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a body a value may go: each key's value, each container itself."""
    if path:
        yield path
    if isinstance(value, dict):
        for key, sub in value.items():
            yield from _leaves(sub, (*path, key))
    elif isinstance(value, list) and value:
        yield from _leaves(value[0], (*path, 0))


def _with_sentinel(seed: Any, path: tuple[Any, ...]) -> str:
    """``seed`` with the sentinel at ``path``: every other field as the valid seed has it (containers the seed lacks
    are created empty), so the one hostile value is what the handler meets."""
    copy = json.loads(json.dumps(seed)) if isinstance(seed, dict) else {}
    node = copy
    for step, after in itertools.pairwise(path):
        fresh: Any = [{}] if isinstance(after, int) else {}
        if isinstance(node, list):
            node = node[0]
        if not isinstance(node.get(step), (dict, list)) or (isinstance(node.get(step), list) and not node[step]):
            node[step] = fresh
        node = node[step]
    if isinstance(node, list):
        node = node[0] if node and isinstance(node[0], dict) else node
    if isinstance(node, dict):
        node[path[-1]] = SENTINEL
    return json.dumps(copy)


def _bodies(spec: Spec, operation: dict[str, Any], seed: Any) -> Iterator[tuple[str, bytes]]:
    schema = operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
    if schema is None:
        return
    for name, raw in HOSTILE_JSON.items():
        yield f"body={name}", raw.encode()
    full = spec.example(schema)
    if not isinstance(full, dict):
        return
    base = seed if seed is not None else full
    for path in _leaves(full):
        template = _with_sentinel(base, path)
        for name, raw in HOSTILE_JSON.items():
            yield f"{'.'.join(map(str, path))}={name}", template.replace(json.dumps(SENTINEL), raw).encode()


class Fuzzer:
    def __init__(self, server: ServerProcess, agent: Agent, principal: dict[str, str]) -> None:
        self.server = server
        self.agent = agent
        self.admin = {"Authorization": f"Bearer {server.token()}"}
        self.http = httpx.Client(base_url=server.url, verify=server.ca, timeout=60)
        self.failures: list[str] = []
        self.sent = 0
        sub = server.admin["subscription"]
        self.shared_reads: list[tuple[str, dict[str, str]]] = [
            (f"/subscriptions/{sub}/resourceGroups", {"api-version": "2024-11-01"}),
            (f"/subscriptions/{sub}/resources", {"api-version": "2024-11-01"}),
            (f"/subscriptions/{sub}/providers/Microsoft.Kubernetes/connectedClusters", {"api-version": "2026-05-01"}),
        ]
        self.values = {
            "subscriptionId": sub,
            "resourceGroupName": GROUP,
            "resourceName": CLUSTER,
            "tenant": server.admin["tenant"],
            "scope": f"subscriptions/{sub}/resourceGroups/{GROUP}",
            "roleDefinitionId": READER,
            "providerNamespace": "Microsoft.Kubernetes",
            "resourceProviderNamespace": "Microsoft.Kubernetes",
            "location": "eastus",
            "operationId": str(uuid.uuid4()),
            "appId": principal["appId"],
        }

    def send(self, label: str, method: str, url: str, **kwargs: Any) -> httpx.Response | None:
        self.sent += 1
        try:
            r = self.http.request(method, url, **kwargs)
        except httpx.HTTPError as exc:  # the server dropped the connection: as bad as a 5xx
            self.failures.append(f"{label}: {method} {url[:120]} -> {type(exc).__name__}")
            return None
        if r.status_code >= 500:
            self.failures.append(f"{label}: {method} {url[:120]} -> {r.status_code} {r.text[:200]}")
        if method in ("PUT", "PATCH", "POST") and (r.status_code < 300 or r.status_code >= 500):
            # Whatever a write stored must not break a read, now: a later write could overwrite it.
            own = [(url, kwargs.get("params"))] if method in ("PUT", "PATCH") and not url.startswith("/dp/") else []
            for read, params in [*own, *self.shared_reads]:
                try:
                    after = self.http.get(read, params=params, headers=self.admin)
                except httpx.HTTPError as exc:
                    self.failures.append(f"after {label}: GET {read[:120]} -> {type(exc).__name__}")
                    continue
                if after.status_code >= 500 or (after.status_code == 200 and not _is_json(after)):
                    self.failures.append(f"after {label}: GET {read[:120]} -> {after.status_code}")
        return r

    def fill(self, path: str, override: tuple[str, str] | None = None) -> str:
        def value(match: re.Match[str]) -> str:
            name = match.group(1)
            if override and override[0] == name:
                return override[1]
            if name == "roleAssignmentName":
                return str(uuid.uuid4())
            return self.values.get(name, "x1")

        return re.sub(r"\{(\w+)(?::path)?\}", value, path)

    def headers(self, path: str) -> dict[str, str]:
        return {**self.agent.headers} if path.startswith("/dp/") else {**self.admin}


def _is_json(response: httpx.Response) -> bool:
    try:
        response.json()
    except ValueError:
        return False
    return True


def _api_version(operation: dict[str, Any]) -> dict[str, str]:
    for param in operation.get("parameters", []):
        if param["name"] == "api-version":
            versions = param.get("schema", {}).get("enum") or ["2024-11-01"]
            return {"api-version": versions[-1]}
    return {}


def _memory_mb(pid: int) -> dict[str, float]:
    status = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
    return {k: int(status[k].split()[0]) / 1024 for k in ("VmRSS", "VmHWM")}


def test_hostile_values_everywhere_no_5xx_nothing_stored_breaks_a_read_memory_bounded(target: ServerProcess) -> None:
    assert target.proc is not None
    with target.client() as c:
        r = c.put(f"/subscriptions/{target.admin['subscription']}/resourceGroups/{GROUP}",
                  params={"api-version": "2024-11-01"}, json={"location": "eastus"})  # fmt: skip
        assert r.status_code in (200, 201), r.text
        r = c.post("/providers/Halyard.Directory/servicePrincipals", params={"api-version": "2026-01-01"},
                   json={"displayName": "fuzz-target"})  # fmt: skip
        principal = r.json()
    agent = connect(target, GROUP, CLUSTER, agents_started=True)  # its configuration writes reach the pipeline
    doc = httpx.get(f"{target.url}/openapi.json", verify=target.ca).json()
    spec = Spec(doc)
    seeds = _seeds(target, agent, principal["id"])
    fuzz = Fuzzer(target, agent, principal)
    memory_before = _memory_mb(target.proc.pid)

    for path, operations in doc["paths"].items():
        for method, operation in operations.items():
            if method not in ("get", "put", "post", "patch", "delete", "head"):
                continue
            op_id = operation.get("operationId", f"{method} {path}")
            params = _api_version(operation)
            headers = fuzz.headers(path)
            has_body = "requestBody" in operation
            json_body = "application/json" in operation.get("requestBody", {}).get("content", {})
            seed = seeds.get(op_id)
            # Reads and writes with a body run on the real resources; bodiless writes (deletes, unregister,
            # resetCredential) only with hostile path segments, so the seeded resources stay for the checks below.
            safe = method in ("get", "head") or has_body
            names = [n for n in re.findall(r"\{(\w+)(?::path)?\}", path)]
            for name in names:
                for label, segment in HOSTILE_SEGMENTS.items():
                    url = fuzz.fill(path, (name, segment))
                    body = json.dumps(seed).encode() if seed is not None else b"{}" if json_body else None
                    fuzz.send(f"{op_id} {name}={label}", method.upper(), url, params=params,
                              content=body, headers={**headers, "Content-Type": "application/json"})  # fmt: skip
            if not safe:
                continue
            url = fuzz.fill(path)
            if method == "get":
                version = "&".join(f"{k}={v}" for k, v in params.items())
                for label, query in HOSTILE_QUERIES.items():
                    fuzz.send(f"{op_id} {label}", "GET", f"{url}?{version}&{query}", headers=headers)
            if any(p["name"] == "If-Match" for p in operation.get("parameters", [])):
                big = {"If-Match": '"' + "x" * 10_000 + '"', "If-None-Match": "\x7f"}
                fuzz.send(f"{op_id} If-Match", method.upper(), url, params=params, headers={**headers, **big},
                          content=json.dumps(seed).encode() if seed is not None else None)  # fmt: skip
            if json_body:
                for label, body in _bodies(spec, operation, seed):
                    fuzz.send(f"{op_id} {label}", method.upper(), fuzz.fill(path), params=params, content=body,
                              headers={**headers, "Content-Type": "application/json"})  # fmt: skip
            elif has_body:  # the token endpoint's form
                for label, raw in HOSTILE_SEGMENTS.items():
                    form = f"grant_type=client_credentials&client_id={raw}&client_secret={raw}&scope={raw}"
                    fuzz.send(f"{op_id} form={label}", "POST", url, content=form.encode(),
                              headers={"Content-Type": "application/x-www-form-urlencoded"})  # fmt: skip

    # Oversized bodies, several at once and before authentication: refused, and memory stays put.
    def oversized(_: int) -> int:
        with httpx.Client(base_url=target.url, verify=target.ca, timeout=60) as c:
            r = c.put(f"/subscriptions/{target.admin['subscription']}/resourceGroups/big",
                      params={"api-version": "2024-11-01"}, content=b"x" * (32 * 1024 * 1024),
                      headers={"Content-Type": "application/json"})  # fmt: skip
            return r.status_code

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = set(pool.map(oversized, range(8)))
    if statuses != {413}:
        fuzz.failures.append(f"32 MiB bodies without a token -> {sorted(statuses)}, not 413")
    memory_after = _memory_mb(target.proc.pid)

    # Whatever was accepted was stored as valid text: every reader still gets 200 and JSON.
    sub = target.admin["subscription"]
    reads = [
        f"/subscriptions/{sub}/resourceGroups?api-version=2024-11-01",
        f"/subscriptions/{sub}/resourceGroups/{GROUP}?api-version=2024-11-01",
        f"/subscriptions/{sub}/resources?api-version=2024-11-01",
        f"/subscriptions/{sub}/resourceGroups/{GROUP}/resources?api-version=2024-11-01",
        f"/subscriptions/{sub}/providers/Microsoft.Kubernetes/connectedClusters?api-version=2026-05-01",
        f"{agent.path}?api-version=2026-05-01",
        "/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
        f"/subscriptions/{sub}/providers/Microsoft.Authorization/roleAssignments?api-version=2022-04-01",
        "/providers/Halyard.Directory/servicePrincipals?api-version=2026-01-01",
        f"/subscriptions/{sub}/providers?api-version=2024-11-01",
    ]
    for read in reads:
        r = fuzz.http.get(read, headers=fuzz.admin)
        if r.status_code != 200:
            fuzz.failures.append(f"after fuzzing: GET {read} -> {r.status_code} {r.text[:200]}")
        else:
            r.json()
    beat = fuzz.http.post("/dp/v1/heartbeat", json=seeds["Dp_Heartbeat"], headers=agent.headers)
    if beat.status_code != 200:
        fuzz.failures.append(f"after fuzzing: an honest heartbeat -> {beat.status_code} {beat.text[:200]}")
    fuzz.http.close()

    assert fuzz.sent > 1000, fuzz.sent  # the document was walked, not skipped
    assert not fuzz.failures, "\n".join(fuzz.failures[:40]) + f"\n({len(fuzz.failures)} of {fuzz.sent})"
    growth = memory_after["VmHWM"] - memory_before["VmRSS"]
    assert growth < 200, f"peak memory grew {growth:.0f} MiB under hostile input ({memory_before} -> {memory_after})"
