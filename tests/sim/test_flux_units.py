"""The pure parts of the simulated Flux controllers: Go durations, conditions, ref resolution and semver, inventory
ids and apply order, the generated kustomization."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from halyard.sim.flux import generator, gitref, inventory
from halyard.sim.flux import status as st
from halyard.sim.flux.crds import definitions
from halyard.sim.flux.kustomize import _health, timeout_of


def test_go_durations() -> None:
    assert st.parse_duration("1m30s") == 90
    assert st.parse_duration("500ms") == 0.5
    assert st.parse_duration("1h") == 3600
    assert st.parse_duration("1.5s") == 1.5
    for bad in ("10", "1 m", "m", "1d", ""):
        with pytest.raises(ValueError):
            st.parse_duration(bad)
    assert [st.format_duration(s) for s in (30, 60, 90, 3600, 3723, 0.3, 1.5)] == [
        "30s", "1m0s", "1m30s", "1h0m0s", "1h2m3s", "300ms", "1.5s"]  # fmt: skip


def test_kustomization_timeout_is_never_under_30s() -> None:
    assert timeout_of({"interval": "10m"}) == 570
    assert timeout_of({"interval": "1s"}) == 30
    assert timeout_of({"interval": "10m", "timeout": "2m"}) == 120
    assert timeout_of({"interval": "10m", "timeout": "5s"}) == 30


def test_condition_transition_time_moves_only_when_the_status_changes() -> None:
    status: dict[str, object] = {}
    st.mark(status, st.ARTIFACT_IN_STORAGE, "True", "Succeeded", "a", 1, "t1")
    st.mark(status, st.READY, "Unknown", "Progressing", "b", 1, "t1")
    st.mark(status, st.READY, "Unknown", "Progressing", "b", 2, "t2")
    ready = st.get(status, st.READY)
    assert ready is not None and ready["lastTransitionTime"] == "t1" and ready["observedGeneration"] == 2
    st.mark(status, st.READY, "Unknown", "Progressing", "c", 2, "t3")  # a new message is a transition too
    assert st.get(status, st.READY)["lastTransitionTime"] == "t3"  # type: ignore[index]
    st.mark(status, st.READY, "True", "Succeeded", "d", 2, "t4")
    assert st.get(status, st.READY)["lastTransitionTime"] == "t4"  # type: ignore[index]
    st.mark(status, st.FETCH_FAILED, "True", "GitOperationFailed", "e", 2, "t4")
    st.mark(status, st.RECONCILING, "True", "Progressing", "e", 2, "t4")
    # Stalled, Reconciling, Ready first; then the newest generation, then by type.
    assert [c["type"] for c in status["conditions"]] == ["Reconciling", "Ready", "FetchFailed", "ArtifactInStorage"]  # type: ignore[attr-defined]
    st.with_retry(status)
    assert st.get(status, st.RECONCILING)["reason"] == "ProgressingWithRetry"  # type: ignore[index]
    st.delete(status, st.RECONCILING)
    assert st.get(status, st.RECONCILING) is None


LS_REMOTE = """aaa\tHEAD
aaa\trefs/heads/main
bbb\trefs/heads/dev
ccc\trefs/tags/v1.0.0
ddd\trefs/tags/v1.1.0
eee\trefs/tags/v1.1.0^{}
fff\trefs/tags/v2.0.0-rc.1
ggg\trefs/tags/v2.0.0
hhh\trefs/tags/not-a-version
"""


def test_ref_resolution_and_revisions() -> None:
    refs = gitref.parse_ls_remote(LS_REMOTE)
    assert refs["refs/tags/v1.1.0"] == "eee"  # the annotated tag's commit, not the tag object
    cases = [
        (None, gitref.Target("refs/heads/master", "", "master")),
        ({"branch": "dev"}, gitref.Target("refs/heads/dev", "bbb", "dev")),
        ({"tag": "v1.0.0"}, gitref.Target("refs/tags/v1.0.0", "ccc", "v1.0.0")),
        ({"semver": "~1.0", "tag": "v2.0.0"}, gitref.Target("refs/tags/v1.0.0", "ccc", "v1.0.0")),
        ({"name": "refs/heads/main"}, gitref.Target("refs/heads/main", "aaa", "refs/heads/main")),
        ({"commit": "abc", "branch": "dev"}, gitref.Target("refs/heads/dev", "abc", "dev", shallow=False)),
        ({"commit": "abc"}, gitref.Target("HEAD", "abc", "", shallow=False)),
    ]
    for ref, want in cases[1:]:
        assert gitref.resolve(ref, refs) == want
    with pytest.raises(gitref.RefError, match='couldn\'t find remote ref "refs/heads/master"'):
        gitref.resolve(None, refs)
    assert gitref.resolve(None, {**refs, "refs/heads/master": "m"}) == gitref.Target("refs/heads/master", "m", "master")
    with pytest.raises(gitref.RefError, match=r"no match found for semver: >=3\.0\.0"):
        gitref.resolve({"semver": ">=3.0.0"}, refs)
    assert gitref.revision("main", "aaa") == "main@sha1:aaa" and gitref.revision("", "aaa") == "sha1:aaa"


@pytest.mark.parametrize(
    ("constraint", "want"),
    [
        (">=1.0.0 <2.0.0", "v1.1.0"),
        (">=1.0.0, <2.0.0", "v1.1.0"),
        ("*", "v2.0.0"),
        ("1.x", "v1.1.0"),
        ("~1.0", "v1.0.0"),
        ("^1.0.0", "v1.1.0"),
        ("<1.0.0 || >=2.0.0", "v2.0.0"),
        (">=2.0.0-rc.0 <2.0.0", "v2.0.0-rc.1"),
        ("1.0.0", "v1.0.0"),
        (">3", None),
    ],
)
def test_semver_constraints(constraint: str, want: str | None) -> None:
    tags = ["v1.0.0", "v1.1.0", "v2.0.0-rc.1", "v2.0.0", "not-a-version", "1.0"]
    assert gitref.highest_matching(constraint, tags) == want


def test_semver_orders_pre_releases_before_the_release() -> None:
    assert gitref.highest_matching(">=1.0.0-0", ["1.0.0-alpha", "1.0.0-beta.2", "1.0.0-beta.11"]) == "1.0.0-beta.11"
    with pytest.raises(ValueError):
        gitref.highest_matching("~>> nonsense", ["1.0.0"])


def test_inventory_ids_order_and_stale_objects() -> None:
    cm = inventory.Ref("", "ConfigMap", "apps", "settings", "v1")
    role = inventory.Ref("rbac.authorization.k8s.io", "ClusterRole", "", "system:reader", "v1")
    assert cm.id == "apps_settings__ConfigMap" and cm.subject == "ConfigMap/apps/settings"
    assert (
        role.id == "_system__reader_rbac.authorization.k8s.io_ClusterRole"
        and role.subject == "ClusterRole/system:reader"
    )
    assert inventory.parse_id(role.id, "v1") == role
    assert inventory.parse_id("ns_my_name_apps_Deployment", "v1") == inventory.Ref(
        "apps", "Deployment", "ns", "my_name", "v1"
    )
    deploy = inventory.Ref("apps", "Deployment", "apps", "web", "v1")
    ns = inventory.Ref("", "Namespace", "", "apps", "v1")
    gadget = inventory.Ref("example.com", "Gadget", "apps", "g", "v1")
    webhook = inventory.Ref("admissionregistration.k8s.io", "ValidatingWebhookConfiguration", "", "w", "v1")
    ordered = sorted([webhook, gadget, deploy, cm, ns, role], key=inventory.sort_key)
    assert ordered == [ns, role, cm, deploy, gadget, webhook]
    assert [inventory.stage(r) for r in (ns, role, cm)] == [0, 0, 2]
    old = inventory.entries([ns, cm, deploy])
    assert inventory.stale(old, inventory.entries([cm])) == [deploy, ns]  # deletion runs in reverse apply order


def test_generated_kustomization(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n")
    (tmp_path / "notes.txt").write_text("ignored")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: b}\n")
    (tmp_path / "base").mkdir()
    (tmp_path / "base" / "kustomization.yaml").write_text("resources: []\n")
    (tmp_path / "base" / "c.yaml").write_text("kind: ConfigMap\n")
    generator.write(tmp_path, {"targetNamespace": "apps", "namePrefix": "p-",
                               "images": [{"name": "nginx", "newTag": "1.27"}]})  # fmt: skip
    kus = yaml.safe_load((tmp_path / "kustomization.yaml").read_text())
    assert kus["resources"] == ["./a.yaml", "./base", "./sub/b.yml"]
    assert kus["namespace"] == "apps" and kus["namePrefix"] == "p-"
    assert kus["images"] == [{"name": "nginx", "newTag": "1.27"}]
    # An existing kustomization is kept, the Kustomization's fields written over it.
    generator.write(tmp_path / "base", {"targetNamespace": "other"})
    assert yaml.safe_load((tmp_path / "base" / "kustomization.yaml").read_text()) == {"resources": [],
                                                                                       "namespace": "other"}  # fmt: skip
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.yaml").write_text("a: [unclosed\n")
    with pytest.raises(generator.GenerateError, match="failed to decode Kubernetes YAML from"):
        generator.write(tmp_path / "bad", {})
    with pytest.raises(generator.GenerateError, match="must be local and relative"):
        generator.write(tmp_path / "base", {"components": ["../../elsewhere"]})


def test_health_of_what_the_simulator_runs() -> None:
    def deployment(**status: object) -> dict[str, object]:
        return {"kind": "Deployment", "metadata": {"generation": 2}, "spec": {"replicas": 2}, "status": status}

    available = [{"type": "Available", "status": "True"}]
    assert (
        _health(deployment(observedGeneration=2, updatedReplicas=2, availableReplicas=2, conditions=available))
        == "Current"
    )
    assert (
        _health(deployment(observedGeneration=1, updatedReplicas=2, availableReplicas=2, conditions=available))
        == "InProgress"
    )
    assert (
        _health(deployment(observedGeneration=2, updatedReplicas=1, availableReplicas=1, conditions=available))
        == "InProgress"
    )
    assert (
        _health({"kind": "Job", "metadata": {}, "status": {"conditions": [{"type": "Failed", "status": "True"}]}})
        == "Failed"
    )
    assert _health({"kind": "ConfigMap", "metadata": {}}) == "Current"
    assert _health(None) == "NotFound"


def test_vendored_crds_serve_flux_versions_and_accept_local_urls() -> None:
    crds = {c["metadata"]["name"]: c for c in definitions()}
    served = {name: [v["name"] for v in c["spec"]["versions"] if v["served"]] for name, c in crds.items()}
    assert served == {
        "gitrepositories.source.toolkit.fluxcd.io": ["v1", "v1beta2"],
        "buckets.source.toolkit.fluxcd.io": ["v1", "v1beta2"],
        "ocirepositories.source.toolkit.fluxcd.io": ["v1", "v1beta2"],
        "kustomizations.kustomize.toolkit.fluxcd.io": ["v1", "v1beta2"],
    }
    git = crds["gitrepositories.source.toolkit.fluxcd.io"]["spec"]["versions"][0]
    assert git["schema"]["openAPIV3Schema"]["properties"]["spec"]["properties"]["url"]["pattern"] == (
        "^((http|https|ssh|file)://|/).*$")  # fmt: skip
