"""The simulated Flux controllers end to end: a ``halyard sim --flux`` process, the real kubectl creating Flux
objects, real git repositories made by the test (file:// and smart HTTP from ``git http-backend`` on 127.0.0.1)."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.sim.conftest import Sim, Tool, kubectl_path, start_sim
from tests.support.gitserver import Repo, serve_git

CONFIGMAP = """apiVersion: v1
kind: ConfigMap
metadata:
  name: {name}
data:
  color: {color}
"""


@pytest.fixture(scope="module")
def flux_sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    data_dir = tmp_path_factory.mktemp("fluxsim") / "data"
    data_dir.mkdir()
    sim = start_sim(data_dir, "--flux", "--nodes", "1", "--flux-max-artifact-size", "1",
                    "--flux-requeue-dependency", "0.3")  # fmt: skip
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def kubectl(flux_sim: Sim, tmp_path: Path) -> Tool:
    home = tmp_path / "home"
    home.mkdir()
    return Tool(kubectl_path("1.33"), flux_sim.clusters[0].kubeconfig, home)


@pytest.fixture
def ns(kubectl: Tool, request: pytest.FixtureRequest) -> Iterator[str]:
    name = request.node.name.removeprefix("test_").replace("_", "-")[:50]
    kubectl.run("create", "namespace", name)
    yield name
    # The namespace's Flux objects (finalizers and all) go with it, and stop polling their repositories.
    kubectl.run("delete", "namespace", name, "--wait=false")


def get(kubectl: Tool, ns: str, kind: str, name: str) -> dict[str, Any]:
    proc = kubectl.run("-n", ns, "get", kind, name, "-o", "json", check=False)
    return json.loads(proc.stdout) if proc.returncode == 0 else {}


def condition(obj: dict[str, Any], kind: str = "Ready") -> dict[str, Any]:
    return next((c for c in (obj.get("status") or {}).get("conditions") or [] if c["type"] == kind), {})


def wait_for(what: str, probe: Callable[[], Any], timeout: float = 30) -> Any:
    """Poll ``probe`` until it returns something truthy (returned), failing with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what} (last: {last!r})")


def ready(kubectl: Tool, ns: str, kind: str, name: str, status: str = "True", reason: str = "") -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(kubectl, ns, kind, name)
        c = condition(obj)
        if c.get("status") == status and (not reason or c.get("reason") == reason):
            return obj
        return None

    return dict(wait_for(f"{kind} {ns}/{name} Ready={status} {reason}", probe))


def apply(kubectl: Tool, *docs: dict[str, Any]) -> None:
    kubectl.run("apply", "-f", "-", input="\n---\n".join(json.dumps(d) for d in docs))


def git_repository(ns: str, name: str, url: str, ref: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "GitRepository",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"url": url, "interval": "300ms", "ref": ref or {"branch": "main"}, **spec}}  # fmt: skip


def kustomization(ns: str, name: str, source: str, path: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": ns},
            "spec": {"interval": "1s", "path": path, "prune": True, "targetNamespace": ns,
                     "sourceRef": {"kind": "GitRepository", "name": source}, **spec}}  # fmt: skip


def events(kubectl: Tool, ns: str, kind: str, name: str) -> list[dict[str, Any]]:
    items = json.loads(kubectl.run("-n", ns, "get", "events", "-o", "json").stdout)["items"]
    return [e for e in items if e["involvedObject"]["kind"] == kind and e["involvedObject"]["name"] == name]


def test_crds_are_installed_and_validate(kubectl: Tool, ns: str) -> None:
    crds = kubectl.run("get", "crds", "-o", "name").stdout.split()
    assert {
        "customresourcedefinition.apiextensions.k8s.io/gitrepositories.source.toolkit.fluxcd.io",
        "customresourcedefinition.apiextensions.k8s.io/kustomizations.kustomize.toolkit.fluxcd.io",
    } <= set(crds)
    bad = kubectl.run("apply", "-f", "-", check=False,
                      input=json.dumps(git_repository(ns, "bad", "file:///x", interval="often")))  # fmt: skip
    assert bad.returncode != 0 and "spec.interval" in bad.stderr


