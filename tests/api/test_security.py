"""Nobody without the right token and role gets anything: every route, every verb."""

from __future__ import annotations

import re
import uuid

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.api.helpers import (
    AUTHZ_API,
    CC_API,
    CONTRIBUTOR,
    OWNER,
    READER,
    RG_API,
    cluster_body,
    cluster_path,
    group_path,
    make_group,
    make_principal,
    unique,
)
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e

# The only routes anyone may call without a management token: how to get a token, and whether the server is up.
PUBLIC = {
    ("GET", "/{tenant}/v2.0/.well-known/openid-configuration"),
    ("GET", "/{tenant}/discovery/v2.0/keys"),
    ("GET", "/{tenant}/oauth2/v2.0/authorize"),
    ("POST", "/{tenant}/oauth2/v2.0/authorize"),  # the sign-in page's form (the user's password authenticates)
    ("POST", "/{tenant}/oauth2/v2.0/token"),
    ("POST", "/{tenant}/oauth2/v2.0/devicecode"),  # a user signs in: the code does nothing until they approve it
    ("POST", "/{tenant}/oauth2/v2.0/revoke"),  # sign-out: needs the refresh token itself
    ("GET", "/devicelogin"),  # the device page, and its form (the user's password authenticates)
    ("POST", "/devicelogin"),
    ("GET", "/federation/callback"),  # an external provider sends the browser back: its signed id token authenticates
    ("GET", "/metadata/endpoints"),
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/his/v1/endpoints"),  # the endpoint map agents are onboarded with, like /metadata/endpoints
}
# Authenticated by a signed proof of key possession in the body, not by a bearer token.
PROOF_AUTHENTICATED = {("POST", "/his/v1/certificate")}
# The agent-facing services take only agent tokens (agent audience, a cluster identity).
AGENT_PREFIXES = ("/dp/", "/gw/")


def _routes(server: ServerProcess) -> list[tuple[str, str]]:
    spec = httpx.get(f"{server.url}/openapi.json", verify=server.ca).json()
    return [
        (m.upper(), p)
        for p, ops in spec["paths"].items()
        for m in ops
        if m in {"get", "put", "post", "patch", "delete", "head"}
    ]


def _fill(server: ServerProcess, path: str) -> list[str]:
    """The request paths that reach a route: a route at any scope is walked at a subscription and at the root."""
    values = {
        "subscriptionId": server.admin["subscription"],
        "scope": f"subscriptions/{server.admin['subscription']}",
        "tenant": server.admin["tenant"],
    }
    filled = re.sub(r"\{(\w+)(?::path)?\}", lambda m: values.get(m.group(1), "x1"), path)
    return [filled, path.replace("/{scope}", "", 1)] if path.startswith("/{scope}/") else [filled]


def test_route_inventory_is_known(server: ServerProcess) -> None:
    routes = _routes(server)
    assert len(routes) > 30
    for public in PUBLIC | PROOF_AUTHENTICATED:
        assert public in routes, f"route {public} disappeared: update this test's inventory"


@pytest.mark.parametrize("token_kind", ["none", "garbage", "other-audience", "forged"])
def test_every_route_refuses_callers_without_a_management_token(server: ServerProcess, token_kind: str) -> None:
    management_audience = server.admin["audience"]
    agent_audience = management_audience.replace("management.", "agents.")
    # Each side refuses the other's tokens: a management token is no agent token, and vice versa.
    other = {False: server.token(audience=agent_audience), True: server.token(audience=management_audience)}
    forged = _forged(server)  # right shape and claims, signed by a key the server never issued
    checked = 0
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as c:
        for method, path in _routes(server):
            if (method, path) in PUBLIC | PROOF_AUTHENTICATED:
                continue
            agent_route = path.startswith(AGENT_PREFIXES)
            token = {"none": None, "garbage": "not.a.jwt", "other-audience": other[agent_route], "forged": forged}[
                token_kind
            ]
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            for url in _fill(server, path):
                r = c.request(
                    method,
                    url,
                    params={"api-version": "2026-05-01"},
                    headers=headers,
                    json={} if method in ("PUT", "POST", "PATCH") else None,
                )
                assert r.status_code == 401, (
                    f"{method} {url} answered {r.status_code} to a {token_kind} token: {r.text}"
                )
                assert r.headers.get("WWW-Authenticate", "").startswith("Bearer"), (method, url)
                if method != "HEAD":
                    assert r.json()["error"]["code"] in ("AuthenticationFailed", "InvalidAuthenticationToken")
                checked += 1
    assert checked > 25


