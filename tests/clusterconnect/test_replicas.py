"""Cluster connect on two replicas of one PostgreSQL database behind a real HAProxy, as docs/cluster-connect-
replicas.md deploys them (the HAProxy configuration is read from that page): a user's kubectl reaching the replica
without the cluster's tunnel gets through (forwarded replica to replica), only replicas can use the peer path, and
when the replica holding the tunnel is killed the agent moves to the other and requests work again within seconds,
the stale route answering a clear 503 meanwhile instead of hanging."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ec

from halyard.cli.localagents import running_pid, state_dir_for
from halyard.controlplane.identity.keys import KeyRing
from halyard.controlplane.identity.tokens import Caller, TokenService
from halyard.controlplane.relay.peers import Peers
from halyard.controlplane.relay.routing import Route, Routing
from halyard.core.clock import ManualClock
from halyard.core.errors import InvalidAuthenticationToken
from halyard.core.sealing import Sealer
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.tunnel.http1 import parse_head
from tests.agents.conftest import Cli, logged_in_cli, stop_agents
from tests.clusterconnect.conftest import VENV_BIN, object_id
from tests.sim.conftest import Sim, kubectl_path, start_sim
from tests.storage.replicas import replicas_of
from tests.storage.stored import query
from tests.support.postgres import PostgresServer
from tests.support.processes import ServerProcess, free_port

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "cluster-connect-replicas.md"
CLUSTERS_API = "2024-01-01"
PEER_AUDIENCE = "https://relay-peers.halyard.local/"
AGENT_AUDIENCE = "https://agents.halyard.local/"
KUBECTL_TIMEOUT = 30.0  # a request must end (answered or refused) well within this: nothing may hang


def haproxy_config(frontend: int, replicas: list[int]) -> str:
    """The documented configuration with this test's ports."""
    block = re.search(r"```text\n(global\n.*?)```", DOC.read_text(), re.S)  # the page's haproxy.cfg
    assert block is not None, f"{DOC} has no haproxy configuration block"
    ports = {f"replica{i}_port": port for i, port in enumerate(replicas)}
    return block.group(1).format(frontend_port=frontend, **ports)