def test_apply_follow_commits_and_prune(kubectl: Tool, ns: str, tmp_path: Path, flux_sim: Sim) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.commit({"deploy/kustomization.yaml": "resources: [a.yaml, b.yaml]\n",
                         "deploy/a.yaml": CONFIGMAP.format(name="a", color="red"),
                         "deploy/b.yaml": CONFIGMAP.format(name="b", color="blue")}, "first")  # fmt: skip
    apply(kubectl, git_repository(ns, "app", repo.url), kustomization(ns, "app", "app", "./deploy"))
    source = ready(kubectl, ns, "gitrepository", "app")
    assert source["status"]["artifact"]["revision"] == f"main@sha1:{first}"
    assert condition(source)["reason"] == "Succeeded"
    assert condition(source)["message"] == f"stored artifact for revision 'main@sha1:{first}'"
    assert condition(source, "ArtifactInStorage")["status"] == "True"
    assert source["status"]["observedGeneration"] == source["metadata"]["generation"]
    assert source["status"]["artifact"]["digest"].startswith("sha256:")
    assert source["metadata"]["finalizers"] == ["finalizers.fluxcd.io"]
    ks = ready(kubectl, ns, "kustomization", "app")
    assert condition(ks)["reason"] == "ReconciliationSucceeded"
    assert condition(ks)["message"] == f"Applied revision: main@sha1:{first}"
    assert ks["status"]["lastAppliedRevision"] == ks["status"]["lastAttemptedRevision"] == f"main@sha1:{first}"
    assert ks["status"]["inventory"]["entries"] == [{"id": f"{ns}_a__ConfigMap", "v": "v1"},
                                                    {"id": f"{ns}_b__ConfigMap", "v": "v1"}]  # fmt: skip
    cm = json.loads(kubectl.run("-n", ns, "get", "cm", "a", "-o", "json", "--show-managed-fields").stdout)
    assert cm["data"] == {"color": "red"}
    assert cm["metadata"]["labels"] == {"kustomize.toolkit.fluxcd.io/name": "app",
                                        "kustomize.toolkit.fluxcd.io/namespace": ns}  # fmt: skip
    assert [(m["manager"], m["operation"]) for m in cm["metadata"]["managedFields"]] == [("kustomize-controller",
                                                                                        "Apply")]  # fmt: skip
    reasons = {e["reason"] for e in events(kubectl, ns, "GitRepository", "app")}
    assert "NewArtifact" in reasons
    ks_events = events(kubectl, ns, "Kustomization", "app")
    assert any(e["message"] == "ConfigMap/" + ns + "/a created\nConfigMap/" + ns + "/b created" for e in ks_events)
    done = [e for e in ks_events if e["reason"] == "ReconciliationSucceeded"]
    assert done and done[0]["message"].startswith("Reconciliation finished in ")
    assert done[0]["metadata"]["annotations"]["kustomize.toolkit.fluxcd.io/revision"] == f"main@sha1:{first}"
    assert done[0]["source"]["component"] == "kustomize-controller"

    # Drift: a change made behind Flux's back is undone at the next interval (forced server-side apply).
    kubectl.run("-n", ns, "patch", "cm", "a", "--type=merge", "-p", '{"data":{"color":"purple"}}')
    wait_for("the drift corrected", lambda: get(kubectl, ns, "cm", "a").get("data") == {"color": "red"})
    assert any(e["message"] == f"ConfigMap/{ns}/a configured" for e in events(kubectl, ns, "Kustomization", "app"))

    # A new commit: a changed, a removed (pruned), a new object.
    second = repo.commit({"deploy/kustomization.yaml": "resources: [a.yaml, c.yaml]\n",
                          "deploy/a.yaml": CONFIGMAP.format(name="a", color="green"), "deploy/b.yaml": None,
                          "deploy/c.yaml": CONFIGMAP.format(name="c", color="white")}, "second")  # fmt: skip
    wait_for("the second commit applied",
             lambda: get(kubectl, ns, "kustomization", "app").get("status", {}).get("lastAppliedRevision")
             == f"main@sha1:{second}")  # fmt: skip
    assert get(kubectl, ns, "cm", "a")["data"] == {"color": "green"}
    assert get(kubectl, ns, "cm", "b") == {}
    assert get(kubectl, ns, "cm", "c")["data"] == {"color": "white"}
    entries = get(kubectl, ns, "kustomization", "app")["status"]["inventory"]["entries"]
    assert [e["id"] for e in entries] == [f"{ns}_a__ConfigMap", f"{ns}_c__ConfigMap"]

    # Deleting the Kustomization (prune: true) takes its objects along, then the object goes (finalizer).
    kubectl.run("-n", ns, "delete", "kustomization", "app", "--timeout=30s")
    assert get(kubectl, ns, "cm", "a") == {} and get(kubectl, ns, "cm", "c") == {}
    # Deleting the GitRepository removes its artifact from the simulator's storage.
    storage = flux_sim.data_dir / "flux" / flux_sim.clusters[0].name / "gitrepository" / ns / "app"
    assert (storage / f"{second}.tar.gz").is_file()
    kubectl.run("-n", ns, "delete", "gitrepository", "app", "--timeout=30s")
    assert not storage.exists()


