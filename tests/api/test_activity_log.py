"""The activity log API as Azure Monitor's: every accepted write and delete of the pipeline as Started, Accepted
and Succeeded or Failed events under one correlation id, in its caller's name (a user by sign-in name, a service
principal by app id), listed newest first by resource, group, provider or correlation id, a page at a time; a
caller sees only the events of what they may read; filters outside Azure's grammar or window are a 400."""

from __future__ import annotations

import datetime as dt
import json
import time
import uuid
from typing import Any

import httpx
import pytest

from tests.api.helpers import (
    AUTHZ_API,
    CC_API,
    OWNER,
    READER,
    RG_API,
    cluster_body,
    cluster_path,
    group_path,
    make_group,
    make_principal,
)
from tests.support.processes import ServerProcess
from tests.support.signin import Login, new_user

pytestmark = pytest.mark.e2e
MONITOR = {"api-version": "2015-04-01"}


def _values(server: ServerProcess) -> str:
    return f"/subscriptions/{server.admin['subscription']}/providers/Microsoft.Insights/eventtypes/management/values"


def _window(minutes: int = 10) -> str:
    now = dt.datetime.now(dt.UTC)
    start = (now - dt.timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return f"eventTimestamp ge '{start}'"


def _events(client: httpx.Client, server: ServerProcess, clause: str, **params: str) -> list[dict[str, Any]]:
    r = client.get(_values(server), params={**MONITOR, "$filter": f"{_window()} and {clause}", **params})
    assert r.status_code == 200, r.text
    return list(r.json()["value"])


def _settle(client: httpx.Client, r: httpx.Response) -> None:
    url = r.headers["Azure-AsyncOperation"]
    deadline = time.monotonic() + 20
    while client.get(url).json()["status"] == "InProgress":
        assert time.monotonic() < deadline, f"{url} never finished"
        time.sleep(0.05)


def test_a_cluster_write_and_delete_are_in_the_log_in_the_callers_name(server: ServerProcess) -> None:
    group = make_group(server)
    path = cluster_path(server, group, "logged")
    with server.client() as c:
        created = c.put(path, params=CC_API, json=cluster_body())
        assert created.status_code == 201, created.text
        _settle(c, created)
        events = _events(c, server, f"resourceUri eq '{path}'")
        assert [e["status"]["value"] for e in events] == ["Succeeded", "Accepted", "Started"]  # newest first
        assert len({e["correlationId"] for e in events}) == 1
        first = events[-1]
        assert first["caller"] == server.admin["clientId"]
        assert first["operationName"]["value"] == "Microsoft.Kubernetes/connectedClusters/write"
        assert first["authorization"] == {"action": "Microsoft.Kubernetes/connectedClusters/write", "scope": path}
        assert first["resourceGroupName"] == group and first["resourceId"] == path
        assert first["category"]["value"] == "Administrative" and first["level"] == "Informational"
        assert first["resourceProviderName"]["value"] == "Microsoft.Kubernetes"
        assert first["eventName"]["value"] == "BeginRequest" and events[0]["eventName"]["value"] == "EndRequest"
        assert events[1]["subStatus"]["value"] == "Created" and events[1]["properties"]["statusCode"] == "Created"
        # Its operation id is the correlation id: what the client polled, it finds in the log.
        assert (
            created.headers["Azure-AsyncOperation"].split("/operationStatuses/")[1].startswith(first["correlationId"])
        )

        # A write refused after authorisation (a stale ETag) is there as Failed, with ARM's error.
        stale = c.put(path, params=CC_API, json=cluster_body(), headers={"If-Match": '"stale"'})
        assert stale.status_code == 412
        failed = _events(c, server, f"resourceUri eq '{path}'", **{"$select": "status,subStatus,properties,level"})
        assert failed[0]["status"]["value"] == "Failed" and failed[0]["level"] == "Error"
        assert failed[0]["subStatus"]["value"] == "PreconditionFailed"
        assert "PreconditionFailed" in failed[0]["properties"]["statusMessage"]
        assert set(failed[0]) == {"status", "subStatus", "properties", "level"}  # $select

        deleted = c.delete(path, params=CC_API)
        assert deleted.status_code == 202
        _settle(c, deleted)
        correlation = deleted.headers["Azure-AsyncOperation"].split("/operationStatuses/")[1].split("?")[0]
        by_id = _events(c, server, f"correlationId eq '{correlation}'")
        assert [e["status"]["value"] for e in by_id] == ["Succeeded", "Accepted", "Started"]
        assert {e["operationName"]["value"] for e in by_id} == {"Microsoft.Kubernetes/connectedClusters/delete"}

        # The group's view holds the group's own creation and the cluster's events; the provider's view too.
        in_group = _events(c, server, f"resourceGroupName eq '{group}'")
        names = {e["operationName"]["value"] for e in in_group}
        assert "Microsoft.Resources/subscriptions/resourceGroups/write" in names
        assert "Microsoft.Kubernetes/connectedClusters/delete" in names
        by_provider = _events(c, server, "resourceProvider eq 'Microsoft.Kubernetes'")
        assert {e["correlationId"] for e in by_id} <= {e["correlationId"] for e in by_provider}


def test_a_user_is_named_by_sign_in_name_and_a_reader_sees_only_their_group(server: ServerProcess) -> None:
    mine, other = make_group(server), make_group(server)
    with server.client() as admin:
        user, password = new_user(admin)
        for group, role in ((mine, OWNER), (other, None)):
            if role:
                r = admin.put(
                    f"{group_path(server, group)}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}",
                    params=AUTHZ_API,
                    json={"properties": {"roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/"
                                         f"{role}", "principalId": user["id"]}},
                )  # fmt: skip
                assert r.status_code == 201, r.text
        theirs = admin.put(cluster_path(server, other, "not-yours"), params=CC_API, json=cluster_body())
        assert theirs.status_code == 201
    token = Login(server).sign_in(user["userPrincipalName"], password)["access_token"]
    with server.client(token) as c:
        r = c.patch(group_path(server, mine), params=RG_API, json={"tags": {"who": "me"}})
        assert r.status_code == 200, r.text
        events = _events(c, server, f"resourceUri eq '{group_path(server, mine)}'", **{"$select": "caller,status"})
        assert events[0] == {"caller": user["userPrincipalName"], "status": {"value": "Succeeded",
                                                                          "localizedValue": "Succeeded"}}  # fmt: skip
        # Another group's events: 403 (nothing learnt); the subscription's: only their own group's.
        r = c.get(_values(server), params={**MONITOR, "$filter": f"{_window()} and resourceGroupName eq '{other}'"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "AuthorizationFailed"
        r = c.get(_values(server), params={**MONITOR, "$filter": _window()})
        assert r.status_code == 200
        seen = {e["resourceGroupName"].lower() for e in r.json()["value"]}
        assert seen == {mine.lower()}


def test_a_reader_may_read_the_log_and_no_role_may_not(server: ServerProcess) -> None:
    group = make_group(server)
    scope = group_path(server, group)
    reader = make_principal(server, f"/providers/Microsoft.Authorization/roleDefinitions/{READER}", scope)
    nobody = make_principal(server)
    clause = f"{_window()} and resourceGroupName eq '{group}'"
    with server.client(server.token(reader.app_id, reader.secret)) as c:
        r = c.get(_values(server), params={**MONITOR, "$filter": clause})
        assert r.status_code == 200 and r.json()["value"], r.text
    with server.client(server.token(nobody.app_id, nobody.secret)) as c:
        r = c.get(_values(server), params={**MONITOR, "$filter": clause})
        assert r.status_code == 403


def test_pages_follow_next_link_newest_first(server: ServerProcess) -> None:
    group = make_group(server)
    with server.client() as c:
        for i in range(51):  # 102 events with the creation's two: more than a page of 100
            assert c.patch(group_path(server, group), params=RG_API, json={"tags": {"n": str(i)}}).status_code == 200
        r = c.get(_values(server), params={**MONITOR, "$filter": f"{_window()} and resourceGroupName eq '{group}'"})
        first = r.json()
        assert len(first["value"]) == 100 and "nextLink" in first
        second = c.get(first["nextLink"]).json()
        assert len(second["value"]) == 4 and "nextLink" not in second
        stamps = [e["eventTimestamp"] for e in first["value"] + second["value"]]
        assert stamps == sorted(stamps, reverse=True)
        assert len({e["eventDataId"] for e in first["value"] + second["value"]}) == 104


@pytest.mark.parametrize(
    ("filter_", "says"),
    [
        (None, "required"),
        ("resourceGroupName eq 'x'", "eventTimestamp ge"),
        ("eventTimestamp ge '2000-01-01T00:00:00Z'", "90 days"),
        ("eventTimestamp ge 'yesterday'", "not a valid eventTimestamp"),
        ("{w} and eventTimestamp le '2001-01-01T00:00:00Z'", "before its start"),
        ("{w} and resourceGroupName eq 'a' and correlationId eq 'b'", "At most one"),
        ("{w} and name eq 'x'", "cannot be filtered on"),
        ("{w} or resourceGroupName eq 'x'", "joined with 'and'"),
        ("{w} and status eq 'Maybe'", "status is one of"),
        ("{w} and resourceGroupName eq '" + "x" * 5000 + "'", "longer than"),
    ],
)
def test_filters_outside_azures_grammar_are_a_400(server: ServerProcess, filter_: str | None, says: str) -> None:
    params = dict(MONITOR)
    if filter_ is not None:
        params["$filter"] = filter_.replace("{w}", _window())
    with server.client() as c:
        r = c.get(_values(server), params=params)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["code"] == "InvalidFilterInQueryString" and says in r.json()["error"]["message"]


def test_bad_select_version_token_and_subscription(server: ServerProcess) -> None:
    with server.client() as c:
        r = c.get(_values(server), params={**MONITOR, "$filter": _window(), "$select": "caller,secrets"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidSelect"
        r = c.get(_values(server), params={"api-version": "2099-01-01", "$filter": _window()})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidApiVersionParameter"
        r = c.get(_values(server), params={**MONITOR, "$filter": _window(), "$skipToken": "!!"})
        assert r.status_code == 400 and r.json()["error"]["code"] == "InvalidSkipToken"
        missing = f"/subscriptions/{uuid.uuid4()}/providers/Microsoft.Insights/eventtypes/management/values"
        r = c.get(missing, params={**MONITOR, "$filter": _window()})
        assert r.status_code == 404 and r.json()["error"]["code"] == "SubscriptionNotFound"
    with httpx.Client(base_url=server.url, verify=server.ca) as anonymous:
        assert anonymous.get(_values(server), params={**MONITOR, "$filter": _window()}).status_code == 401


def test_role_assignments_registrations_and_credentials_handed_out_are_logged(server: ServerProcess) -> None:
    """What changes who may do what, and who was given a way into a cluster, is in the log (never a credential)."""
    group = make_group(server)
    scope = group_path(server, group)
    cluster = cluster_path(server, group, "reached")
    sub = f"/subscriptions/{server.admin['subscription']}"
    with server.client() as c:
        assert c.put(cluster, params=CC_API, json=cluster_body()).status_code == 201
        handed = c.post(f"{cluster}/listClusterUserCredential", params=CC_API,
                        json={"authenticationMethod": "AAD", "clientProxy": False})  # fmt: skip
        assert handed.status_code == 200
        principal = make_principal(server)
        assignment = f"{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
        role = f"/providers/Microsoft.Authorization/roleDefinitions/{READER}"
        body = {"properties": {"roleDefinitionId": role, "principalId": principal.object_id}}
        assert c.put(assignment, params=AUTHZ_API, json=body).status_code == 201
        assert c.delete(assignment, params=AUTHZ_API).status_code == 200
        assert c.post(f"{sub}/providers/Microsoft.Kubernetes/register", params=RG_API).status_code == 200

        credential = _events(c, server, f"resourceUri eq '{cluster}'")
        action = "Microsoft.Kubernetes/connectedClusters/listClusterUserCredential/action"
        handed_out = [e for e in credential if e["operationName"]["value"] == action]
        assert [e["status"]["value"] for e in handed_out] == ["Succeeded", "Started"]  # the write's may end later
        assert handed.json()["hybridConnectionConfig"]["token"] not in json.dumps(credential)
        granted = _events(c, server, f"resourceUri eq '{assignment}'")
        assert [(e["operationName"]["value"], e["status"]["value"]) for e in granted] == [
            ("Microsoft.Authorization/roleAssignments/delete", "Succeeded"),
            ("Microsoft.Authorization/roleAssignments/delete", "Started"),
            ("Microsoft.Authorization/roleAssignments/write", "Succeeded"),
            ("Microsoft.Authorization/roleAssignments/write", "Started"),
        ]
        assert granted[0]["resourceGroupName"] == group
        registered = _events(c, server, f"resourceUri eq '{sub}/providers/Microsoft.Kubernetes'")
        assert registered[0]["operationName"]["value"] == "Microsoft.Kubernetes/register/action"