def test_proof_authenticated_routes_refuse_requests_without_a_valid_proof(server: ServerProcess) -> None:
    with httpx.Client(base_url=server.url, verify=server.ca, timeout=30) as c:
        key = ec.generate_private_key(ec.SECP256R1())
        csr = x509.CertificateSigningRequestBuilder().subject_name(x509.Name([])).sign(key, hashes.SHA256())
        pem = csr.public_bytes(serialization.Encoding.PEM).decode()
        group = make_group(server)
        unknown, known = cluster_path(server, group, "never-created"), cluster_path(server, group, "created")
        with server.client() as admin:
            assert admin.put(known, params=CC_API, json=cluster_body()).status_code == 201
        # Each refusal says what is wrong, in the order the service checks: the body, the CSR, the proof. Whether
        # the cluster exists is not told to a caller that has not proven it holds the cluster's key: a missing
        # cluster reads as a bad proof (issue 11, finding 7).
        refusals = [
            ({}, 400, "InvalidRequestContent"),
            ({"resourceId": known, "csr": "garbage", "proof": "garbage"}, 400, "InvalidCsr"),
            ({"resourceId": unknown, "csr": pem, "proof": "garbage"}, 401, "InvalidProof"),
            ({"resourceId": known, "csr": pem, "proof": "garbage"}, 401, "InvalidProof"),
        ]
        for method, path in PROOF_AUTHENTICATED:
            for body, status, code in refusals:
                r = c.request(method, path, json=body, headers={"Authorization": f"Bearer {server.token()}"})
                assert (r.status_code, r.json()["error"]["code"]) == (status, code), (path, body, r.text)


def _forged(server: ServerProcess) -> str:
    import time

    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec

    genuine = server.token()
    real = jwt.decode(genuine, options={"verify_signature": False})
    header = jwt.get_unverified_header(genuine)
    now = int(time.time())
    claims = {**real, "iat": now, "nbf": now, "exp": now + 600}
    return jwt.encode(
        claims, ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": header["kid"]}
    )


def test_reader_reads_but_cannot_write(server: ServerProcess) -> None:
    group = make_group(server)
    sub_scope = f"/subscriptions/{server.admin['subscription']}"
    reader = make_principal(server, READER, sub_scope)
    with server.client(server.token(reader.app_id, reader.secret)) as c:
        assert c.get(group_path(server, group), params=RG_API).status_code == 200
        r = c.put(cluster_path(server, group, "c1"), params=CC_API, json=cluster_body())
        assert r.status_code == 403
        error = r.json()["error"]
        assert error["code"] == "AuthorizationFailed"
        assert "Microsoft.Kubernetes/connectedClusters/write" in error["message"]
        assert cluster_path(server, group, "c1") in error["message"]
        assert c.delete(group_path(server, group), params=RG_API).status_code == 403
        assert c.put(group_path(server, unique("rg")), params=RG_API, json={"location": "eastus"}).status_code == 403


def test_role_on_one_group_gives_nothing_on_another(server: ServerProcess) -> None:
    group_a, group_b = make_group(server), make_group(server)
    worker = make_principal(server, CONTRIBUTOR, group_path(server, group_a))
    with server.client() as admin:
        admin.put(cluster_path(server, group_b, "b1"), params=CC_API, json=cluster_body()).raise_for_status()
    with server.client(server.token(worker.app_id, worker.secret)) as c:
        r = c.put(cluster_path(server, group_a, "a1"), params=CC_API, json=cluster_body())
        assert r.status_code == 201, r.text
        assert c.get(cluster_path(server, group_a, "a1"), params=CC_API).status_code == 200
        assert c.get(cluster_path(server, group_b, "b1"), params=CC_API).status_code == 403
        assert c.put(cluster_path(server, group_b, "b2"), params=CC_API, json=cluster_body()).status_code == 403
        assert c.get(group_path(server, group_b), params=RG_API).status_code == 403
        # Listing the subscription shows only what the role reaches.
        listed = c.get(
            f"/subscriptions/{server.admin['subscription']}/providers/Microsoft.Kubernetes/connectedClusters",
            params=CC_API,
        )
        assert listed.status_code == 200
        names = {x["name"] for x in listed.json()["value"]}
        assert "a1" in names and "b1" not in names
        # A contributor may not hand out roles.
        r = c.put(
            f"{group_path(server, group_a)}/providers/Microsoft.Authorization/roleAssignments/"
            "00000000-0000-0000-0000-000000000001",
            params={"api-version": "2022-04-01"},
            json={"properties": {"roleDefinitionId": READER, "principalId": worker.object_id}},
        )
        assert r.status_code == 403