def test_namespace_deletion_waits_for_the_flux_finalizers(kubectl: Tool, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/cm.yaml": CONFIGMAP.format(name="x", color="red")})
    kubectl.run("create", "namespace", "doomed-flux")
    apply(kubectl, git_repository("doomed-flux", "src", repo.url), kustomization("doomed-flux", "app", "src", "./app"))
    ready(kubectl, "doomed-flux", "kustomization", "app")
    kubectl.run("delete", "namespace", "doomed-flux", "--timeout=30s")
    assert kubectl.run("get", "namespace", "doomed-flux", check=False).returncode != 0


def test_broken_kustomization_reports_build_failed(kubectl: Tool, ns: str, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"deploy/kustomization.yaml": "resources: [missing.yaml]\n"})
    apply(kubectl, git_repository(ns, "src", repo.url), kustomization(ns, "broken", "src", "./deploy"))
    ks = ready(kubectl, ns, "kustomization", "broken", "False", "BuildFailed")
    message = condition(ks)["message"]
    assert message.startswith("kustomize build failed: ") and "'/deploy/missing.yaml'" in message
    assert "/tmp" not in message  # the same message at every attempt: no scratch directory in it
    assert condition(ks, "Reconciling")["reason"] == "ProgressingWithRetry"
    assert "lastAppliedRevision" not in ks["status"] and ks["status"]["lastAttemptedRevision"].startswith("main@")
    warnings = [e for e in events(kubectl, ns, "Kustomization", "broken") if e["type"] == "Warning"]
    assert warnings and warnings[0]["reason"] == "BuildFailed"
    # A path that is not in the repository: ArtifactFailed.
    apply(kubectl, kustomization(ns, "nopath", "src", "./nowhere"))
    ks = ready(kubectl, ns, "kustomization", "nopath", "False", "ArtifactFailed")
    assert condition(ks)["message"] == "kustomization path not found: stat /nowhere: no such file or directory"
    # An object that cannot be applied (no such kind): ReconciliationFailed, nothing of the stage applied.
    repo.commit({"deploy/kustomization.yaml": "resources: [cm.yaml, odd.yaml]\n",
                 "deploy/cm.yaml": CONFIGMAP.format(name="fine", color="red"),
                 "deploy/odd.yaml": "apiVersion: example.com/v1\nkind: Gadget\nmetadata:\n  name: g\n"})  # fmt: skip
    ks = ready(kubectl, ns, "kustomization", "broken", "False", "ReconciliationFailed")
    assert (
        condition(ks)["message"]
        == f'Gadget/{ns}/g dry-run failed: no matches for kind "Gadget" in version "example.com/v1"'
    )
    assert get(kubectl, ns, "cm", "fine") == {}


