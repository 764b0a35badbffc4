"""The importable simulator: SimThread, run-time clusters, bookmarks, persistence across a restart, kubeconfigs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from halyard.sim.server import SimOptions, SimThread

pytestmark = pytest.mark.e2e


def _client(server: Any, name: str) -> httpx.Client:
    token = server.clusters[name].admin_token
    return httpx.Client(base_url=server.server_url(name), verify=str(server.ca_path),
                        headers={"Authorization": f"Bearer {token}"}, timeout=10)  # fmt: skip


def test_thread_bookmarks_runtime_clusters_and_persistence(tmp_path: Path) -> None:
    options = SimOptions(clusters=2, nodes=1, port=0, data_dir=tmp_path, persist=True, bookmark_interval=0.2)
    sim = SimThread(options)
    server = sim.start()
    try:
        index = json.loads((tmp_path / "sim.json").read_text())
        assert [c["name"] for c in index["clusters"]] == ["sim-01", "sim-02"]
        config = yaml.safe_load(Path(index["clusters"][0]["kubeconfig"]).read_text())
        assert config["clusters"][0]["cluster"]["server"] == f"{index['url']}/clusters/sim-01"
        assert config["current-context"] == "sim-01"

        sim.call(server.add_cluster, "extra")
        assert "extra" in [c["name"] for c in json.loads((tmp_path / "sim.json").read_text())["clusters"]]
        with _client(server, "extra") as api:
            assert [n["metadata"]["name"] for n in api.get("/api/v1/nodes").json()["items"]] == ["control-plane"]
            body = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "keep"}, "data": {"a": "1"}}
            assert api.post("/api/v1/namespaces/default/configmaps", json=body).status_code == 201
            rv = api.get("/api/v1/namespaces/default/configmaps").json()["metadata"]["resourceVersion"]
            events: list[dict[str, Any]] = []
            url = f"/api/v1/namespaces/default/configmaps?watch=true&allowWatchBookmarks=true&resourceVersion={rv}"
            with api.stream("GET", url) as r:
                for line in r.iter_lines():
                    events.append(json.loads(line))
                    break
            assert events[0]["type"] == "BOOKMARK"
            assert events[0]["object"]["metadata"]["resourceVersion"] == rv
            later = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "later"}}
            assert api.post("/api/v1/namespaces/default/configmaps", json=later).status_code == 201
        token = server.clusters["extra"].admin_token
    finally:
        sim.stop()

    again = SimThread(SimOptions(clusters=2, nodes=1, port=0, data_dir=tmp_path, persist=True))
    server = again.start()
    try:
        assert set(server.clusters) == {"sim-01", "sim-02", "extra"}
        assert server.clusters["extra"].admin_token == token
        with _client(server, "extra") as api:
            kept = api.get("/api/v1/namespaces/default/configmaps/keep").json()
            assert kept["data"] == {"a": "1"}
            # Watch history does not survive a restart: a watch from before the last write is 410 Expired.
            r = api.get(f"/api/v1/namespaces/default/configmaps?watch=true&resourceVersion={rv}")
            assert json.loads(r.text.splitlines()[0])["object"]["code"] == 410
    finally:
        again.stop()
