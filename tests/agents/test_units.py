"""The pure parts of the agents and the agent services: status rules, cluster facts, backoff, proofs, heartbeats."""

from __future__ import annotations

import datetime as dt
import random
import uuid
from dataclasses import replace
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from halyard.agent.backoff import Backoff
from halyard.agent.identity import Issued
from halyard.agent.runner import AGENTS, configuration_agents
from halyard.api.agents import PROOF_ISSUER, AgentError, CertificateResponse, Heartbeat
from halyard.api.proofs import csr_digest, signing_algorithm
from halyard.controlplane.dataplane.heartbeats import reported
from halyard.controlplane.dataplane.status import connectivity_status
from halyard.controlplane.his.proofs import verify_proof
from halyard.controlplane.kubernetes.connectedclusters import with_reports
from halyard.core.clock import isoformat
from halyard.core.errors import Unauthenticated
from halyard.kube.agentpods import pod_problems
from halyard.kube.facts import (
    SIMULATED_ANNOTATION,
    cluster_facts,
    detect_distribution,
    detect_infrastructure,
    parse_cpu,
    total_cores,
)
from tests.agents.sockets import _address

pytestmark = pytest.mark.unit
NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
THRESHOLD = dt.timedelta(minutes=15)


def test_status_is_connecting_until_the_first_heartbeat() -> None:
    assert connectivity_status({}, NOW, THRESHOLD) == "Connecting"


def test_status_turns_offline_exactly_at_the_threshold() -> None:
    props = {"lastConnectivityTime": isoformat(NOW)}
    assert connectivity_status(props, NOW + THRESHOLD - dt.timedelta(microseconds=1), THRESHOLD) == "Connected"
    assert connectivity_status(props, NOW + THRESHOLD, THRESHOLD) == "Offline"


def test_status_is_expired_exactly_when_the_certificate_lapses_even_while_beating() -> None:
    props = {
        "lastConnectivityTime": isoformat(NOW),
        "managedIdentityCertificateExpirationTime": isoformat(NOW + dt.timedelta(seconds=5)),
    }
    assert connectivity_status(props, NOW + dt.timedelta(seconds=4), THRESHOLD) == "Connected"
    assert connectivity_status(props, NOW + dt.timedelta(seconds=5), THRESHOLD) == "Expired"


def _node(name: str, cpu: str, provider: str = "", labels: dict[str, str] | None = None, os: str = "linux") -> dict:  # type: ignore[type-arg]
    return {
        "metadata": {"name": name, "labels": {"kubernetes.io/os": os, **(labels or {})}},
        "spec": {"providerID": provider},
        "status": {"capacity": {"cpu": cpu}},
    }


def test_cores_count_whole_cpus_per_node() -> None:
    assert parse_cpu("3500m") == 3.5
    assert total_cores([_node("a", "4"), _node("b", "3500m"), _node("c", "0.5")]) == 7


@pytest.mark.parametrize(
    ("nodes", "version", "distribution", "infrastructure"),
    [
        ([_node("a", "2", "azure:///subscriptions/x/vm", {"kubernetes.azure.com/cluster": "c"})], "v1.30.1", "aks",
         "azure"),
        ([_node("a", "2", "aws:///us-east-1a/i-1")], "v1.29.3-eks-adc7111", "eks", "aws"),
        ([_node("a", "2", "gce://p/z/n")], "v1.30.5-gke.1014001", "gke", "gcp"),
        ([_node("a", "2", "k3s://node")], "v1.31.2+k3s1", "k3s", "generic"),
        ([_node("a", "2", "generic://sim/a")], "v1.31.2", "generic", "generic"),
    ],
)  # fmt: skip
def test_distribution_and_infrastructure_detection(
    nodes: list[dict],
    version: str,
    distribution: str,
    infrastructure: str,  # type: ignore[type-arg]
) -> None:
    assert detect_distribution(nodes, version) == distribution
    assert detect_infrastructure(nodes) == infrastructure


def test_cluster_facts_count_linux_nodes_and_strip_the_v() -> None:
    facts = cluster_facts({"gitVersion": "v1.31.2"}, [_node("a", "4"), _node("w", "8", os="windows")])
    assert (facts.kubernetes_version, facts.node_count, facts.core_count, facts.linux_nodes) == ("1.31.2", 2, 12, 1)
    assert not facts.simulated


def test_a_simulated_cluster_is_known_by_its_nodes_annotation() -> None:
    node = _node("a", "4")
    node["metadata"]["annotations"] = {SIMULATED_ANNOTATION: "true"}
    assert cluster_facts({"gitVersion": "v1.31.2"}, [node]).simulated