def test_suspend_stops_reconciling(kubectl: Tool, ns: str, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    first = repo.commit({"app/cm.yaml": CONFIGMAP.format(name="s", color="red")})
    apply(kubectl, git_repository(ns, "src", repo.url), kustomization(ns, "app", "src", "./app", interval="300ms"))
    ready(kubectl, ns, "kustomization", "app")
    kubectl.run("-n", ns, "patch", "kustomization", "app", "--type=merge", "-p", '{"spec":{"suspend":true}}')
    second = repo.commit({"app/cm.yaml": CONFIGMAP.format(name="s", color="blue")})
    wait_for(
        "the source at the second commit",
        lambda: get(kubectl, ns, "gitrepository", "src")["status"]["artifact"]["revision"] == f"main@sha1:{second}",
    )
    time.sleep(0.8)  # the source's new revision asked for a reconcile, and more than an interval (300ms) passed
    ks = get(kubectl, ns, "kustomization", "app")
    assert ks["status"]["lastAppliedRevision"] == f"main@sha1:{first}"
    assert get(kubectl, ns, "cm", "s")["data"] == {"color": "red"}
    kubectl.run("-n", ns, "patch", "kustomization", "app", "--type=merge", "-p", '{"spec":{"suspend":false}}')
    wait_for("the resumed kustomization at the second commit",
             lambda: get(kubectl, ns, "cm", "s").get("data") == {"color": "blue"})  # fmt: skip


def test_depends_on_waits_for_the_dependency(kubectl: Tool, ns: str, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"infra/cm.yaml": CONFIGMAP.format(name="infra", color="red"),
                 "apps/cm.yaml": CONFIGMAP.format(name="app", color="blue")})  # fmt: skip
    other = Repo(tmp_path / "other")
    other.commit({"infra/cm.yaml": CONFIGMAP.format(name="infra", color="red")})
    apply(kubectl, git_repository(ns, "src", repo.url),
          kustomization(ns, "infra", "late", "./infra"),
          kustomization(ns, "apps", "src", "./apps", dependsOn=[{"name": "infra"}]))  # fmt: skip
    ks = ready(kubectl, ns, "kustomization", "apps", "False", "DependencyNotReady")
    assert condition(ks)["message"] == f"dependency '{ns}/infra' is not ready"
    infra = ready(kubectl, ns, "kustomization", "infra", "False", "ArtifactFailed")
    assert condition(infra)["message"] == 'gitrepositories.source.toolkit.fluxcd.io "late" not found'
    assert get(kubectl, ns, "cm", "app") == {}
    apply(kubectl, git_repository(ns, "late", other.url))
    ready(kubectl, ns, "kustomization", "apps")
    infra = get(kubectl, ns, "kustomization", "infra")
    apps = get(kubectl, ns, "kustomization", "apps")
    # The dependency became Ready before the dependent applied anything.
    assert condition(infra)["lastTransitionTime"] <= condition(apps)["lastTransitionTime"]
    assert get(kubectl, ns, "cm", "app")["data"] == {"color": "blue"}
    waits = [e for e in events(kubectl, ns, "Kustomization", "apps") if e["reason"] == "DependencyNotReady"]
    assert waits and waits[0]["message"] == "Dependencies do not meet ready condition, retrying in 300ms"


DEPLOYMENT = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
      - name: nginx
        image: nginx:1.27