class HAProxy:
    """haproxy from the distribution, in the foreground, with a configuration file of the test's."""

    def __init__(self, config: str, port: int, workdir: Path) -> None:
        binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
        if not os.path.exists(binary):
            pytest.fail("haproxy is missing: run scripts/install-system-deps.sh (make test does)")
        path = workdir / "haproxy.cfg"
        path.write_text(config)
        check = subprocess.run([binary, "-c", "-f", str(path)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        self.port = port
        self.log = workdir / "haproxy.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([binary, "-db", "-f", str(path)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"haproxy did not start: {self.log.read_text()[-2000:]}") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def _eventually(check: Callable[[], bool], failure: str, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, failure
        time.sleep(0.1)


def _restart(replica: ServerProcess) -> None:
    try:
        replica.start(60)
    except FileNotFoundError:
        pass  # only the replica that bootstrapped has admin.json (read once it is ready)


@dataclass
class Replicated:
    replicas: list[ServerProcess]
    lb: HAProxy
    cli: Cli
    cluster_id: str
    kubeconfig: dict[str, Any]  # listClusterUserCredential's, as returned (the `halyard get-token` exec plugin)
    token: str  # the admin's management token, for requests made without kubectl
    workdir: Path

    def routes(self) -> list[tuple[str, str]]:
        """(replica id, peer address) of the cluster's live route."""
        rows = asyncio.run(
            query(
                self.replicas[0],
                "SELECT r.replica_id, p.peer_address FROM relay_routes r JOIN relay_replicas p "
                "ON p.replica_id = r.replica_id WHERE r.cluster_key = :key",
                key=self.cluster_id.lower(),
            )
        )
        return [(str(r[0]), str(r[1])) for r in rows]

    def holder(self, timeout: float = 30) -> tuple[ServerProcess, str]:
        """The replica holding the tunnel (by its peer address, its listen address here) and its replica id."""
        deadline = time.monotonic() + timeout
        while not (routes := self.routes()):
            assert time.monotonic() < deadline, "no replica registered the cluster's tunnel"
            time.sleep(0.2)
        ((replica_id, address),) = routes
        (replica,) = [r for r in self.replicas if address == f"127.0.0.1:{r.port}"]
        return replica, replica_id

    def kubectl(self, base_url: str, *args: str) -> tuple[subprocess.CompletedProcess[str], float]:
        """kubectl 1.33 with the credential kubeconfig, its server's scheme and authority set to ``base_url``."""
        config = json.loads(json.dumps(self.kubeconfig))
        cluster = config["clusters"][0]["cluster"]
        cluster["server"] = base_url + "/relay/" + cluster["server"].split("/relay/", 1)[1]
        path = self.workdir / f"kubeconfig-{uuid.uuid4().hex[:8]}"
        path.write_text(yaml.safe_dump(config))
        started = time.monotonic()
        proc = subprocess.run(
            [str(kubectl_path("1.33")), "--kubeconfig", str(path), f"--request-timeout={KUBECTL_TIMEOUT - 10:.0f}s",
             *args],
            capture_output=True, text=True, timeout=KUBECTL_TIMEOUT,
            # The exec plugin reads the CLI's profile (signed in through HAProxy) and needs `halyard` on PATH.
            env={**os.environ, **self.cli.env, "HOME": str(self.workdir),
                 "PATH": os.pathsep.join([VENV_BIN, os.environ.get("PATH", "")])},
        )  # fmt: skip
        return proc, time.monotonic() - started


@pytest.fixture(scope="module")
def replicated(postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replicated]:
    workdir = tmp_path_factory.mktemp("cc-replicas")
    url = postgres_server.create_database(f"t_{uuid.uuid4().hex[:16]}")
    front = free_port()
    replicas = replicas_of(url, workdir, 2, public_url=f"https://127.0.0.1:{front}")
    lb = HAProxy(haproxy_config(front, [r.port for r in replicas]), front, workdir)
    sim: Sim | None = None
    cli: Cli | None = None
    try:
        replicas[0].start(60)
        _restart(replicas[1])  # only the first start bootstraps (and writes admin.json)
        replicas[1].admin = replicas[0].admin
        sim_dir = workdir / "sim"
        sim_dir.mkdir()
        sim = start_sim(sim_dir, "--clusters", "1", "--nodes", "1")
        cli = logged_in_cli(replicas[0], workdir / "home", url=lb.url)  # everything the CLI does goes through HAProxy
        group = cli.group("cc-replicas")
        proc = cli.run(
            "connectedk8s", "connect", "-g", group, "-n", "spread", "-l", "eastus", "--kube-config",
            str(sim.clusters[0].kubeconfig), "--agent-mode", "local", "--yes", "-o", "none",
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr
        sub = replicas[0].admin["subscription"]
        cluster_id = (
            f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Kubernetes/connectedClusters/spread"
        )
        token = replicas[0].token()
        credential = cli.ok(
            "rest", "--method", "post", "--url", f"{cluster_id}/listClusterUserCredential?api-version={CLUSTERS_API}",
            "--body", json.dumps({"authenticationMethod": "AAD", "clientProxy": False}),
        )  # fmt: skip
        kubeconfig = yaml.safe_load(base64.b64decode(credential["kubeconfigs"][0]["value"]))
        assert "exec" in kubeconfig["users"][0]["user"]
        # The cluster's RBAC decides what the impersonated admin may do: make it the cluster's admin.
        oid = object_id(token)
        bound = subprocess.run(
            [str(kubectl_path("1.33")), "--kubeconfig", str(sim.clusters[0].kubeconfig), "create",
             "clusterrolebinding", "halyard-admin", "--clusterrole=cluster-admin", f"--user={oid}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert bound.returncode == 0, bound.stderr
        yield Replicated(replicas, lb, cli, cluster_id, kubeconfig, token, workdir)
    finally:
        if cli is not None:
            stop_agents(cli)
        if sim is not None:
            sim.stop()
        for replica in replicas:
            replica.stop()
        lb.stop()


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_user_reaching_the_replica_without_the_tunnel_gets_through(replicated: Replicated) -> None:
    holder, holder_id = replicated.holder()
    (other,) = [r for r in replicated.replicas if r is not holder]

    # Addressed directly, so the request certainly lands on the replica without the tunnel: forwarded to the holder.
    got, _ = replicated.kubectl(other.url, "get", "pods", "-A", "-o", "name")
    assert got.returncode == 0, got.stderr
    # The stream crossed replicas to the holder (logged as kubectl's connection closes, after it exits).
    _eventually(lambda: f"mode=AAD via={holder_id}" in other.whole_log(), "no forwarded stream logged")
    ns, _ = replicated.kubectl(other.url, "create", "namespace", "made-through-b")
    assert ns.returncode == 0, ns.stderr
    through_lb, _ = replicated.kubectl(replicated.lb.url, "get", "namespace", "made-through-b", "-o", "name")
    assert (through_lb.returncode, through_lb.stdout.strip()) == (0, "namespace/made-through-b"), through_lb.stderr

    # The user is checked where they arrive: a refused caller never reaches the holder.
    time.sleep(1)  # kubectl's streams above are logged as their connections close, after kubectl exits
    streams_before = holder.whole_log().count("stream closed")
    refused = httpx.get(
        other.url + "/relay/v1" + replicated.cluster_id + "/api/v1/pods",
        headers={"Authorization": "Bearer not-a-token"},
        verify=other.ca,
    )
    assert refused.status_code == 401, refused.text
    time.sleep(1)
    assert holder.whole_log().count("stream closed") == streams_before


@pytest.mark.e2e
@pytest.mark.postgres
def test_only_replicas_can_use_the_peer_path(replicated: Replicated) -> None:
    holder, holder_id = replicated.holder()
    peer_url = holder.url + "/relay/v1/peer" + replicated.cluster_id
    relay_token = replicated.cli.ok(
        "rest", "--method", "post",
        "--url", f"{replicated.cluster_id}/listClusterUserCredential?api-version={CLUSTERS_API}",
        "--body", json.dumps({"authenticationMethod": "AAD", "clientProxy": True}),
    )["hybridConnectionConfig"]["token"]  # fmt: skip
    management = holder.token()
    header = jwt.get_unverified_header(management)
    claims = jwt.decode(management, options={"verify_signature": False})
    # Every claim a peer token carries, for this replica and cluster, signed by a key that is not the replicas'.
    forged = jwt.encode(
        {**claims, "aud": PEER_AUDIENCE, "hyk": "RelayPeer", "hyp": holder_id, "xms_mirid": replicated.cluster_id,
         "hys": {"v": 1, "mode": "AAD", "prefix": ""}, "uti": uuid.uuid4().hex},
        ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": header["kid"]},
    )  # fmt: skip
    tokens = {
        "none": None,
        "a user's management token": management,
        "a relay token for this cluster": relay_token,
        "an agent-services token": holder.token(audience=AGENT_AUDIENCE),
        "a forged peer token": forged,
    }
    time.sleep(1)  # the earlier tests' streams are logged as their connections close
    streams_before = holder.whole_log().count("stream closed")
    # The user-stream and the data-connection halves of the peer path.
    for url in (peer_url, f"{holder.url}/relay/v1/peer-stream/{uuid.uuid4().hex}"):
        for what, token in tokens.items():
            fields = {"Connection": "Upgrade", "Upgrade": "halyard-stream/1"}
            if token is not None:
                fields["Authorization"] = f"Bearer {token}"
            answer = httpx.get(url, headers=fields, verify=holder.ca)
            assert answer.status_code == 401, f"{what} at {url}: {answer.status_code} {answer.text}"
            assert answer.json()["error"]["code"] in ("AuthenticationFailed", "InvalidAuthenticationToken"), what
    time.sleep(1)  # a stream the holder had wrongly opened would be logged as it closed
    assert holder.whole_log().count("stream closed") == streams_before  # nothing reached the agent


@pytest.mark.e2e
@pytest.mark.postgres
def test_killing_the_replica_with_the_tunnel_moves_it_and_requests_work_again(replicated: Replicated) -> None:
    holder, holder_id = replicated.holder()
    (survivor,) = [r for r in replicated.replicas if r is not holder]
    state = replicated.cli.agents_dir / state_dir_for(replicated.cluster_id).name
    agents = running_pid(state)
    assert agents is not None

    # Freeze the agents first, so the dead replica's route is still in the table when the survivor is asked.
    os.kill(agents, signal.SIGSTOP)
    try:
        holder.stop(signal.SIGKILL)
        # Not kubectl: it would retry a 503 with Retry-After by itself, until the request timeout.
        stale = httpx.get(
            replicated.lb.url + "/relay/v1" + replicated.cluster_id + "/api/v1/namespaces",
            headers={"Authorization": f"Bearer {replicated.token}"},
            verify=survivor.ca,
            timeout=KUBECTL_TIMEOUT,  # the answer comes at once: the dead replica's port refuses
        )
        assert stale.status_code == 503, stale.text
        error = stale.json()["error"]
        assert error["code"] == "TunnelUnreachable" and f"127.0.0.1:{holder.port}" in error["message"], error
        assert stale.headers["retry-after"] == "1"
    finally:
        os.kill(agents, signal.SIGCONT)  # the agents find their tunnel reset and dial again through HAProxy
    resumed = time.monotonic()
    _eventually(lambda: replicated.holder()[0] is survivor, "the agents did not move their tunnel", timeout=30)
    moved = time.monotonic() - resumed

    deadline = resumed + 30
    attempts = []
    while True:
        got, took = replicated.kubectl(replicated.lb.url, "get", "pods", "-A", "-o", "name")
        attempts.append((got.returncode, round(took, 2)))
        if got.returncode == 0:
            break
        assert time.monotonic() < deadline, f"requests did not work again: {attempts}; last: {got.stderr}"
        time.sleep(0.2)
    recovered = time.monotonic() - resumed
    print(f"failover: tunnel moved {moved:.2f} s and requests work {recovered:.2f} s after the agents resumed")

    new_holder, new_id = replicated.holder()
    assert new_holder is survivor and new_id != holder_id
    direct, _ = replicated.kubectl(survivor.url, "get", "namespace", "made-through-b", "-o", "name")
    assert direct.returncode == 0, direct.stderr


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_restarted_replica_rejoins_and_takes_the_tunnel_when_the_other_is_killed(replicated: Replicated) -> None:
    """The plain crash, nothing frozen: the killed replica's agent is back on the other one within seconds."""
    holder, holder_id = replicated.holder()
    (dead,) = [r for r in replicated.replicas if r is not holder]
    if dead.proc is None:  # killed by the test before (run alone, both are up)
        leases = f"SELECT replica_id FROM relay_replicas WHERE peer_address = '127.0.0.1:{dead.port}'"
        before = asyncio.run(query(holder, leases))  # its previous life's, lapsing
        _restart(dead)  # a new process: a new replica id, no route of its previous life
        _eventually(lambda: len(asyncio.run(query(holder, leases))) > len(before), "the restarted replica has no lease")
        time.sleep(2)  # HAProxy's health check (inter 1s, rise 1) puts it back in rotation

    holder.stop(signal.SIGKILL)
    killed = time.monotonic()
    got, _ = replicated.kubectl(replicated.lb.url, "get", "pods", "-A", "-o", "name")  # kubectl retries the 503s
    if got.returncode != 0:
        got, _ = replicated.kubectl(replicated.lb.url, "get", "pods", "-A", "-o", "name")
    assert got.returncode == 0, got.stderr
    recovered = time.monotonic() - killed
    print(f"failover (plain SIGKILL): kubectl through HAProxy works {recovered:.2f} s after the kill")
    new_holder, new_id = replicated.holder()
    assert new_holder is dead and new_id != holder_id


@pytest.mark.e2e
@pytest.mark.postgres
def test_a_replica_stopped_gracefully_hands_its_tunnel_over_and_leaves_no_rows(replicated: Replicated) -> None:
    holder, holder_id = replicated.holder()
    (other,) = [r for r in replicated.replicas if r is not holder]
    if other.proc is None:
        _restart(other)
        time.sleep(2)  # back in HAProxy's rotation

    holder.stop()  # SIGTERM: its tunnels are closed, so its agent dials the other replica at once
    assert "Application shutdown complete" in holder.whole_log().rsplit("Shutting down", 1)[1]
    rows = asyncio.run(query(other, "SELECT count(*) FROM relay_replicas WHERE replica_id = :id", id=holder_id))
    assert rows == [(0,)]  # its lease went with it, and its routes (the agent's new one is the other's)
    _eventually(lambda: replicated.holder()[0] is other, "the tunnel did not move to the other replica")
    got, _ = replicated.kubectl(replicated.lb.url, "get", "pods", "-A", "-o", "name")
    assert got.returncode == 0, got.stderr


# The peer token's checks, in process against a real (SQLite) key ring: what the e2e tests cannot forge.


@pytest.mark.unit
async def test_a_peer_token_opens_one_stream_at_one_replica_for_one_cluster(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await db.migrate()
    clock = ManualClock()
    ring = KeyRing(db, Sealer.from_data_dir(tmp_path), clock, rotation=dt.timedelta(days=30),
                   token_lifetime=dt.timedelta(hours=1), prepublish=dt.timedelta(minutes=10))  # fmt: skip
    await ring.ensure()
    tokens = TokenService(ring, clock, issuer_base="https://h", lifetime=dt.timedelta(hours=1))
    settings = Settings(data_dir=tmp_path)
    a, b = (Peers(settings, tokens, Routing(db, clock, address)) for address in ("10.0.0.1:8443", "10.0.0.2:8443"))
    cluster = "/subscriptions/S/resourceGroups/G/providers/Microsoft.Kubernetes/connectedClusters/C"
    user = Caller("user-oid", "user-app", "tenant", "ServicePrincipal", settings.audience)
    header = {"v": 1, "mode": "AAD", "prefix": "", "assertion": "x"}

    def head(token: str) -> Any:
        return parse_head(f"GET /relay/v1/peer{cluster} HTTP/1.1\r\nAuthorization: Bearer {token}\r\n".encode())

    to_a = b._token(Route(a.routing.replica_id, "10.0.0.1:8443"), cluster, user, {"hys": header})
    caller, claims = await a.verify(head(to_a), cluster.upper())
    assert (caller.object_id, claims["hys"]) == ("user-oid", header)
    with pytest.raises(InvalidAuthenticationToken, match="already used"):
        await a.verify(head(to_a), cluster)  # replayed
    again = b._token(Route(a.routing.replica_id, "10.0.0.1:8443"), cluster, user, {"hys": header})
    with pytest.raises(InvalidAuthenticationToken, match="not for this replica"):
        await b.verify(head(again), cluster)
    with pytest.raises(InvalidAuthenticationToken, match="another cluster"):
        await a.verify(head(again), cluster + "-other")
    with pytest.raises(InvalidAuthenticationToken, match="audience"):  # valid nowhere else
        await tokens.verify(again, audience=settings.audience)
    # A token of the peer audience that is not a peer token (as any principal could be issued with the keys).
    plain, _ = tokens.issue(tenant_id="t", object_id="o", app_id="a", kind="ServicePrincipal",
                            audience=settings.relay_peer_audience, resource_id=cluster,
                            claims={"hyp": a.routing.replica_id, "hys": header})  # fmt: skip
    with pytest.raises(InvalidAuthenticationToken, match="not for this replica"):
        await a.verify(head(plain), cluster)
    clock.advance(120)  # expired (30 s, and the verifier's 30 s leeway)
    late = b._token(Route(a.routing.replica_id, "10.0.0.1:8443"), cluster, user, {"hys": header})
    clock.advance(61)
    with pytest.raises(InvalidAuthenticationToken, match="expired"):
        await a.verify(head(late), cluster)
    await db.close()
