"""A user's groups through cluster connect: the relay asserts them, auth-proxy impersonates them, and the cluster's
own RBAC (a RoleBinding to ``view`` for the group) decides. Leaving the group closes the way in."""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx
import pytest

from tests.clusterconnect.conftest import Connected
from tests.support.signin import DIRECTORY, DIRECTORY_VERSION, Login, claims_of, new_group, new_user

pytestmark = pytest.mark.e2e
CLUSTER_USER_ROLE = "00493d72-78f6-4148-b6c5-d3ce8e4799dd"


def test_a_user_in_a_group_bound_to_view_lists_pods_and_cannot_delete_them(
    connected: Connected, tmp_path: Path
) -> None:
    server = connected.server
    with server.client() as admin:
        group = new_group(admin)
        user, password = new_user(admin, group_id=group["id"])
        # The group may open cluster-connect streams to this cluster (Azure's Cluster User role, to the group).
        r = admin.put(
            f"{connected.resource_id}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
            params={"api-version": "2022-04-01"},
            json={
                "properties": {
                    "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{CLUSTER_USER_ROLE}",
                    "principalId": group["id"],
                }
            },
        )
        assert r.status_code in (200, 201), r.text
        # Inside the cluster, the group (by object id) may view the default namespace.
        binding = f"view-{group['id'][:8]}"
        made = connected.admin(
            "create", "rolebinding", binding, "--clusterrole=view", f"--group={group['id']}", "-n", "default"
        )
        assert made.returncode == 0, made.stderr
        pod = f"pod-{group['id'][:8]}"
        assert connected.admin("run", pod, "--image=busybox", "-n", "default").returncode == 0

        tokens = Login(server).sign_in(user["userPrincipalName"], password)
        assert claims_of(tokens["access_token"])["groups"] == [group["id"]]
        kubeconfig = connected.kubeconfig(tmp_path / "user.kubeconfig", token=tokens["access_token"])

        listed = connected.kubectl(kubeconfig, "get", "pods", "-n", "default", "-o", "name")
        assert listed.returncode == 0, listed.stderr
        assert f"pod/{pod}" in listed.stdout.split()
        deleted = connected.kubectl(kubeconfig, "delete", "pod", pod, "-n", "default", "--wait=false")
        assert deleted.returncode != 0 and "forbidden" in deleted.stderr.lower(), deleted.stderr
        elsewhere = connected.kubectl(kubeconfig, "get", "pods", "-n", "kube-system", "-o", "name")
        assert elsewhere.returncode != 0 and "forbidden" in elsewhere.stderr.lower(), elsewhere.stderr
        assert connected.admin("get", "pod", pod, "-n", "default").returncode == 0  # still there

        # Out of the group: the relay refuses the same token at once (no Cluster User role any more).
        removed = admin.delete(f"{DIRECTORY}/groups/{group['id']}/members/{user['id']}", params=DIRECTORY_VERSION)
        assert removed.status_code == 204
        after = connected.kubectl(kubeconfig, "get", "pods", "-n", "default", "-o", "name")
        assert after.returncode != 0 and "Forbidden" in after.stderr, after.stderr
        relay = httpx.get(
            f"{server.url}/relay/v1{connected.resource_id}/api/v1/namespaces/default/pods",
            headers={"Authorization": f"Bearer {tokens['access_token']}"},
            verify=server.ca,
        )
        assert relay.status_code == 403 and relay.json()["error"]["code"] == "AuthorizationFailed", relay.text
        connected.admin("delete", "pod", pod, "-n", "default", "--wait=false")
        connected.admin("delete", "rolebinding", binding, "-n", "default")
        for kind, oid in (("users", user["id"]), ("groups", group["id"])):
            assert admin.delete(f"{DIRECTORY}/{kind}/{oid}", params=DIRECTORY_VERSION).status_code == 204