"""


def test_wait_checks_the_health_of_what_was_applied(kubectl: Tool, ns: str, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    repo.commit({"app/web.yaml": DEPLOYMENT})
    apply(kubectl, git_repository(ns, "src", repo.url),
          kustomization(ns, "web", "src", "./app", wait=True, commonMetadata={"labels": {"team": "web"}}))  # fmt: skip
    ks = ready(kubectl, ns, "kustomization", "web")
    healthy = condition(ks, "Healthy")
    assert healthy["status"] == "True" and healthy["reason"] == "Succeeded"
    assert healthy["message"].startswith("Health check passed in ")
    deployment = get(kubectl, ns, "deployment", "web")
    assert deployment["status"]["availableReplicas"] == 2
    assert deployment["metadata"]["labels"]["team"] == "web"


def test_refs_branch_tag_semver_commit(kubectl: Tool, ns: str, tmp_path: Path) -> None:
    repo = Repo(tmp_path / "repo")
    c1 = repo.commit({"f": "1"})
    repo.git("tag", "v1.0.0")
    c2 = repo.commit({"f": "2"})
    repo.git("tag", "-a", "v1.1.0", "-m", "annotated")
    c3 = repo.commit({"f": "3"})
    repo.git("tag", "v2.0.0")
    repo.git("branch", "dev", c1)
    apply(kubectl,
          git_repository(ns, "tag", repo.url, {"tag": "v1.0.0"}),
          git_repository(ns, "semver", repo.url, {"semver": ">=1.0.0 <2.0.0"}),
          git_repository(ns, "commit", repo.url, {"commit": c2}),
          git_repository(ns, "branch", repo.url, {"branch": "dev"}),
          git_repository(ns, "name", repo.url, {"name": "refs/tags/v2.0.0"}),
          git_repository(ns, "nobranch", repo.url, {"branch": "nope"}))  # fmt: skip
    assert ready(kubectl, ns, "gitrepository", "tag")["status"]["artifact"]["revision"] == f"v1.0.0@sha1:{c1}"
    assert ready(kubectl, ns, "gitrepository", "semver")["status"]["artifact"]["revision"] == f"v1.1.0@sha1:{c2}"
    assert ready(kubectl, ns, "gitrepository", "commit")["status"]["artifact"]["revision"] == f"sha1:{c2}"
    assert ready(kubectl, ns, "gitrepository", "branch")["status"]["artifact"]["revision"] == f"dev@sha1:{c1}"
    assert (
        ready(kubectl, ns, "gitrepository", "name")["status"]["artifact"]["revision"] == f"refs/tags/v2.0.0@sha1:{c3}"
    )
    bad = ready(kubectl, ns, "gitrepository", "nobranch", "False", "GitOperationFailed")
    assert condition(bad)["message"] == (f"failed to checkout and determine revision: unable to clone '{repo.url}': "
                                         "couldn't find remote ref \"refs/heads/nope\"")  # fmt: skip
    assert condition(bad, "FetchFailed")["status"] == "True"
    # The ref moved to another name for the same commit: the stored archive stays, the revision follows.
    kubectl.run("-n", ns, "patch", "gitrepository", "branch", "--type=merge", "-p", '{"spec":{"ref":{"tag":"v1.0.0"}}}')
    wait_for("the revision renamed",
             lambda: get(kubectl, ns, "gitrepository", "branch")["status"]["artifact"]["revision"] == f"v1.0.0@sha1:{c1}")  # fmt: skip
    # `flux reconcile` asks through an annotation; the controller says it handled it.
    kubectl.run("-n", ns, "annotate", "gitrepository", "tag", "reconcile.fluxcd.io/requestedAt=2026-12-06T04:30:00Z")
    wait_for("the requested reconcile handled",
             lambda: get(kubectl, ns, "gitrepository", "tag")["status"].get("lastHandledReconcileAt")
             == "2026-12-06T04:30:00Z")  # fmt: skip


def test_unreachable_and_hanging_servers(kubectl: Tool, ns: str) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    # A port nobody listens on, and one that accepts and never answers (spec.timeout bounds the fetch).
    hang = socket.socket()
    hang.bind(("127.0.0.1", 0))
    hang.listen(8)
    try:
        apply(kubectl, git_repository(ns, "unreachable", f"http://127.0.0.1:{port}/repo.git"),
              git_repository(ns, "hanging", f"http://127.0.0.1:{hang.getsockname()[1]}/repo.git", timeout="1s"))  # fmt: skip
        obj = ready(kubectl, ns, "gitrepository", "unreachable", "False", "GitOperationFailed")
        assert condition(obj)["message"].startswith(
            f"failed to checkout and determine revision: unable to clone 'http://127.0.0.1:{port}/repo.git': "
        )
        assert condition(obj, "FetchFailed")["reason"] == "GitOperationFailed"
        assert condition(obj, "Reconciling")["reason"] == "ProgressingWithRetry"
        assert "artifact" not in obj["status"]
        warnings = events(kubectl, ns, "GitRepository", "unreachable")
        assert warnings and warnings[0]["type"] == "Warning" and warnings[0]["reason"] == "GitOperationFailed"
        obj = ready(kubectl, ns, "gitrepository", "hanging", "False", "GitOperationFailed")
        assert condition(obj)["message"].endswith("timeout after 1s")
    finally:
        hang.close()


def test_https_basic_auth_and_size_limit(kubectl: Tool, ns: str, tmp_path: Path) -> None:
    root = tmp_path / "served"
    repo = Repo(root / "work")
    repo.commit({"app/cm.yaml": CONFIGMAP.format(name="remote", color="red")})
    repo.git("clone", "-q", "--bare", ".", str(root / "app.git"))
    big = Repo(root / "bigwork")
    big.commit({"blob.bin": os.urandom(2 * 1024 * 1024)})  # over the fixture's 1 MiB limit
    big.git("clone", "-q", "--bare", ".", str(root / "big.git"))
    with serve_git(root, ("flux", "s3cret")) as base:
        kubectl.run("-n", ns, "create", "secret", "generic", "good", "--from-literal=username=flux",
                    "--from-literal=password=s3cret")  # fmt: skip
        kubectl.run("-n", ns, "create", "secret", "generic", "wrong", "--from-literal=username=flux",
                    "--from-literal=password=nope")  # fmt: skip
        apply(kubectl,
              git_repository(ns, "good", f"{base}/app.git", secretRef={"name": "good"}),
              git_repository(ns, "wrong", f"{base}/app.git", secretRef={"name": "wrong"}),
              git_repository(ns, "nosecret", f"{base}/app.git", secretRef={"name": "absent"}),
              git_repository(ns, "big", f"{base}/big.git", secretRef={"name": "good"}),
              kustomization(ns, "remote", "good", "./app"))  # fmt: skip
        ready(kubectl, ns, "gitrepository", "good")
        ready(kubectl, ns, "kustomization", "remote")
        assert get(kubectl, ns, "cm", "remote")["data"] == {"color": "red"}
        wrong = ready(kubectl, ns, "gitrepository", "wrong", "False", "GitOperationFailed")
        assert "s3cret" not in json.dumps(wrong) and "nope" not in json.dumps(wrong)
        absent = ready(kubectl, ns, "gitrepository", "nosecret", "False", "AuthenticationFailed")
        assert condition(absent)["message"] == f"failed to get secret '{ns}/absent': secrets \"absent\" not found"
        large = ready(kubectl, ns, "gitrepository", "big", "False", "GitOperationFailed")
        assert "exceeds the simulator's size limit of 1 MiB" in condition(large)["message"]


def test_bucket_and_oci_are_accepted_but_not_fetched(kubectl: Tool, ns: str) -> None:
    apply(kubectl,
          {"apiVersion": "source.toolkit.fluxcd.io/v1", "kind": "Bucket", "metadata": {"name": "b", "namespace": ns},
           "spec": {"bucketName": "x", "endpoint": "minio.example.invalid", "interval": "1m"}},
          {"apiVersion": "source.toolkit.fluxcd.io/v1beta2", "kind": "OCIRepository",
           "metadata": {"name": "o", "namespace": ns},
           "spec": {"url": "oci://registry.example.invalid/app", "interval": "1m"}})  # fmt: skip
    for kind, name in (("bucket", "b"), ("ocirepository", "o")):
        obj = ready(kubectl, ns, kind, name, "False", "NotSupportedBySimulator")
        assert "not supported by the simulator" in condition(obj)["message"]
