"""The simulator's webhook authorization: the review it sends and how it reads the answer, as kube-apiserver."""

from __future__ import annotations

from pathlib import Path

import pytest

from halyard.agent.guard import webhook_kubeconfig
from halyard.core.pki import cert_to_pem, create_ca
from halyard.sim.rbac import Attributes, UserInfo
from halyard.sim.webhookauthz import ALLOW, DENY, NO_OPINION, authorize, decision_of, parse_kubeconfig, review_body

pytestmark = pytest.mark.unit
USER = UserInfo("6a3f2c1e-0b7d-4e55-9c61-3f1b2a4d5e6f", ("g1", "system:authenticated"), "u1", {"oid": ["x"]})


def test_a_resource_review_is_what_kube_apiserver_sends() -> None:
    a = Attributes("list", "apps", "deployments", "", "team-a", "", version="v1")
    assert review_body(USER, a) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "metadata": {"creationTimestamp": None},
        "spec": {
            "resourceAttributes": {
                "namespace": "team-a",
                "verb": "list",
                "group": "apps",
                "version": "v1",
                "resource": "deployments",
            },
            "user": USER.name,
            "groups": ["g1", "system:authenticated"],
            "extra": {"oid": ["x"]},
            "uid": "u1",
        },
        "status": {"allowed": False},
    }


def test_a_non_resource_review() -> None:
    body = review_body(UserInfo("bob"), Attributes("get", path="/healthz"))
    assert body["spec"] == {"nonResourceAttributes": {"path": "/healthz", "verb": "get"}, "user": "bob"}


@pytest.mark.parametrize(
    ("status", "decision"),
    [
        ({"allowed": True}, ALLOW),
        ({"allowed": True, "denied": True}, DENY),  # kube-apiserver: a denial, with an error
        ({"allowed": False, "denied": True}, DENY),
        ({"allowed": False}, NO_OPINION),
        (None, NO_OPINION),
    ],
)
def test_the_answer_is_read_as_kube_apiserver_reads_it(status: object, decision: str) -> None:
    assert decision_of({"status": status, "kind": "SubjectAccessReview"})[0] == decision


async def test_rbac_allows_first_without_asking_the_webhook() -> None:
    # No webhook configured at all: RBAC's decision stands either way.
    assert await authorize(USER, Attributes("get", path="/x"), (True, "rbac"), None, "c") == (True, "rbac")
    assert await authorize(USER, Attributes("get", path="/x"), (False, ""), None, "c") == (False, "")


def test_the_kubeconfig_guard_writes_is_read(tmp_path: Path) -> None:
    _, ca = create_ca("guard")
    url, verify = parse_kubeconfig(webhook_kubeconfig("https://127.0.0.1:9443/", cert_to_pem(ca)), tmp_path)
    assert url == "https://127.0.0.1:9443/" and verify is not True
    with pytest.raises(ValueError):
        parse_kubeconfig(b"clusters: [{name: x, cluster: {server: 'http://127.0.0.1:1/'}}]", tmp_path)
