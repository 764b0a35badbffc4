"""The ARM contract clients rely on: api-versions, names, errors, ETags, LROs, read-only fields, secrets."""

from __future__ import annotations

import base64
import time

import httpx
import jwt
import pytest
import yaml

from tests.api.helpers import CC_API, RG_API, cluster_body, cluster_path, group_path, make_group, unique
from tests.support.processes import ServerProcess

pytestmark = pytest.mark.e2e


def wait_operation(c: httpx.Client, url: str, timeout: float = 15) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = c.get(url)
        assert r.status_code == 200, r.text
        body = r.json()
        if body["status"] != "InProgress":
            return body
        assert r.headers["Retry-After"] == "1"
        time.sleep(0.1)
    raise TimeoutError(url)


def test_missing_and_unknown_api_versions_list_the_supported_ones(server: ServerProcess) -> None:
    path = cluster_path(server, make_group(server), "c")
    with server.client() as c:
        r = c.get(path)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "MissingApiVersionParameter"
        assert "2026-05-01" in r.json()["error"]["message"]
        r = c.get(path, params={"api-version": "1999-01-01"})
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "InvalidApiVersionParameter"
        for version in ("2021-10-01", "2024-01-01", "2024-07-01-preview", "2026-05-01"):
            assert c.get(path, params={"api-version": version}).status_code == 404


