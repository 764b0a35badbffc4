"""The pure parts of GitOps: a configuration's rules (fluxrules), the Flux objects config-agent writes and the
compliance it reads back (fluxobjects)."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from halyard.agent import fluxobjects
from halyard.controlplane.configuration import fluxrules
from halyard.core.errors import InvalidRequest

pytestmark = pytest.mark.unit


def git(url: str = "https://git.example/r.git", **ref: str) -> dict[str, Any]:
    return {"gitRepository": {"url": url, "repositoryRef": ref or {"branch": "main"}}}


def check(props: dict[str, Any], protected: dict[str, str] | None = None) -> dict[str, Any]:
    return fluxrules.checked(props, "cfg", protected or {}, None)


@pytest.mark.parametrize(
    ("props", "protected", "code", "words"),
    [
        (git("ftp://x/r.git"), {}, "InvalidUrl", "not a git URL"),
        (git("not a url"), {}, "InvalidUrl", "not a git URL"),
        ({"sourceKind": "Bucket"}, {}, "MissingSource", "needs properties.bucket"),
        ({}, {}, "MissingSource", "needs properties.gitRepository"),
        ({**git(), "bucket": {"url": "https://s3"}}, {}, "InvalidFluxConfiguration", "one source"),
        ({"gitRepository": {"url": "https://x/r"}}, {}, "InvalidFluxConfiguration", "branch, tag, semver or commit"),
        (git(branch="a", tag="b"), {}, "InvalidFluxConfiguration", "one of branch, tag or semver"),
        (git(commit="xyz"), {}, "InvalidFluxConfiguration", "hexadecimal"),
        ({**git(), "kustomizations": {"Bad_Name": {}}}, {}, "InvalidKustomizationName", "invalid"),
        ({**git(), "kustomizations": {"a": {"dependsOn": ["b"]}}}, {}, "InvalidDependsOn", "not a kustomization"),
        ({**git(), "kustomizations": {"a": {"dependsOn": ["a"]}}}, {}, "InvalidDependsOn", "a -> a"),
        (
            {**git(), "kustomizations": {"a": {"dependsOn": ["c"]}, "b": {"dependsOn": ["a"]}, "c": {"dependsOn": ["b"]}}},
            {}, "InvalidDependsOn", "cycle",
        ),
        ({**git(), "kustomizations": {"a": {"path": "../etc"}}}, {}, "InvalidFluxConfiguration", "without '..'"),
        (git("https://x/r"), {"sshPrivateKey": base64.b64encode(b"k").decode()}, "InvalidFluxConfiguration", "ssh"),
        (git("ssh://git@x/r"), {"sshPrivateKey": "not base64!"}, "InvalidFluxConfiguration", "base64"),
        ({"gitRepository": {"url": "https://x/r", "repositoryRef": {"branch": "m"}, "httpsUser": "u"}}, {},
         "InvalidFluxConfiguration", "go together"),
        ({"sourceKind": "AzureBlob", "azureBlob": {}}, {}, "InvalidFluxConfiguration", "Azure storage"),
        ({"ociRepository": {"url": "https://x/r"}}, {}, "InvalidUrl", "oci://"),
        ({"bucket": {"url": "https://s3.example"}}, {}, "InvalidFluxConfiguration", "bucketName"),
    ],
)  # fmt: skip
def test_bad_configurations_are_refused_naming_the_rule(
    props: dict[str, Any], protected: dict[str, str], code: str, words: str
) -> None:
    with pytest.raises(InvalidRequest) as refused:
        check(props, protected)
    assert refused.value.code == code and words in str(refused.value), refused.value


def test_defaults_are_filled_and_scp_like_urls_are_ssh() -> None:
    props = check({**git("git@github.com:org/repo.git"), "kustomizations": {"apps": None}})
    assert props["scope"] == "cluster" and props["namespace"] == "default" and props["sourceKind"] == "GitRepository"
    assert props["gitRepository"]["syncIntervalInSeconds"] == 600
    assert props["kustomizations"]["apps"] == {
        "name": "apps", "path": "", "dependsOn": [], "syncIntervalInSeconds": 600, "timeoutInSeconds": 600,
        "prune": False, "force": False, "wait": True,
    }  # fmt: skip


def test_scope_and_namespace_cannot_change() -> None:
    old = check(git())
    with pytest.raises(InvalidRequest) as refused:
        fluxrules.checked({**git(), "namespace": "other"}, "cfg", {}, old)
    assert refused.value.code == "PropertyChangeNotAllowed"


def test_a_source_control_configuration_runs_as_one_source_and_one_kustomization() -> None:
    props = {"repositoryUrl": "https://x/r.git", "operatorNamespace": "team", "operatorParams": "--git-branch=dev "
             "--git-path=deploy/"}  # fmt: skip
    entry = fluxrules.engine_entry("sourceControlConfiguration", "legacy", "/id", "etag1", props, {})
    assert entry["source"]["repositoryRef"] == {"branch": "dev"} and entry["namespace"] == "team"
    assert [(k["objectName"], k["path"], k["prune"]) for k in entry["kustomizations"]] == [("legacy", "deploy", True)]


def entry(**changes: Any) -> dict[str, Any]:
    props = check({**git(), "namespace": "flux-system", "kustomizations": {"a": {"path": "a"},
                   "b": {"path": "./b", "dependsOn": ["a"]}}})  # fmt: skip
    return {**fluxrules.engine_entry("fluxConfiguration", "cfg", "/id", "e1", props, {}), **changes}


def test_manifests_name_objects_as_arc_does_and_chain_depends_on() -> None:
    source, a, b = fluxobjects.manifests(entry(), has_secret=True)
    assert (source["apiVersion"], source["kind"], source["metadata"]["name"]) == (
        "source.toolkit.fluxcd.io/v1", "GitRepository", "cfg")  # fmt: skip
    assert source["spec"]["secretRef"] == {"name": "cfg-auth"} and source["spec"]["interval"] == "600s"
    assert (a["metadata"]["name"], a["spec"]["path"]) == ("cfg-a", "./a")
    assert (b["metadata"]["name"], b["spec"]["path"], b["spec"]["dependsOn"]) == ("cfg-b", "./b", [{"name": "cfg-a"}])
    assert b["metadata"]["labels"][fluxobjects.CONFIG_LABEL] == "cfg"


def test_protected_settings_become_the_secret_flux_reads() -> None:
    e = entry(source={"url": "https://x", "httpsUser": "me"},
              configurationProtectedSettings={"httpsKey": base64.b64encode(b"tok").decode()})  # fmt: skip
    assert fluxobjects.secret_data(e) == {"username": "me", "password": "tok"}


def obj(ready: str | None, generation: int = 1, observed: int = 1, suspend: bool = False) -> dict[str, Any]:
    conditions = [{"type": "Ready", "status": ready, "message": "m"}] if ready else []
    return {"metadata": {"generation": generation}, "spec": {"suspend": suspend},
            "status": {"observedGeneration": observed, "conditions": conditions}}  # fmt: skip


@pytest.mark.parametrize(
    ("body", "state"),
    [(None, "Pending"), (obj(None), "Pending"), (obj("True"), "Compliant"), (obj("False"), "Non-Compliant"),
     (obj("Unknown"), "Pending"), (obj("True", generation=2), "Pending"), (obj("True", suspend=True), "Suspended")],
)  # fmt: skip
def test_an_objects_compliance_comes_from_its_ready_condition(body: dict[str, Any] | None, state: str) -> None:
    assert fluxobjects.object_compliance(body) == state


def test_the_rollup_is_the_worst_state() -> None:
    assert fluxobjects.rollup(["Compliant", "Pending", "Non-Compliant"], False) == "Non-Compliant"
    assert fluxobjects.rollup(["Compliant", "Pending"], False) == "Pending"
    assert fluxobjects.rollup(["Compliant"], False) == "Compliant"
    assert fluxobjects.rollup(["Compliant"], True) == "Suspended"
    assert fluxobjects.rollup([], False) == "Unknown"


def test_an_ssh_url_without_a_key_gets_a_generated_one_in_its_secret() -> None:
    e = entry(source={"url": "git@github.com:org/repo.git"}, configurationProtectedSettings={})
    assert fluxobjects.needs_generated_key(e)
    assert fluxobjects.secret_data(e, ("PRIVATE", "ssh-ed25519 AAAA")) == {
        "identity": "PRIVATE",
        "identity.pub": "ssh-ed25519 AAAA",
    }
    given = entry(source={"url": "ssh://git@x/r"}, configurationProtectedSettings={"sshPrivateKey": "S0VZ"})
    assert not fluxobjects.needs_generated_key(given) and fluxobjects.secret_data(given) == {"identity": "KEY"}
    assert not fluxobjects.needs_generated_key(entry(source={"url": "ssh://git@x/r", "localAuthRef": "mine"}))
