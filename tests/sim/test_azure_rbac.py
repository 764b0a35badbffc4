"""azure-rbac end to end: a real control plane, a real simulator whose cluster asks guard, and guard asking the
control plane's access check with the cluster's agent token.

The simulator is driven the way the cluster-connect proxy will drive a cluster: its admin impersonating the
principal's object id (``Impersonate-User``), so the cluster's RBAC has no opinion and the webhook decides.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from halyard.agent.guard import Guard
from halyard.core.clock import ManualClock
from halyard.sim import webhookauthz
from tests.api.agentcreds import Agent, connect
from tests.api.helpers import AUTHZ_API, SP_API, make_group, make_principal, unique
from tests.sim.conftest import Sim, SimCluster, running_sim
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e
VIEWER = "63f0a09d-1495-4db4-a681-037d84835eb4"
WRITER = "5b999177-9696-4545-85c7-50de3797e5a1"
TTL = 20.0
POD = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"name": "p1"},
    "spec": {"containers": [{"name": "c", "image": "nginx"}]},
}


def _assign(server: ServerProcess, scope: str, role: str, principal_id: str) -> str:
    path = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
    with server.client() as c:
        r = c.put(path, params=AUTHZ_API, json={"properties": {"roleDefinitionId": role, "principalId": principal_id}})
        assert r.status_code == 201, r.text
    return path


def _unassign(server: ServerProcess, path: str) -> None:
    with server.client() as c:
        assert c.delete(path, params=AUTHZ_API).status_code == 200


@dataclass
class StaticToken:
    value: str

    async def token(self) -> str:
        return self.value

    def forget_token(self) -> None:
        pass


@pytest.fixture(scope="module")
def clusters(server: ServerProcess) -> tuple[Agent, Agent]:
    group = make_group(server)
    return connect(server, group, unique("cc")), connect(server, group, unique("cc"))


@pytest.fixture(scope="module")
def rbac_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    with running_sim(tmp_path_factory, "rbac-sim", 1, 0) as sim:
        yield sim


@dataclass
class Setup:
    guard: Guard
    clock: ManualClock
    cluster: SimCluster
    http: httpx.AsyncClient

    async def call(self, method: str, path: str, user: str, json: object = None) -> int:
        headers = {"Authorization": f"Bearer {self.cluster.token}", "Impersonate-User": user}
        r = await self.http.request(method, self.cluster.server + path, headers=headers, json=json)
        return r.status_code


@pytest.fixture
async def setup(
    server: ServerProcess, clusters: tuple[Agent, Agent], rbac_sim: Sim, tmp_path: Path
) -> AsyncIterator[Setup]:
    agent = clusters[0]
    clock = ManualClock()
    async with (
        httpx.AsyncClient(verify=server.ca, timeout=30) as cp_http,
        httpx.AsyncClient(verify=str(rbac_sim.ca), timeout=30) as sim_http,
    ):
        guard = Guard(cp_http, f"{server.url}/dp", StaticToken(agent.token), clock, tmp_path / "guard", ttl=TTL)
        await guard.reconcile()
        cluster = rbac_sim.clusters[0]
        webhookauthz.configure(rbac_sim.data_dir, cluster.name, guard.kubeconfig.read_bytes())
        s = Setup(guard, clock, cluster, sim_http)
        for ns in ("team-a", "team-b"):
            body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}
            r = await sim_http.post(
                cluster.server + "/api/v1/namespaces", json=body, headers={"Authorization": f"Bearer {cluster.token}"}
            )
            assert r.status_code in (201, 409), r.text
        try:
            yield s
        finally:
            webhookauthz.configure(rbac_sim.data_dir, cluster.name, None)
            await guard.close()


async def test_viewer_at_a_namespace_reads_there_only_and_writer_writes(
    server: ServerProcess, clusters: tuple[Agent, Agent], setup: Setup
) -> None:
    principal = await asyncio.to_thread(make_principal, server)
    oid = principal.object_id
    viewer = await asyncio.to_thread(_assign, server, f"{clusters[0].path}/namespaces/team-a", VIEWER, oid)

    assert await setup.call("GET", "/api/v1/namespaces/team-a/pods", oid) == 200
    assert await setup.call("GET", "/api/v1/namespaces/team-b/pods", oid) == 403
    assert await setup.call("GET", "/api/v1/namespaces/team-a/secrets", oid) == 403  # Viewer reads no secret
    assert await setup.call("GET", "/api/v1/nodes", oid) == 403  # cluster scope is above the namespace
    assert await setup.call("DELETE", "/api/v1/namespaces/team-a/pods/p1", oid) == 403
    assert await setup.call("POST", "/api/v1/namespaces/team-a/pods", oid, POD) == 403
    # A user no directory knows, and one that is no object id: the webhook refuses or has no opinion; RBAC decides.
    assert await setup.call("GET", "/api/v1/namespaces/team-a/pods", str(uuid.uuid4())) == 403
    assert await setup.call("GET", "/api/v1/namespaces/team-a/pods", "alice") == 403

    writer = await asyncio.to_thread(_assign, server, f"{clusters[0].path}/namespaces/team-a", WRITER, oid)
    setup.clock.advance(TTL)  # the create refused above is remembered until then
    assert await setup.call("POST", "/api/v1/namespaces/team-a/pods", oid, POD) == 201
    assert await setup.call("DELETE", "/api/v1/namespaces/team-a/pods/p1", oid) == 200
    assert await setup.call("GET", "/api/v1/namespaces/team-a/pods", oid) == 200

    # Revoked: still allowed from guard's cache within its ttl, refused once it has passed.
    await asyncio.to_thread(_unassign, server, viewer)
    await asyncio.to_thread(_unassign, server, writer)
    assert await setup.call("GET", "/api/v1/namespaces/team-a/pods", oid) == 200
    setup.clock.advance(TTL)
    assert await setup.call("GET", "/api/v1/namespaces/team-a/pods", oid) == 403


async def test_an_assignment_at_the_cluster_covers_every_namespace_and_a_deleted_principal_loses_it(
    server: ServerProcess, clusters: tuple[Agent, Agent], setup: Setup
) -> None:
    principal = await asyncio.to_thread(make_principal, server)
    await asyncio.to_thread(_assign, server, clusters[0].path, VIEWER, principal.object_id)
    for ns in ("team-a", "team-b"):
        assert await setup.call("GET", f"/api/v1/namespaces/{ns}/configmaps", principal.object_id) == 200
    assert await setup.call("GET", "/api/v1/namespaces", principal.object_id) == 200

    def delete_principal() -> None:
        with server.client() as c:
            r = c.delete(f"/providers/Halyard.Directory/servicePrincipals/{principal.app_id}", params=SP_API)
            assert r.status_code == 204, r.text

    await asyncio.to_thread(delete_principal)
    setup.clock.advance(TTL)
    assert await setup.call("GET", "/api/v1/namespaces/team-a/configmaps", principal.object_id) == 403


def _check(server: ServerProcess, agent: Agent | None, body: object, token: str | None = None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token or agent.token}"} if (agent or token) else {}
    return httpx.post(f"{server.url}/dp/v1/checkaccess", json=body, headers=headers, verify=server.ca, timeout=30)


def test_a_cluster_can_only_ask_about_itself(server: ServerProcess, clusters: tuple[Agent, Agent]) -> None:
    principal = make_principal(server)
    _assign(server, clusters[0].path, VIEWER, principal.object_id)
    body = {"user": principal.object_id, "resourceAttributes": {"namespace": "x", "verb": "get", "resource": "pods"}}
    mine, other = _check(server, clusters[0], body), _check(server, clusters[1], body)
    assert mine.status_code == other.status_code == 200
    assert mine.json()["allowed"] and mine.json()["scope"] == f"{clusters[0].path}/namespaces/x"
    assert mine.json()["dataAction"] == "Microsoft.Kubernetes/connectedClusters/pods/read"
    assert (other.json()["allowed"], other.json()["denied"]) == (False, True)
    assert other.json()["scope"] == f"{clusters[1].path}/namespaces/x"


def test_only_agent_tokens_are_heard(server: ServerProcess) -> None:
    body = {"user": str(uuid.uuid4()), "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}
    assert _check(server, None, body).status_code == 401
    assert _check(server, None, body, token=server.token()).status_code == 401  # a management token


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"user": "x" * 65, "nonResourceAttributes": {"path": "/", "verb": "get"}}, "InvalidRequestContent"),
        (
            {"user": "u", "groups": ["g"] * 257, "nonResourceAttributes": {"path": "/", "verb": "get"}},
            "InvalidRequestContent",
        ),
        ({"user": "u"}, "InvalidRequestContent"),
        (
            {
                "user": "u",
                "resourceAttributes": {"verb": "get", "resource": "pods"},
                "nonResourceAttributes": {"path": "/"},
            },
            "InvalidRequestContent",
        ),
        ({"user": "u", "resourceAttributes": {"verb": "*", "resource": "pods"}}, "UnsupportedAccessCheck"),
        (
            {"user": "u", "resourceAttributes": {"verb": "get", "resource": "pods", "namespace": "../x"}},
            "UnsupportedAccessCheck",
        ),
        ({"user": "u", "nonResourceAttributes": {"path": "/../../x", "verb": "get"}}, "UnsupportedAccessCheck"),
    ],
)
def test_bounded_and_unmappable_input_is_refused(
    server: ServerProcess, clusters: tuple[Agent, Agent], body: object, code: str
) -> None:
    r = _check(server, clusters[0], body)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == code


def test_the_arc_roles_are_listed_with_their_data_actions_and_namespace_scopes_are_assignable(
    server: ServerProcess, clusters: tuple[Agent, Agent]
) -> None:
    with server.client() as c:
        r = c.get(f"/providers/Microsoft.Authorization/roleDefinitions/{VIEWER}", params=AUTHZ_API)
        assert r.status_code == 200, r.text
        props = r.json()["properties"]
        assert props["roleName"] == "Azure Arc Kubernetes Viewer"
        assert "Microsoft.Kubernetes/connectedClusters/pods/read" in props["permissions"][0]["dataActions"]
    principal = make_principal(server)
    scope = f"{clusters[0].path}/namespaces/team-a"
    _assign(server, scope, VIEWER, principal.object_id)
    with server.client() as c:
        listed = c.get(f"{scope}/providers/Microsoft.Authorization/roleAssignments", params=AUTHZ_API).json()["value"]
    assert any(
        a["properties"]["principalId"] == principal.object_id and a["properties"]["scope"] == scope for a in listed
    )