def test_roles_at_the_tenant_root_reach_every_subscription_and_only_root_owners_grant_them(
    server: ServerProcess,
) -> None:
    root = "/providers/Microsoft.Authorization/roleAssignments"
    group = make_group(server)
    reader = make_principal(server, READER, "")  # "" + the path above: the root scope, "/"
    assignment = f"{root}/{uuid.uuid4()}"
    with server.client() as admin:
        listed = admin.get(root, params=AUTHZ_API)
        assert listed.status_code == 200, listed.text
        mine = [a for a in listed.json()["value"] if a["properties"]["principalId"] == reader.object_id]
        assert [(a["properties"]["scope"], a["id"].split("/roleAssignments/")[0]) for a in mine] == [
            ("/", "/providers/Microsoft.Authorization")
        ]
    with server.client(server.token(reader.app_id, reader.secret)) as c:
        assert c.get(group_path(server, group), params=RG_API).status_code == 200  # reaches every subscription
        assert c.put(cluster_path(server, group, "c1"), params=CC_API, json=cluster_body()).status_code == 403
        body = {"properties": {"roleDefinitionId": CONTRIBUTOR, "principalId": reader.object_id}}
        r = c.put(assignment, params=AUTHZ_API, json=body)  # a Reader cannot grant itself more
        assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed", r.text
    owner_of_sub = make_principal(server, OWNER, f"/subscriptions/{server.admin['subscription']}")
    with server.client(server.token(owner_of_sub.app_id, owner_of_sub.secret)) as c:
        r = c.put(assignment, params=AUTHZ_API, json=body)  # a subscription's Owner does not own the root
        assert r.status_code == 403, r.text
    with server.client() as admin:
        (mine,) = mine
        # The SDKs' spelling of scope "/" (their URL template is "/{scope}/providers/…").
        r = admin.delete(
            f"{server.url}//providers/Microsoft.Authorization/roleAssignments/{mine['name']}", params=AUTHZ_API
        )
        assert r.status_code == 200, r.text
        assert admin.get(f"{root}/{mine['name']}", params=AUTHZ_API).status_code == 404
    with server.client(server.token(reader.app_id, reader.secret)) as c:
        assert c.get(group_path(server, group), params=RG_API).status_code == 403


def test_deleted_principal_token_stops_working_at_once(server: ServerProcess) -> None:
    sp = make_principal(server, READER, f"/subscriptions/{server.admin['subscription']}")
    token = server.token(sp.app_id, sp.secret)
    with server.client(token) as c:
        assert c.get("/subscriptions", params=RG_API).status_code == 200
    with server.client() as admin:
        r = admin.delete(
            f"/providers/Halyard.Directory/servicePrincipals/{sp.app_id}", params={"api-version": "2026-01-01"}
        )
        assert r.status_code == 204
    with server.client(token) as c:
        r = c.get("/subscriptions", params=RG_API)
        assert r.status_code == 401
        assert "no longer exists" in r.json()["error"]["message"]
    with pytest.raises(httpx.HTTPStatusError) as refused:
        server.token(sp.app_id, sp.secret)
    answer = refused.value.response
    # Answered as any wrong credential is: the token endpoint does not tell which client ids exist (issue 11).
    assert (answer.status_code, answer.json()["error"]) == (401, "invalid_client"), answer.text
    assert answer.json()["error_description"].startswith("AADSTS7000215: "), answer.text


def test_token_endpoint_errors_are_what_msal_understands(server: ServerProcess) -> None:
    url = f"{server.url}/{server.admin['tenant']}/oauth2/v2.0/token"
    base = {
        "grant_type": "client_credentials",
        "client_id": server.admin["clientId"],
        "scope": server.admin["audience"] + ".default",
    }
    r = httpx.post(url, data={**base, "client_secret": "wrong"}, verify=server.ca)
    assert r.status_code == 401 and r.json()["error"] == "invalid_client"
    assert r.json()["error_description"].startswith("AADSTS7000215")
    r = httpx.post(
        url,
        data={**base, "client_secret": server.admin["clientSecret"], "scope": "https://x/.default"},
        verify=server.ca,
    )
    assert r.status_code == 400 and r.json()["error"] == "invalid_resource"
    # az sends the audience with its trailing slash plus '/.default'; azure-identity without.
    for scope in (server.admin["audience"] + "/.default", server.admin["audience"].rstrip("/") + "/.default"):
        r = httpx.post(
            url, data={**base, "client_secret": server.admin["clientSecret"], "scope": scope}, verify=server.ca
        )
        assert r.status_code == 200, r.text
        assert r.json()["token_type"] == "Bearer" and 0 < r.json()["expires_in"] <= 3600
    r = httpx.post(f"{server.url}/no-such-tenant/oauth2/v2.0/token", data=base, verify=server.ca)
    assert r.status_code == 400 and "AADSTS90002" in r.json()["error_description"]


def test_secrets_are_stored_hashed_and_never_logged(server: ServerProcess) -> None:
    import sqlite3

    db = sqlite3.connect(server.data_dir / "halyard.db")
    hashes = [row[0] for row in db.execute("select secret_hash from credentials where kind='secret'")]
    db.close()
    assert hashes and all(h.startswith("scrypt$") for h in hashes)
    assert server.admin["clientSecret"] not in " ".join(hashes)
    log = server.whole_log()  # from the session's first line: the secret was minted at the first start
    assert 'msg="control plane ready"' in log, log[:2000]
    assert server.admin["clientSecret"] not in log
    assert (server.data_dir / "admin.json").stat().st_mode & 0o077 == 0
