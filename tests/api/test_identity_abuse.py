"""A cluster or a client that misuses the identity services (issue 11, findings 4 and 7; issue 10, item 8): piles of
certificates, replayed proofs, floods of bad assertions, guesses at which clusters and client ids exist."""

from __future__ import annotations

import base64
import datetime as dt
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from halyard.agent.identity import ASSERTION_TYPE
from halyard.api.agents import PROOF_ISSUER
from halyard.api.proofs import certificate_thumbprint, csr_digest
from halyard.controlplane.his.identities import ISSUE_BURST
from tests.api.agentcreds import Agent, connect
from tests.api.helpers import make_group, make_principal, unique
from tests.support.processes import ServerProcess, free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def own(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """A server of this module's own: its tests spend the login throttle of 127.0.0.1 on purpose."""
    proc = ServerProcess(tmp_path_factory.mktemp("abuse") / "data", free_port()).start()
    yield proc
    proc.stop()


@dataclass
class Issued:
    key: ec.EllipticCurvePrivateKey
    certificate: x509.Certificate
    client_id: str
    token_endpoint: str


def _proof(agent: Agent, server: ServerProcess, csr: x509.CertificateSigningRequest) -> str:
    now = int(time.time())
    claims = {"iss": PROOF_ISSUER, "sub": agent.path, "aud": f"{server.url}/his/v1/certificate", "iat": now,
              "exp": now + 120, "jti": uuid.uuid4().hex, "csr": csr_digest(csr)}  # fmt: skip
    return jwt.encode(claims, agent.onboarding_key, algorithm="ES256", headers={"kid": "onboarding"})


def _csr() -> tuple[ec.EllipticCurvePrivateKey, x509.CertificateSigningRequest]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c")])
    return key, x509.CertificateSigningRequestBuilder().subject_name(name).sign(key, hashes.SHA256())


def _post(server: ServerProcess, path: str, csr: x509.CertificateSigningRequest, proof: str) -> httpx.Response:
    body = {"resourceId": path, "csr": csr.public_bytes(serialization.Encoding.PEM).decode(), "proof": proof}
    return httpx.post(f"{server.url}/his/v1/certificate", json=body, verify=server.ca)


def _issue(server: ServerProcess, agent: Agent) -> httpx.Response | Issued:
    key, csr = _csr()
    r = _post(server, agent.path, csr, _proof(agent, server, csr))
    if r.status_code != 200:
        return r
    body = r.json()
    cert = x509.load_pem_x509_certificate(body["certificate"].encode())
    return Issued(key, cert, body["clientId"], body["tokenEndpoint"])


def _login(server: ServerProcess, issued: Issued, *, thumbprint: bool = True, key: object = None) -> httpx.Response:
    now = int(time.time())
    claims = {"iss": issued.client_id, "sub": issued.client_id, "aud": issued.token_endpoint,
              "jti": uuid.uuid4().hex, "iat": now, "exp": now + 300}  # fmt: skip
    headers = {"x5t#S256": certificate_thumbprint(issued.certificate)} if thumbprint else None
    assertion = jwt.encode(claims, key or issued.key, algorithm="ES256", headers=headers)  # type: ignore[arg-type]
    return httpx.post(issued.token_endpoint, verify=server.ca, data={
        "grant_type": "client_credentials", "client_id": issued.client_id, "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion, "scope": server.admin["audience"].replace("management.", "agents.") + ".default",
    })  # fmt: skip


def test_certificates_per_cluster_are_rate_limited(own: ServerProcess) -> None:
    agent = connect(own, make_group(own), unique("cc"))  # its first certificate
    answers = [_issue(own, agent) for _ in range(ISSUE_BURST + 2)]
    refused = [a for a in answers if isinstance(a, httpx.Response)]
    assert len(answers) - len(refused) == ISSUE_BURST - 1, [a.text for a in refused]
    for r in refused:
        assert r.status_code == 429, r.text
        assert r.json()["error"]["code"] == "TooManyCertificateRequests"
        assert int(r.headers["Retry-After"]) > 0


def test_an_identity_keeps_only_its_current_and_next_key(own: ServerProcess) -> None:
    agent = connect(own, make_group(own), unique("cc"))
    issued = [_issue(own, agent) for _ in range(3)]
    assert all(isinstance(i, Issued) for i in issued)
    first, current, latest = issued  # type: ignore[misc]
    assert _login(own, latest).status_code == 200
    assert _login(own, current).status_code == 200
    assert _login(own, current, thumbprint=False).status_code == 200  # without x5t#S256: each key is tried
    assert _login(own, first).status_code == 401  # its key was dropped when the third was issued
    # A thumbprint naming one key and a signature by another is refused (the named key is the only one tried).
    assert _login(own, latest, key=current.key).status_code == 401


def test_a_proof_is_accepted_once(own: ServerProcess) -> None:
    agent = connect(own, make_group(own), unique("cc"))
    _, csr = _csr()
    proof = _proof(agent, own, csr)
    assert _post(own, agent.path, csr, proof).status_code == 200
    again = _post(own, agent.path, csr, proof)
    assert again.status_code == 401, again.text
    assert again.json()["error"]["code"] == "InvalidProof"


def test_his_does_not_tell_an_anonymous_caller_which_clusters_exist(own: ServerProcess) -> None:
    agent = connect(own, make_group(own), unique("cc"))
    stranger = Agent(agent.path, "", ec.generate_private_key(ec.SECP256R1()))  # a key that is not the cluster's
    missing = Agent(agent.path.rsplit("/", 1)[0] + "/" + unique("nope"), "", stranger.onboarding_key)
    answers = []
    for who in (stranger, missing):
        _, csr = _csr()
        r = _post(own, who.path, csr, _proof(who, own, csr))
        answers.append((r.status_code, r.json()["error"]))
    assert answers[0] == answers[1], answers
    assert answers[0][1]["code"] == "InvalidProof"


def _secret_login(server: ServerProcess, client_id: str, secret: str) -> httpx.Response:
    return httpx.post(f"{server.url}/{server.admin['tenant']}/oauth2/v2.0/token", verify=server.ca, data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": server.admin["audience"] + ".default"})  # fmt: skip


def test_wrong_secrets_lock_out_that_principal_only_and_say_when_it_lifts(own: ServerProcess) -> None:
    mistyped = make_principal(own)
    for _ in range(10):
        assert _secret_login(own, mistyped.app_id, "wrong").status_code == 401
    refused = _secret_login(own, mistyped.app_id, mistyped.secret)
    assert refused.status_code == 429, refused.text
    assert "UTC)" in refused.json()["error_description"]  # when it lifts, not only how long
    assert int(refused.headers["Retry-After"]) > 0
    # Another principal signing in from the same machine is not locked out by someone else's typos.
    assert _secret_login(own, own.admin["clientId"], own.admin["clientSecret"]).status_code == 200


def test_an_unknown_client_id_is_answered_as_a_wrong_secret_and_counted(own: ServerProcess) -> None:
    known = make_principal(own)
    wrong = _secret_login(own, known.app_id, "wrong")
    unknown = _secret_login(own, str(uuid.uuid4()), "wrong")
    assert (
        (unknown.status_code, unknown.json()["error"])
        == (wrong.status_code, wrong.json()["error"])
        == (
            401,
            "invalid_client",
        )
    )
    ghost = str(uuid.uuid4())
    statuses = [_secret_login(own, ghost, "wrong").status_code for _ in range(11)]
    assert statuses[-1] == 429, statuses


def test_a_flood_of_bad_assertions_does_not_lock_out_a_correct_secret(own: ServerProcess) -> None:
    agent = connect(own, make_group(own), unique("cc"))
    issued = _issue(own, agent)
    assert isinstance(issued, Issued)
    stranger = ec.generate_private_key(ec.SECP256R1())
    with httpx.Client(verify=own.ca) as c:  # sequential is enough: each failure counted after its check
        for _ in range(40):
            now = int(time.time())
            assertion = jwt.encode({"iss": issued.client_id, "sub": issued.client_id, "aud": issued.token_endpoint,
                                    "jti": uuid.uuid4().hex, "exp": now + 300}, stranger, algorithm="ES256")  # fmt: skip
            c.post(issued.token_endpoint, data={"grant_type": "client_credentials", "client_id": issued.client_id,
                   "client_assertion_type": ASSERTION_TYPE, "client_assertion": assertion,
                   "scope": own.admin["audience"] + ".default"})  # fmt: skip
    principal = make_principal(own)
    assert _secret_login(own, principal.app_id, principal.secret).status_code == 200


def test_der_thumbprint_matches_the_agents() -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "c")])

    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key()).serial_number(1)
        .not_valid_before(now).not_valid_after(now + dt.timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip
    expected = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    assert certificate_thumbprint(cert) == expected