def test_backoff_grows_is_capped_jittered_and_resets() -> None:
    backoff = Backoff(base=1, cap=8, rng=random.Random(7))
    delays = [backoff.next_delay() for _ in range(8)]
    assert all(0.5 <= d <= 8 for d in delays)
    assert max(delays[4:]) > 2  # grew beyond the first ceilings
    assert len({round(d, 6) for d in delays}) == len(delays)  # jittered: no two agents in lockstep
    backoff.reset()
    assert backoff.next_delay() <= 1


def test_heartbeat_merge_reports_metadata_and_keeps_what_the_user_chose() -> None:
    props = {
        "distribution": "k3s",
        "agentPublicKeyCertificate": "K",
        "arcAgentProfile": {"agentAutoUpgrade": "Disabled"},
    }
    beat = Heartbeat(
        agentVersion="1.2.3",
        kubernetesVersion="1.31.2",
        totalNodeCount=3,
        totalCoreCount=12,
        distribution="generic",
        infrastructure="aws",
        agentState="Failed",
        agentErrors=[AgentError(message="boom", component="metadata-operator", time=NOW)],
    )
    report = reported(beat, NOW)
    assert "distribution" not in report and report["detected"] == {"distribution": "generic", "infrastructure": "aws"}
    merged = with_reports(props, report)
    assert merged is not props and "lastConnectivityTime" not in props
    assert merged["distribution"] == "k3s" and merged["infrastructure"] == "aws"
    assert (merged["kubernetesVersion"], merged["totalNodeCount"], merged["totalCoreCount"]) == ("1.31.2", 3, 12)
    assert merged["lastConnectivityTime"] == isoformat(NOW)
    assert merged["arcAgentProfile"]["agentAutoUpgrade"] == "Disabled"
    assert merged["arcAgentProfile"]["agentErrors"][0]["component"] == "metadata-operator"
    # A later beat without metadata (not gathered yet) keeps what the previous one reported.
    later = reported(Heartbeat(agentVersion="1.2.4"), NOW, report)
    assert (later["totalNodeCount"], later["kubernetesVersion"], later["agentVersion"]) == (3, "1.31.2", "1.2.4")
    assert later["detected"] == report["detected"] and later["arcAgentProfile"]["agentErrors"] == []


def _csr(key: ec.EllipticCurvePrivateKey) -> x509.CertificateSigningRequest:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c")])
    return x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def _proof(key: ec.EllipticCurvePrivateKey, digest: str, *, sub: str = "/rid", aud: str = "https://h/his/v1/certificate",
           iat: float | None = None, life: int = 120) -> str:  # fmt: skip
    now = int(iat if iat is not None else NOW.timestamp())
    claims = {"iss": PROOF_ISSUER, "sub": sub, "aud": aud, "iat": now, "exp": now + life, "csr": digest,
              "jti": uuid.uuid4().hex}  # fmt: skip
    return jwt.encode(claims, key, algorithm=signing_algorithm(key))


def test_proof_binds_key_resource_url_csr_and_time() -> None:
    onboarding, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    digest = csr_digest(_csr(ec.generate_private_key(ec.SECP256R1())))
    args = {"audience": "https://h/his/v1/certificate", "resource_id": "/RID", "digest": digest, "now": NOW}
    assert verify_proof(_proof(onboarding, digest), onboarding.public_key(), **args)["csr"] == digest
    foreign, untimely = "is not valid for this cluster", "has expired or lives too long"
    bad = [
        (_proof(other, digest), "another key", foreign),
        (_proof(onboarding, "x"), "another CSR", foreign),
        (_proof(onboarding, digest, sub="/other"), "another resource", foreign),
        (_proof(onboarding, digest, aud="https://evil/his/v1/certificate"), "another URL", foreign),
        (_proof(onboarding, digest, iat=NOW.timestamp() - 600), "stale", untimely),
        (_proof(onboarding, digest, life=3600), "too long-lived", untimely),
    ]
    for proof, why, reason in bad:
        with pytest.raises(Unauthenticated) as refused:
            verify_proof(proof, onboarding.public_key(), **args)
            pytest.fail(f"accepted a proof from {why}")
        assert (refused.value.code, reason in refused.value.message) == ("InvalidProof", True), (why, refused.value)