def test_put_is_an_async_operation_that_completes_without_polling(server: ServerProcess) -> None:
    group = make_group(server)
    with server.client() as c:
        r = c.put(cluster_path(server, group, "lro"), params=CC_API, json=cluster_body())
        assert r.status_code == 201, r.text
        assert r.json()["properties"]["provisioningState"] == "Accepted"
        assert r.json()["properties"]["connectivityStatus"] == "Connecting"
        assert r.json()["properties"]["privateLinkState"] == "Disabled"
        assert r.headers["Retry-After"] == "1"
        status_url = r.headers["Azure-AsyncOperation"]
        assert "/providers/Microsoft.Kubernetes/locations/eastus/operationStatuses/" in status_url
        # Nobody polls: the work still completes server-side.
        deadline = time.monotonic() + 10
        while (
            c.get(cluster_path(server, group, "lro"), params=CC_API).json()["properties"]["provisioningState"]
            != "Succeeded"
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
        body = wait_operation(c, status_url)
        assert body["status"] == "Succeeded" and "endTime" in body
        got = c.get(cluster_path(server, group, "lro"), params=CC_API).json()
        assert got["identity"]["principalId"] and got["identity"]["tenantId"] == server.admin["tenant"]
        assert got["systemData"]["createdBy"] == server.admin["clientId"]
        # Re-PUT of the same resource answers 200.
        assert c.put(cluster_path(server, group, "lro"), params=CC_API, json=cluster_body()).status_code == 200


def test_patch_and_delete_are_202_with_location_except_in_2021(server: ServerProcess) -> None:
    group = make_group(server)
    path = cluster_path(server, group, "p")
    with server.client() as c:
        c.put(path, params=CC_API, json=cluster_body()).raise_for_status()
        r = c.patch(path, params=CC_API, json={"tags": {"team": "blue"}})
        assert r.status_code == 202 and "Location" in r.headers and "Azure-AsyncOperation" in r.headers
        wait_operation(c, r.headers["Azure-AsyncOperation"])
        final = c.get(r.headers["Location"])
        assert final.status_code == 200 and final.json()["tags"] == {"team": "blue"}
        r = c.patch(path, params={"api-version": "2021-10-01"}, json={"tags": {"team": "red"}})
        assert r.status_code == 200 and r.json()["tags"] == {"team": "red"}
        assert "gateway" not in r.json()["properties"]  # fields 2021-10-01 does not know are not sent
        r = c.delete(path, params=CC_API)
        assert r.status_code == 202
        wait_operation(c, r.headers["Azure-AsyncOperation"])
        assert c.get(r.headers["Location"]).status_code == 204
        assert c.get(path, params=CC_API).status_code == 404
        assert c.delete(path, params=CC_API).status_code == 204


def test_put_ignores_read_only_fields_echoed_back(server: ServerProcess) -> None:
    group = make_group(server)
    path = cluster_path(server, group, "echo")
    with server.client() as c:
        c.put(path, params=CC_API, json=cluster_body()).raise_for_status()
        got = c.get(path, params=CC_API).json()
        got["properties"]["connectivityStatus"] = "Connected"
        got["properties"]["totalNodeCount"] = 99
        got["properties"]["provisioningState"] = "Succeeded"
        got["tags"] = {"echo": "yes"}
        r = c.put(path, params=CC_API, json=got)
        assert r.status_code == 200, r.text
        assert r.json()["properties"]["connectivityStatus"] == "Connecting"
        assert "totalNodeCount" not in r.json()["properties"]
        assert r.json()["tags"] == {"echo": "yes"}


def test_protected_settings_are_never_returned(server: ServerProcess) -> None:
    group = make_group(server)
    path = cluster_path(server, group, "secret")
    config = [
        {"feature": "proxy", "settings": {"mode": "x"}, "protectedSettings": {"https_proxy": "http://u:TOPSECRET@p"}}
    ]
    with server.client() as c:
        r = c.put(
            path, params={"api-version": "2024-07-01-preview"}, json=cluster_body(arcAgentryConfigurations=config)
        )
        assert r.status_code == 201, r.text
        assert "TOPSECRET" not in r.text
        got = c.get(path, params={"api-version": "2024-07-01-preview"})
        assert "TOPSECRET" not in got.text
        assert got.json()["properties"]["arcAgentryConfigurations"][0]["protectedSettings"] == {"https_proxy": ""}
        # Echoing the redacted body back keeps the stored secret.
        c.put(path, params={"api-version": "2024-07-01-preview"}, json=got.json()).raise_for_status()
        listed = c.get(f"{group_path(server, group)}/providers/Microsoft.Kubernetes/connectedClusters", params=CC_API)
        assert "TOPSECRET" not in listed.text
    assert "TOPSECRET" not in server.whole_log()  # the whole log of the session, from its first line


def test_etags_and_preconditions(server: ServerProcess) -> None:
    group = make_group(server)
    path = cluster_path(server, group, "etag")
    with server.client() as c:
        r = c.put(path, params=CC_API, json=cluster_body(), headers={"If-Match": "*"})
        assert r.status_code == 412 and r.json()["error"]["code"] == "PreconditionFailed"
        r = c.put(path, params=CC_API, json=cluster_body(), headers={"If-None-Match": "*"})
        assert r.status_code == 201
        etag = r.headers["ETag"]
        assert c.put(path, params=CC_API, json=cluster_body(), headers={"If-None-Match": "*"}).status_code == 412
        assert c.put(path, params=CC_API, json=cluster_body(), headers={"If-Match": '"stale"'}).status_code == 412
        r = c.put(path, params=CC_API, json=cluster_body(), headers={"If-Match": etag})
        assert r.status_code == 200 and r.headers["ETag"] != etag
        assert c.delete(path, params=CC_API, headers={"If-Match": etag}).status_code == 412


@pytest.mark.parametrize(
    ("name", "ok"),
    [
        ("a", True),
        ("my-cluster_1.prod", True),
        ("x" * 63, True),
        ("x" * 64, False),
        ("-lead", False),
        ("trail-", False),
        ("sp ace", False),
        ("semi;colon", False),
    ],
)
def test_connected_cluster_names_follow_arm_rules(server: ServerProcess, name: str, ok: bool) -> None:
    group = make_group(server) if ok else "rules"
    with server.client() as c:
        if not ok:
            c.put(group_path(server, group), params=RG_API, json={"location": "eastus"})
        r = c.put(cluster_path(server, group, name), params=CC_API, json=cluster_body())
        if ok:
            assert r.status_code == 201, r.text
        else:
            assert r.status_code == 400, r.text
            assert r.json()["error"]["code"] == "InvalidResourceName"


@pytest.mark.parametrize(
    ("body", "code"),
    [
        (b"{not json", "InvalidRequestContent"),
        (b'{"location": 5, "identity": {}, "properties": {}}', "InvalidRequestContent"),
        (
            b'{"identity": {"type": "SystemAssigned"}, "properties": {"agentPublicKeyCertificate": "AAAA"}}',
            "InvalidRequestContent",
        ),
        (b'{"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {}}', "InvalidRequestContent"),
        (
            b'{"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": {"agentPublicKeyCertificate": "bm90IGEga2V5"}}',
            "InvalidAgentPublicKeyCertificate",
        ),
        (
            b'{"location": "mars", "identity": {"type": "SystemAssigned"}, "properties": {"agentPublicKeyCertificate": "x"}}',
            "InvalidAgentPublicKeyCertificate",
        ),
        (b"[]", "InvalidRequestContent"),
    ],
)
def test_bad_bodies_get_arm_errors_and_store_nothing(server: ServerProcess, body: bytes, code: str) -> None:
    group = make_group(server)
    path = cluster_path(server, group, "bad")
    with server.client() as c:
        r = c.put(path, params=CC_API, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == code
        assert c.get(path, params=CC_API).status_code == 404


def test_location_and_group_errors(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.put(cluster_path(server, "no-such-group", "c"), params=CC_API, json=cluster_body())
        assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceGroupNotFound"
        group = make_group(server)
        r = c.put(cluster_path(server, group, "c"), params=CC_API, json=cluster_body(location="mars"))
        assert r.status_code == 400 and r.json()["error"]["code"] == "LocationNotAvailableForResourceType"
        r = c.put(group_path(server, "bad name!"), params=RG_API, json={"location": "eastus"})
        assert r.status_code == 400
        r = c.get(f"/subscriptions/{server.admin['subscription']}/resourceGroups/{unique('nope')}", params=RG_API)
        assert r.status_code == 404 and r.json()["error"]["code"] == "ResourceGroupNotFound"
        r = c.get("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups", params=RG_API)
        assert r.status_code == 404 and r.json()["error"]["code"] == "SubscriptionNotFound"
        r = c.get("/no/such/route")
        assert r.status_code == 404 and "error" in r.json()


def test_paths_match_case_insensitively(server: ServerProcess) -> None:
    group = make_group(server)
    with server.client() as c:
        c.put(cluster_path(server, group, "Case"), params=CC_API, json=cluster_body()).raise_for_status()
        lower = f"/SUBSCRIPTIONS/{server.admin['subscription']}/resourcegroups/{group.upper()}/PROVIDERS/microsoft.kubernetes/CONNECTEDCLUSTERS/case"
        r = c.get(lower, params=CC_API)
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "Case"
        assert c.get(f"{server.url}//metadata/endpoints", params={"api-version": "2022-09-01"}).status_code == 200


def test_list_pages_with_next_link(server: ServerProcess) -> None:
    group = make_group(server)
    with server.client() as c:
        for i in range(5):
            c.put(cluster_path(server, group, f"page{i}"), params=CC_API, json=cluster_body()).raise_for_status()
        url = f"{group_path(server, group)}/providers/Microsoft.Kubernetes/connectedClusters"
        r = c.get(url, params={**CC_API, "$top": "2"})
        names = [x["name"] for x in r.json()["value"]]
        while "nextLink" in r.json():
            assert r.json()["nextLink"].startswith(server.url)
            r = c.get(r.json()["nextLink"])
            names += [x["name"] for x in r.json()["value"]]
        assert names == [f"page{i}" for i in range(5)]


def test_provider_lists_newest_stable_api_version_first(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.get(f"/subscriptions/{server.admin['subscription']}/providers/Microsoft.Kubernetes", params=RG_API)
        body = r.json()
        assert body["registrationState"] == "Registered"
        cc = next(t for t in body["resourceTypes"] if t["resourceType"] == "connectedClusters")
        assert cc["apiVersions"][0] == "2026-05-01"
        assert "East US" in cc["locations"]
        ops = c.get("/providers/Microsoft.Kubernetes/operations", params=CC_API).json()["value"]
        assert any(o["name"] == "Microsoft.Kubernetes/connectedClusters/read" for o in ops)


def test_metadata_endpoints_for_cloud_registration(server: ServerProcess) -> None:
    r = httpx.get(f"{server.url}/metadata/endpoints", params={"api-version": "2022-09-01"}, verify=server.ca)
    body = r.json()
    assert body["name"] and body["resourceManager"] == server.url + "/"
    assert body["authentication"]["loginEndpoint"] == server.url
    assert body["authentication"]["audiences"][0] == server.admin["audience"]
    assert isinstance(body["suffixes"], dict)
    assert body["dataplaneEndpoints"]["arcHybridIdentityServiceEndpoint"] == server.url + "/his"


def test_list_cluster_user_credential_returns_a_relay_kubeconfig_and_a_cluster_bound_token(
    server: ServerProcess,
) -> None:
    group = make_group(server)
    with server.client() as c:
        c.put(cluster_path(server, group, "cc"), params=CC_API, json=cluster_body()).raise_for_status()
        path = f"{cluster_path(server, group, 'cc')}/listClusterUserCredential"
        r = c.post(path, params=CC_API, json={"authenticationMethod": "AAD", "clientProxy": False})
        assert r.status_code == 200, r.text
        body = r.json()
        kubeconfig = yaml.safe_load(base64.b64decode(body["kubeconfigs"][0]["value"]))
        cluster_id = cluster_path(server, group, "cc")
        assert kubeconfig["clusters"][0]["cluster"]["server"] == f"{server.url}/relay/v1{cluster_id}"
        assert base64.b64decode(kubeconfig["clusters"][0]["cluster"]["certificate-authority-data"]).startswith(
            b"-----BEGIN CERTIFICATE-----"
        )
        assert kubeconfig["users"][0]["user"]["exec"]["args"][0] == "get-token"
        hybrid = body["hybridConnectionConfig"]
        claims = jwt.decode(hybrid["token"], options={"verify_signature": False})
        assert claims["xms_mirid"] == cluster_id and claims["aud"] != server.admin["audience"]
        assert hybrid["expirationTime"] == claims["exp"] and hybrid["hybridConnectionName"] == cluster_id
        # Token mode needs the local proxy; a cluster that does not exist is a 404.
        r = c.post(path, params=CC_API, json={"authenticationMethod": "Token", "clientProxy": False})
        assert r.status_code == 400 and "proxy" in r.json()["error"]["message"]
        r = c.post(path, params=CC_API, json={"authenticationMethod": "Token", "clientProxy": True})
        assert r.status_code == 200 and "token" in r.json()["hybridConnectionConfig"]
        r = c.post(
            f"{cluster_path(server, group, 'missing')}/listClusterUserCredential",
            params=CC_API,
            json={"authenticationMethod": "Token", "clientProxy": True},
        )
        assert r.status_code == 404


def test_group_delete_removes_its_clusters_asynchronously(server: ServerProcess) -> None:
    group = make_group(server)
    with server.client() as c:
        c.put(cluster_path(server, group, "gone"), params=CC_API, json=cluster_body()).raise_for_status()
        r = c.delete(group_path(server, group), params=RG_API)
        assert r.status_code == 202 and r.headers["Retry-After"]
        location = r.headers["Location"]
        deadline = time.monotonic() + 15
        while (poll := c.get(location)).status_code == 202:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert poll.status_code == 200
        assert c.head(group_path(server, group), params=RG_API).status_code == 404
        listed = c.get(f"/subscriptions/{server.admin['subscription']}/resources", params=RG_API).json()["value"]
        assert not [x for x in listed if f"/resourceGroups/{group}/" in x["id"]]


def test_generic_resource_list_pages_with_next_link_keeping_filter_and_expand(server: ServerProcess) -> None:
    """``az resource list`` follows nextLink: every page at most ``$top``, the same ``$filter`` and ``$expand`` on each
    page, every resource once, in id order; a bad ``$skipToken`` is a 400."""
    group = make_group(server)
    names = sorted(unique(f"gp{i}") for i in range(5))
    with server.client() as c:
        for name in names:
            c.put(cluster_path(server, group, name), params=CC_API, json=cluster_body()).raise_for_status()
        path = f"/subscriptions/{server.admin['subscription']}/resourceGroups/{group}/resources"
        query = {**RG_API, "$top": "2", "$expand": "createdTime",
                 "$filter": "resourceType eq 'Microsoft.Kubernetes/connectedClusters'"}  # fmt: skip
        r = c.get(path, params=query)
        seen, pages = [], 0
        while True:
            assert r.status_code == 200, r.text
            page = r.json()["value"]
            assert len(page) <= 2 and all("createdTime" in x for x in page), page
            seen += [x["name"] for x in page]
            pages += 1
            if "nextLink" not in r.json():
                break
            assert "%24filter=" in r.json()["nextLink"] and "%24expand=" in r.json()["nextLink"]
            r = c.get(r.json()["nextLink"])
        assert seen == names and pages == 3
        whole = c.get(path, params=RG_API).json()
        assert [x["name"] for x in whole["value"]] == names and "nextLink" not in whole
        bad = c.get(path, params={**RG_API, "$skipToken": "%%%"})
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidSkipToken"


def test_resource_groups_page_with_next_link(fresh_server: ServerProcess) -> None:
    server = fresh_server.start()
    names = sorted(unique(f"pg{i}") for i in range(5))
    for name in names:
        make_group(server, name)
    with server.client() as c:
        r = c.get(f"/subscriptions/{server.admin['subscription']}/resourcegroups", params={**RG_API, "$top": "2"})
        seen = [g["name"] for g in r.json()["value"]]
        pages = 1
        while "nextLink" in r.json():
            r = c.get(r.json()["nextLink"])
            seen += [g["name"] for g in r.json()["value"]]
            pages += 1
        assert seen == names and pages == 3
        # A filtered list keeps its filter on the next pages: two of the five tagged, one a page, only they.
        for name in (names[1], names[3]):
            c.put(group_path(server, name), params=RG_API, json={"location": "eastus", "tags": {"paged": "yes"}})
        r = c.get(f"/subscriptions/{server.admin['subscription']}/resourcegroups",
                  params={**RG_API, "$top": "1", "$filter": "tagName eq 'paged' and tagValue eq 'yes'"})  # fmt: skip
        tagged = [g["name"] for g in r.json()["value"]]
        while "nextLink" in r.json():
            r = c.get(r.json()["nextLink"])
            tagged += [g["name"] for g in r.json()["value"]]
        assert tagged == [names[1], names[3]]
        bad = c.get(
            f"/subscriptions/{server.admin['subscription']}/resourcegroups", params={**RG_API, "$skipToken": "%%%"}
        )
        assert bad.status_code == 400 and bad.json()["error"]["code"] == "InvalidSkipToken"
