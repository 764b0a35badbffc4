"""Role assignments under hostile input (issue 11, finding 6): a reused name is a 409, never a 500; scopes are stored
in one spelling, and forms that only look like a scope (``..``, a name below a group that is no resource id) are
refused. And the smaller leaks of finding 7: which groups exist, and a Location built from the Host header."""

from __future__ import annotations

import uuid

import pytest

from tests.api.helpers import (
    AUTHZ_API,
    CC_API,
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
from tests.support.signin import DIRECTORY, DIRECTORY_VERSION, new_group, new_user

pytestmark = pytest.mark.e2e
ASSIGNMENTS = "/providers/Microsoft.Authorization/roleAssignments"


def _body(principal_id: str) -> dict[str, object]:
    return {"properties": {"roleDefinitionId": READER, "principalId": principal_id}}


def test_reusing_the_name_of_another_assignment_is_a_conflict(db_server: ServerProcess) -> None:
    # On both backends: PostgreSQL reports the duplicate key at commit, SQLite at the insert.
    server = db_server
    group = make_group(server)
    principal = make_principal(server)
    with server.client() as c:
        root = c.get(ASSIGNMENTS, params=AUTHZ_API).json()["value"]
        admin = next(a for a in root if a["properties"]["scope"] == "/")
        r = c.put(f"{group_path(server, group)}{ASSIGNMENTS}/{admin['name']}", params=AUTHZ_API,
                  json=_body(principal.object_id))  # fmt: skip
        assert r.status_code == 409, r.text
        assert r.json()["error"]["code"] == "RoleAssignmentUpdateNotPermitted"
        # Nothing was overwritten: the admin still holds its root assignment.
        assert c.get(f"{ASSIGNMENTS}/{admin['name']}", params=AUTHZ_API).json()["properties"]["scope"] == "/"
        # The same PUT twice is idempotent, not a conflict.
        name = str(uuid.uuid4())
        for _ in range(2):
            r = c.put(f"{group_path(server, group)}{ASSIGNMENTS}/{name}", params=AUTHZ_API,
                      json=_body(principal.object_id))  # fmt: skip
            assert r.status_code == 201, r.text


@pytest.mark.parametrize("tail", ["/%2E%2E/{other}", "/x", "/%2E/x", "/providers/x"])
def test_non_canonical_scopes_are_refused(server: ServerProcess, tail: str) -> None:
    group, other = make_group(server), make_group(server)
    principal = make_principal(server)
    scope = group_path(server, group) + tail.format(other=other)
    with server.client() as c:
        r = c.put(f"{scope}{ASSIGNMENTS}/{uuid.uuid4()}", params=AUTHZ_API, json=_body(principal.object_id))
        assert r.status_code == 400, r.text
        assert r.json()["error"]["code"] == "InvalidScope"


def test_a_scope_is_stored_in_the_directorys_spelling(server: ServerProcess) -> None:
    group = make_group(server)
    principal = make_principal(server)
    shouted = f"/SUBSCRIPTIONS/{server.admin['subscription'].upper()}/RESOURCEGROUPS/{group.upper()}"
    with server.client() as c:
        r = c.put(f"{shouted}{ASSIGNMENTS}/{uuid.uuid4()}", params=AUTHZ_API, json=_body(principal.object_id))
        assert r.status_code == 201, r.text
        assert r.json()["properties"]["scope"] == group_path(server, group)


def test_a_reader_elsewhere_cannot_tell_an_existing_group_from_a_missing_one(server: ServerProcess) -> None:
    mine, other = make_group(server), make_group(server)
    reader = make_principal(server, READER, group_path(server, mine))
    with server.client(server.token(reader.app_id, reader.secret)) as c:
        assert c.get(f"{group_path(server, mine)}/resources", params=RG_API).status_code == 200
        existing = c.get(f"{group_path(server, other)}/resources", params=RG_API)
        missing = c.get(f"{group_path(server, unique('rg'))}/resources", params=RG_API)
    assert existing.status_code == missing.status_code == 403, (existing.text, missing.text)
    assert existing.json()["error"]["code"] == missing.json()["error"]["code"] == "AuthorizationFailed"


def test_location_comes_from_the_configured_url_not_the_host_header(server: ServerProcess) -> None:
    group = make_group(server)
    seen = []
    with server.client() as c:
        for _ in range(5):  # an operation polled at once is still in progress (almost always on the first try)
            r = c.put(cluster_path(server, group, unique("cc")), params=CC_API, json=cluster_body())
            assert r.status_code == 201, r.text
            result = r.headers["Azure-AsyncOperation"].replace("/operationStatuses/", "/operationResults/")
            poll = c.get(result, headers={"Host": "evil.example"})
            if poll.status_code == 202:
                seen.append(poll.headers["Location"])
                break
    assert seen, "no operation was seen in progress"
    assert seen[0].startswith(server.url + "/subscriptions/"), seen


def test_assignments_name_the_principal_type_and_refuse_a_wrong_one(server: ServerProcess) -> None:
    group = make_group(server)
    scope = group_path(server, group)
    with server.client() as c:
        user, _ = new_user(c)
        people = new_group(c)
        app = make_principal(server)
        made: dict[str, str] = {}
        for oid, kind in ((user["id"], "User"), (people["id"], "Group"), (app.object_id, "ServicePrincipal")):
            for wrong in {"User", "Group", "ServicePrincipal", "ForeignGroup"} - {kind}:
                r = c.put(f"{scope}{ASSIGNMENTS}/{uuid.uuid4()}", params=AUTHZ_API,
                          json={"properties": {**_body(oid)["properties"], "principalType": wrong}})  # fmt: skip
                assert r.status_code == 400, r.text
                assert r.json()["error"]["code"] == "UnmatchedPrincipalType"
                assert f"has type '{kind}'" in r.json()["error"]["message"]
            name = str(uuid.uuid4())
            r = c.put(f"{scope}{ASSIGNMENTS}/{name}", params=AUTHZ_API,
                      json={"properties": {**_body(oid)["properties"], "principalType": kind}})  # fmt: skip
            assert r.status_code == 201 and r.json()["properties"]["principalType"] == kind, r.text
            assert c.get(f"{scope}{ASSIGNMENTS}/{name}", params=AUTHZ_API).json()["properties"]["principalType"] == kind
            made[oid] = kind
        bogus = c.put(f"{scope}{ASSIGNMENTS}/{uuid.uuid4()}", params=AUTHZ_API,
                      json={"properties": {**_body(user["id"])["properties"], "principalType": "Robot"}})  # fmt: skip
        assert bogus.status_code == 400 and bogus.json()["error"]["code"] == "InvalidPrincipalType"
        listed = c.get(f"{scope}{ASSIGNMENTS}", params=AUTHZ_API).json()["value"]
        shown = {a["properties"]["principalId"]: a["properties"]["principalType"] for a in listed}
        assert {oid: shown[oid] for oid in made} == made
        for kind, oid in (("users", user["id"]), ("groups", people["id"])):  # the session's server is shared
            assert c.delete(f"{DIRECTORY}/{kind}/{oid}", params=DIRECTORY_VERSION).status_code == 204