def test_issued_certificate_round_trips_through_its_secret_and_renews_from_half_life() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(NOW).not_valid_after(NOW + dt.timedelta(days=90)).sign(key, hashes.SHA256())
    )  # fmt: skip
    pem = cert.public_bytes(serialization.Encoding.PEM).decode()
    response = CertificateResponse(certificate=pem, caCertificate=pem, clientId="app", tenantId="t",
                                   tokenEndpoint="https://h/t/oauth2/v2.0/token", audience="https://agents/",
                                   issuedAt=NOW, notAfter=NOW + dt.timedelta(days=90))  # fmt: skip
    issued = Issued(key=key, certificate=cert, response=response)
    again = Issued.from_secret(issued.secret_data())
    assert again.response == response and again.certificate == cert
    assert again.renew_at(0.5) == NOW + dt.timedelta(days=45)


def test_proc_net_addresses_decode() -> None:
    assert _address("0100007F", 4) == "127.0.0.1"
    assert _address("00000000000000000000000001000000", 6) == "::1"


def test_an_identity_may_act_only_while_it_exists_and_its_certificate_is_valid() -> None:
    from halyard.controlplane.his.identities import ClusterIdentities, LiveIdentity

    assert ClusterIdentities.problem(LiveIdentity("k", NOW + dt.timedelta(seconds=1)), NOW) is None
    revoked = ClusterIdentities.problem(None, NOW)
    expired = ClusterIdentities.problem(LiveIdentity("k", NOW), NOW)
    never_certified = ClusterIdentities.problem(LiveIdentity("k", None), NOW)
    assert revoked is not None and revoked.code == "ClusterIdentityRevoked"
    assert expired is not None and expired.code == "ClusterCertificateExpired"
    assert never_certified is not None and never_certified.code == "ClusterCertificateExpired"


def test_stuck_agent_pods_are_named_with_their_reason_and_a_pull_failure_is_told_apart() -> None:
    def pod(name: str, *states: tuple[str, dict[str, Any]], image: str = "r.invalid/a:1") -> dict[str, Any]:
        statuses = [{"name": c, "state": state} for c, state in states]
        containers = [{"name": c, "image": image} for c, _ in states]
        return {
            "metadata": {"name": name},
            "spec": {"containers": containers},
            "status": {"containerStatuses": statuses},
        }

    pulling = {"waiting": {"reason": "ImagePullBackOff", "message": 'Back-off pulling image "r.invalid/a:1"'}}
    crashing = {"waiting": {"reason": "CrashLoopBackOff"}}
    starting = {"waiting": {"reason": "ContainerCreating"}}
    running = {"running": {"startedAt": "2026-12-05T00:00:00Z"}}
    assert (
        pod_problems([pod("a", ("agent", running)), pod("b", ("agent", starting)), {"metadata": {"name": "c"}}]) == []
    )
    (crash,) = pod_problems([pod("p1", ("agent", running), ("sidecar", crashing))])
    assert str(crash) == "pod p1: container sidecar: CrashLoopBackOff" and not crash.cannot_pull
    (pull,) = pod_problems([pod("p2", ("agent", pulling))])
    assert str(pull) == 'pod p2: container agent: ImagePullBackOff (Back-off pulling image "r.invalid/a:1")'
    assert pull.cannot_pull
    # A re-run fixed the registry: the old rollout's pod, still stuck on its way out, is not the new agents' problem.
    rollout = [pod("old", ("agent", pulling)), pod("new", ("agent", starting), image="ghcr.io/a:1")]
    assert pod_problems(rollout, current_images={"ghcr.io/a:1"}) == []
    assert pod_problems(rollout, current_images={"r.invalid/a:1"}) == [replace(pull, pod="old")]


def test_the_agents_declared_in_a_heartbeat_are_those_that_act_on_configuration() -> None:
    """Local agents declare what this process runs; in-cluster, what the chart runs (extension-manager and
    config-agent with the extensions feature); the server keeps only those names (never ``dp``, its own row)."""
    assert configuration_agents(set(AGENTS), False, frozenset()) == {"extension-manager", "config-agent"}
    both = {"extension-manager", "config-agent"}
    assert configuration_agents({"resource-sync"}, True, frozenset({"extensions"})) == both
    assert configuration_agents({"resource-sync"}, True, frozenset({"cluster-connect"})) == frozenset()
    now = dt.datetime(2026, 12, 6, tzinfo=dt.UTC)
    beat = Heartbeat(agentVersion="1", configurationAgents=["dp", "config-agent", "extension-manager", "guard"])
    assert reported(beat, now)["configurationAgents"] == ["config-agent", "extension-manager"]
    older = Heartbeat(agentVersion="1")  # an older agent says nothing: what was declared stays
    assert reported(older, now, {"configurationAgents": ["config-agent"]})["configurationAgents"] == ["config-agent"]
