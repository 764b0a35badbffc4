"""Private link against a real server (issue 13): the resources' rules and the enforcement table, row by row.

The server serves one private endpoint's address directly (``HALYARD_ENDPOINT_LISTENERS``: a second loopback
port), so a connection to that port arrives through endpoint ``pe-s`` and one to the main port arrives publicly;
a second endpoint (``pe-t``, of another scope) is a second port. Agents are onboarded as identity-operator does
(``agentcreds``) and heartbeat to ``dp``: every agent-facing request goes through the same enforcement.
"""

from __future__ import annotations

import asyncio
import json
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from halyard.agent.arcproxy import ArcProxy, NetworkSettings
from halyard.agent.clusterconfig import ClusterConfig
from halyard.agent.clusterconnect import ClusterConnect
from halyard.agent.configagent import ConfigAgent
from halyard.agent.controlplane import ControlPlaneError, http_client
from halyard.agent.endpoints import KEPT_FILE, LiveEndpoints
from halyard.agent.extensionmanager import ExtensionManager
from halyard.agent.fluxlogs import FluxLogsAgent
from halyard.agent.identity import IdentityOperator
from halyard.agent.metrics import AgentMetrics
from halyard.agent.resourcesync import ResourceSync
from halyard.api.agents import ENDPOINTS_INFO, GATEWAY_NETWORK_PATH, EndpointMap
from halyard.controlplane.privatelink import endpointpki
from halyard.core import proxyv2
from halyard.core.clock import SystemClock
from halyard.tunnel.protocol import TUNNEL_UPGRADE
from tests.api.agentcreds import Agent, connect
from tests.api.helpers import CC_API, RG_API, group_path
from tests.cli.conftest import Cli
from tests.support.connectproxy import ConnectProxy
from tests.support.processes import HALYARD, ServerProcess, free_port

pytestmark = pytest.mark.e2e
HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}
DNS = {"api-version": "2018-09-01"}
GROUP = "rg-pl"


class Site:
    def __init__(self, server: ServerProcess, ports: dict[str, int]) -> None:
        self.server = server
        self.ports = ports
        self.group = group_path(server, GROUP)
        self.client = server.client()

    def path(self, kind: str, name: str) -> str:
        return f"{self.group}/providers/{kind}/{name}"

    def put(self, path: str, api: dict[str, str], body: dict[str, Any], expect: int | None = None) -> httpx.Response:
        r = self.client.put(path, params=api, json=body)
        if expect is not None:
            assert r.status_code == expect, r.text
        if r.status_code in (200, 201) and "Azure-AsyncOperation" in r.headers:
            self.settle(r.headers["Azure-AsyncOperation"])
        return r

    def settle(self, url: str) -> None:
        for _ in range(400):
            status = self.client.get(url).json()["status"]
            if status != "InProgress":
                assert status == "Succeeded", self.client.get(url).text
                return
            time.sleep(0.05)
        raise AssertionError(f"{url} never finished")

    def beat(self, agent: Agent, via: str = "public") -> httpx.Response:
        url = f"https://127.0.0.1:{self.ports[via]}/dp/v1/heartbeat"
        return httpx.post(url, json={"agentVersion": "1.0.0"}, headers=agent.headers, verify=self.server.ca)


def _endpoint_id(subscription: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{GROUP}/providers/Microsoft.Network/privateEndpoints/{name}"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    data = tmp_path_factory.mktemp("privatelink") / "data"
    first = ServerProcess(data, free_port()).start()  # learns the subscription the endpoints' ids are in
    first.stop()
    subscription = json.loads((Path(data) / "admin.json").read_text())["subscription"]
    ports = {"public": free_port(), "pe-s": free_port(), "pe-t": free_port(), "ingress": free_port()}
    listeners = [f"127.0.0.1:{ports[n]}={_endpoint_id(subscription, n)}" for n in ("pe-s", "pe-t")]
    env = {
        "HALYARD_ENDPOINT_LISTENERS": json.dumps(listeners),
        "HALYARD_ENDPOINT_INGRESS": f"127.0.0.1:{ports['ingress']}",
    }
    server = ServerProcess(data, ports["public"], env=env)
    server.start()
    try:
        s = Site(server, ports)
        s.put(s.group, RG_API, {"location": "eastus"})
        yield s
        s.client.close()
    finally:
        server.stop()


def _scope(site: Site, name: str, public: str = "Disabled", location: str = "eastus") -> str:
    path = site.path("Microsoft.HybridCompute/privateLinkScopes", name)
    site.put(path, HC, {"location": location, "properties": {"publicNetworkAccess": public}}, expect=201)
    return path


def _vnet(site: Site, name: str, space: str, location: str = "eastus") -> str:
    path = site.path("Microsoft.Network/virtualNetworks", name)
    body = {
        "location": location,
        "properties": {
            "addressSpace": {"addressPrefixes": [space]},
            "subnets": [{"name": "default", "properties": {"addressPrefix": space.replace("/16", "/24")}}],
        },
    }
    site.put(path, NET, body, expect=201)
    return f"{path}/subnets/default"


def _endpoint_body(subnet: str, scope: str, *, manual: bool = False, location: str = "eastus") -> dict[str, Any]:
    key = "manualPrivateLinkServiceConnections" if manual else "privateLinkServiceConnections"
    connection = {"privateLinkServiceId": scope, "groupIds": ["hybridcompute"], "requestMessage": "please"}
    return {
        "location": location,
        "properties": {"subnet": {"id": subnet}, key: [{"name": "c", "properties": connection}]},
    }


def _join(site: Site, agent: Agent, scope: str | None) -> httpx.Response:
    cluster = site.client.get(agent.path, params=CC_API).json()
    props = {"agentPublicKeyCertificate": cluster["properties"]["agentPublicKeyCertificate"]}
    props |= {"privateLinkState": "Enabled", "privateLinkScopeResourceId": scope} if scope else {}
    body = {"location": "eastus", "identity": {"type": "SystemAssigned"}, "properties": props}
    return site.put(agent.path, CC_API, body)


def _code(r: httpx.Response) -> str:
    return str(r.json()["error"]["code"])


@pytest.fixture(scope="module")
def cli(site: Site, tmp_path_factory: pytest.TempPathFactory) -> Cli:
    """The CLI signed in as the admin, once for the module (no kubeconfig: troubleshoot checks from this machine)."""
    home = tmp_path_factory.mktemp("cli")
    cli = Cli(home / "config", {"KUBECONFIG": str(home / "no-kubeconfig")})
    assert (
        cli.login(site.server, site.server.admin["clientId"], site.server.admin["clientSecret"], "-o", "none").code == 0
    )
    return cli


@pytest.fixture(scope="module")
def world(site: Site) -> dict[str, Any]:
    """Scope S (private only) with endpoint pe-s approved at once; scope T with pe-t asked for manually."""
    s = _scope(site, "scope-s")
    t = _scope(site, "scope-t")
    subnet_s = _vnet(site, "vnet-s", "10.1.0.0/16")
    subnet_t = _vnet(site, "vnet-t", "10.2.0.0/16")
    pe_s = site.path("Microsoft.Network/privateEndpoints", "pe-s")
    pe_t = site.path("Microsoft.Network/privateEndpoints", "pe-t")
    site.put(pe_s, NET, _endpoint_body(subnet_s, s), expect=201)
    site.put(pe_t, NET, _endpoint_body(subnet_t, t, manual=True), expect=201)
    return {"s": s, "t": t, "subnet_s": subnet_s, "subnet_t": subnet_t, "pe_s": pe_s, "pe_t": pe_t}


def test_endpoint_gets_an_address_from_its_subnet_and_its_connection(site: Site, world: dict[str, Any]) -> None:
    pe = site.client.get(world["pe_s"], params=NET).json()
    assert pe["properties"]["provisioningState"] == "Succeeded"
    dns = pe["properties"]["customDnsConfigs"]
    assert {d["ipAddresses"][0] for d in dns} == {"10.1.0.4"}  # .1-.3 are the subnet's, as Azure's
    assert all(d["fqdn"].endswith(".privatelink.halyard.local") for d in dns) and "halyard" not in pe["properties"]
    state = pe["properties"]["privateLinkServiceConnections"][0]["properties"]["privateLinkServiceConnectionState"]
    assert state["status"] == "Approved"
    scope = site.client.get(world["s"], params=HC).json()
    embedded = scope["properties"]["privateEndpointConnections"]
    assert [c["properties"]["privateEndpoint"]["id"] for c in embedded] == [world["pe_s"]]
    # A second endpoint in the same subnet takes the next address.
    second = site.path("Microsoft.Network/privateEndpoints", "pe-s2")
    site.put(second, NET, _endpoint_body(world["subnet_s"], world["s"]), expect=201)
    dns = site.client.get(second, params=NET).json()["properties"]["customDnsConfigs"]
    assert dns[0]["ipAddresses"] == ["10.1.0.5"]
    site.client.delete(second, params=NET)


def test_manual_endpoint_is_pending_until_approved(site: Site, world: dict[str, Any]) -> None:
    pe = site.client.get(world["pe_t"], params=NET).json()
    manual = pe["properties"]["manualPrivateLinkServiceConnections"][0]["properties"]
    assert manual["privateLinkServiceConnectionState"]["status"] == "Pending"
    connections = site.client.get(f"{world['t']}/privateEndpointConnections", params=HC).json()["value"]
    assert [c["properties"]["privateLinkServiceConnectionState"]["status"] for c in connections] == ["Pending"]


def test_limits_are_refused_with_their_error_and_nothing_is_half_created(site: Site, world: dict[str, Any]) -> None:
    pe = site.path("Microsoft.Network/privateEndpoints", "pe-bad")
    # A network's endpoints connect to one scope at most.
    r = site.put(pe, NET, _endpoint_body(world["subnet_s"], world["t"]))
    assert r.status_code == 409 and _code(r) == "VirtualNetworkHasAnotherScope", r.text
    # The endpoint in its network's region.
    r = site.put(pe, NET, _endpoint_body(world["subnet_s"], world["s"], location="westus"))
    assert r.status_code == 400 and _code(r) == "PrivateEndpointLocationMismatch", r.text
    # Unknown scope, malformed id, unknown subnet.
    r = site.put(pe, NET, _endpoint_body(world["subnet_s"], world["s"] + "-nope"))
    assert r.status_code == 404 and _code(r) == "LinkedResourceNotFound", r.text
    r = site.put(pe, NET, _endpoint_body(world["subnet_s"], "/not/an/id"))
    assert r.status_code == 400 and _code(r) == "LinkedInvalidPropertyId", r.text
    r = site.put(pe, NET, _endpoint_body(world["subnet_s"] + "x", world["s"]))
    assert r.status_code == 404, r.text
    assert site.client.get(pe, params=NET).status_code == 404
    connections = site.client.get(f"{world['s']}/privateEndpointConnections", params=HC).json()["value"]
    assert all("pe-bad" not in c["name"] for c in connections)
    # A subnet outside its network, overlapping subnets.
    vnet = site.path("Microsoft.Network/virtualNetworks", "vnet-s")
    r = site.put(f"{vnet}/subnets/out", NET, {"properties": {"addressPrefix": "10.9.0.0/24"}})
    assert r.status_code == 400 and _code(r) == "NetcfgSubnetRangeOutsideVnet", r.text
    r = site.put(f"{vnet}/subnets/overlap", NET, {"properties": {"addressPrefix": "10.1.0.0/25"}})
    assert r.status_code == 400 and _code(r) == "NetcfgSubnetRangesOverlap", r.text
    # A subnet holding an endpoint is not deleted, nor its network (Azure's 400); an empty subnet is.
    for path in (world["subnet_s"], vnet):
        r = site.client.delete(path, params=NET)
        assert r.status_code == 400 and _code(r) == "InUseSubnetCannotBeDeleted", r.text
        assert world["pe_s"].rsplit("/", 1)[-1] in r.json()["error"]["message"]
    assert site.client.get(world["subnet_s"], params=NET).status_code == 200
    site.put(f"{vnet}/subnets/empty", NET, {"properties": {"addressPrefix": "10.1.9.0/24"}}, expect=201)
    r = site.client.delete(f"{vnet}/subnets/empty", params=NET)
    assert r.status_code in (200, 202, 204), r.text
    if r.status_code == 202:
        site.settle(r.headers["Azure-AsyncOperation"])
    assert site.client.get(f"{vnet}/subnets/empty", params=NET).status_code == 404


def test_cluster_scope_rules(site: Site, world: dict[str, Any]) -> None:
    agent = connect(site.server, GROUP, "cc-rules")
    cluster = site.client.get(agent.path, params=CC_API).json()
    base = {"location": "eastus", "identity": {"type": "SystemAssigned"}}
    key = cluster["properties"]["agentPublicKeyCertificate"]
    cases = [
        ({"privateLinkState": "Enabled"}, "PrivateLinkScopeRequired"),
        ({"privateLinkScopeResourceId": world["s"]}, "PrivateLinkScopeWithoutPrivateLink"),
        ({"privateLinkState": "Enabled", "privateLinkScopeResourceId": world["s"] + "x"}, "LinkedResourceNotFound"),
        ({"privateLinkState": "Enabled", "privateLinkScopeResourceId": "/x/y"}, "LinkedInvalidPropertyId"),
    ]
    for props, code in cases:
        r = site.client.put(
            agent.path, params=CC_API, json={**base, "properties": {"agentPublicKeyCertificate": key, **props}}
        )
        assert r.status_code in (400, 404) and _code(r) == code, (props, r.text)
    west = _scope(site, "scope-west", location="westus")
    r = _join(site, agent, west)
    assert r.status_code == 400 and _code(r) == "PrivateLinkScopeLocationMismatch", r.text


def test_enforcement_table_row_by_row(site: Site, world: dict[str, Any]) -> None:
    outside = connect(site.server, GROUP, "cc-outside")
    inside = connect(site.server, GROUP, "cc-inside")
    in_t = connect(site.server, GROUP, "cc-in-t")
    assert _join(site, inside, world["s"]).status_code == 200
    assert _join(site, in_t, world["t"]).status_code == 200

    # In no scope: served publicly, refused through any endpoint.
    assert site.beat(outside).status_code == 200
    r = site.beat(outside, via="pe-s")
    assert r.status_code == 403 and _code(r) == "PrivateEndpointClusterNotInScope", r.text
    # In scope S: served through S's approved endpoint; publicly only while S allows public access.
    assert site.beat(inside, via="pe-s").status_code == 200
    r = site.beat(inside)
    assert r.status_code == 403 and _code(r) == "PrivateLinkScopePublicNetworkAccessDisabled", r.text
    r = site.client.patch(world["s"], params=HC, json={"properties": {"publicNetworkAccess": "Enabled"}})
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        site.settle(r.headers["Azure-AsyncOperation"])
    assert site.beat(inside).status_code == 200  # flipped at run time, no restart
    site.client.patch(world["s"], params=HC, json={"properties": {"publicNetworkAccess": "Disabled"}})
    # In scope S through an endpoint of another scope.
    r = site.beat(inside, via="pe-t")
    assert r.status_code == 403 and _code(r) == "PrivateEndpointOfAnotherScope", r.text
    # In scope T through T's endpoint while its connection is Pending; approved; then rejected.
    r = site.beat(in_t, via="pe-t")
    assert r.status_code == 403 and _code(r) == "PrivateEndpointConnectionNotApproved", r.text
    connection = site.client.get(f"{world['t']}/privateEndpointConnections", params=HC).json()["value"][0]
    approve = {"properties": {"privateLinkServiceConnectionState": {"status": "Approved", "description": "ok"}}}
    r = site.put(connection["id"], HC, approve)
    assert r.status_code == 200, r.text
    assert site.beat(in_t, via="pe-t").status_code == 200
    pe = site.client.get(world["pe_t"], params=NET).json()["properties"]["manualPrivateLinkServiceConnections"][0]
    assert pe["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"
    reject = {"properties": {"privateLinkServiceConnectionState": {"status": "Rejected", "description": "no"}}}
    assert site.put(connection["id"], HC, reject).status_code == 200
    r = site.beat(in_t, via="pe-t")
    assert r.status_code == 403 and _code(r) == "PrivateEndpointConnectionNotApproved", r.text
    r = site.client.put(connection["id"], params=HC, json=approve)
    assert r.status_code == 409 and _code(r) == "PrivateEndpointConnectionStateFinal", r.text
    # Leaving the scope without re-onboarding: served publicly again.
    assert _join(site, inside, None).status_code == 200
    assert site.beat(inside).status_code == 200

    metrics = site.client.get("/metrics").text
    refused = [line for line in metrics.splitlines() if line.startswith("halyard_private_link_decisions_total{")]
    assert any('rule="PrivateEndpointOfAnotherScope"' in x and x.endswith(" 1.0") for x in refused), refused


def test_dns_zone_group_writes_the_endpoint_records(site: Site, world: dict[str, Any]) -> None:
    zone = site.path("Microsoft.Network/privateDnsZones", "privatelink.halyard.local")
    site.put(zone, DNS, {"location": "global"}, expect=201)
    vnet = world["subnet_s"].rsplit("/subnets/", 1)[0]
    link = {"location": "global", "properties": {"virtualNetwork": {"id": vnet}, "registrationEnabled": False}}
    site.put(f"{zone}/virtualNetworkLinks/l1", DNS, link, expect=201)
    group = {"properties": {"privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone}}]}}
    site.put(f"{world['pe_s']}/privateDnsZoneGroups/default", NET, group, expect=201)
    records = site.client.get(f"{zone}/A", params=DNS).json()["value"]
    scope_id = site.client.get(world["s"], params=HC).json()["properties"]["privateLinkScopeId"]
    assert {r["name"] for r in records} >= {f"{scope_id}.his", f"{scope_id}.dp", f"{scope_id}.relay"}
    assert all(r["properties"]["aRecords"] == [{"ipv4Address": "10.1.0.4"}] for r in records)

    # halyard dns serves them from the store, over the real protocol, to the zones linked to the network only.
    port = free_port()
    args = [*HALYARD, "dns", "--port", str(port), "--data-dir", str(site.server.data_dir), "--virtual-network", vnet]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        name = f"{scope_id}.his.privatelink.halyard.local"
        response = _resolve(name, port)
        assert response.rcode() == dns.rcode.NOERROR and [str(x) for x in response.answer[0]] == ["10.1.0.4"]
        assert _resolve("example.com", port).rcode() == dns.rcode.REFUSED
        tcp = dns.query.tcp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=5)
        assert [str(x) for x in tcp.answer[0]] == ["10.1.0.4"]
    finally:
        proc.terminate()
        proc.wait(10)
    # Linked to another network: nothing is served there.
    other = world["subnet_t"].rsplit("/subnets/", 1)[0]
    proc = subprocess.Popen([*args[:-1], other], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _resolve(f"{scope_id}.his.privatelink.halyard.local", port).rcode() == dns.rcode.REFUSED
    finally:
        proc.terminate()
        proc.wait(10)


def _resolve(name: str, port: int) -> dns.message.Message:
    """A UDP query, retried while the responder starts."""
    deadline = time.monotonic() + 20
    while True:
        try:
            return dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", port=port, timeout=0.5)
        except (dns.exception.Timeout, ConnectionRefusedError, OSError):
            assert time.monotonic() < deadline, "halyard dns did not answer"


def test_private_link_resources_name_the_group_members_and_zone(site: Site, world: dict[str, Any]) -> None:
    listed = site.client.get(f"{world['s']}/privateLinkResources", params={"api-version": "2021-05-20"}).json()
    assert [x["properties"]["groupId"] for x in listed["value"]] == ["hybridcompute"]
    one = site.client.get(f"{world['s']}/privateLinkResources/hybridcompute", params=HC).json()
    assert one["properties"]["requiredZoneNames"] == ["privatelink.halyard.local"]
    assert {"his", "dp", "relay"} <= set(one["properties"]["requiredMembers"])
    r = site.client.get(f"{world['s']}/privateLinkResources/other", params=HC)
    assert r.status_code == 404
    r = site.client.get(f"{world['s']}-missing/privateLinkResources", params=HC)
    assert r.status_code == 404


def test_dns_config_prints_the_records_to_paste(site: Site, world: dict[str, Any], cli: Cli) -> None:
    scope_id = site.client.get(world["s"], params=HC).json()["properties"]["privateLinkScopeId"]
    his = f"{scope_id}.his.privatelink.halyard.local"
    base = ("network", "private-endpoint", "dns-config", "-g", GROUP, "-n", "pe-s")
    assert f"address=/{his}/10.1.0.4\n" in cli.ok(*base, "--format", "dnsmasq")
    assert f"10.1.0.4\t{his}\n" in cli.ok(*base, "--format", "hosts")
    assert f"{his}.\t10\tIN\tA\t10.1.0.4\n" in cli.ok(*base, "--format", "zone")
    table = cli.ok(*base)
    assert table.startswith("FQDN") and his in table
    assert "must be one of" in cli.run(*base, "--format", "bind").error
    assert cli.run("network", "private-endpoint", "dns-config", "-g", GROUP, "-n", "nope").code != 0


def _forwarder_files(site: Site, endpoint: str, out: Path) -> Path:
    args = [*HALYARD, "endpoint", "certificate", "--endpoint", endpoint, "--out", str(out)]
    done = subprocess.run([*args, "--data-dir", str(site.server.data_dir)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return out


def _mtls(site: Site, files: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=site.server.ca)
    context.load_cert_chain(str(files / "endpoint.pem"), str(files / "endpoint.key"))
    return context


def test_forwarder_carries_agents_through_its_endpoint_and_nothing_else_can_claim_one(
    site: Site, world: dict[str, Any], tmp_path: Path
) -> None:
    pe_s = site.client.get(world["pe_s"], params=NET).json()["id"]
    files = _forwarder_files(site, pe_s, tmp_path / "pe-s")
    assert (files / "endpoint.key").stat().st_mode & 0o077 == 0
    site.ports["forwarder"] = port = free_port()
    args = [*HALYARD, "endpoint", "run", "--endpoint", pe_s, "--listen", f"127.0.0.1:{port}", "--ingress",
            f"127.0.0.1:{site.ports['ingress']}", "--cert", str(files / "endpoint.pem"), "--key",
            str(files / "endpoint.key"), "--ca", str(files / "ca.pem")]  # fmt: skip
    forwarder = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        member = connect(site.server, GROUP, "cc-forwarded")
        outsider = connect(site.server, GROUP, "cc-forwarded-out")
        assert _join(site, member, world["s"]).status_code == 200
        deadline = time.monotonic() + 20
        while True:
            try:
                r = site.beat(member, via="forwarder")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline, forwarder.stderr
                time.sleep(0.1)
        assert r.status_code == 200, r.text  # arrived through pe-s, approved on S
        r = site.beat(outsider, via="forwarder")
        assert r.status_code == 403 and _code(r) == "PrivateEndpointClusterNotInScope", r.text
        r = site.beat(member)  # publicly: S is private only
        assert r.status_code == 403 and _code(r) == "PrivateLinkScopePublicNetworkAccessDisabled", r.text
        # The relay (cluster connect) too: its tunnel registers through the endpoint and is refused publicly.
        assert _tunnel(site, member, port).startswith(b"HTTP/1.1 101"), "tunnel refused through the endpoint"
        public_tunnel = _tunnel(site, member, site.ports["public"])
        assert (
            public_tunnel.startswith(b"HTTP/1.1 403")
            and b"PrivateLinkScopePublicNetworkAccessDisabled" in public_tunnel
        )
    finally:
        forwarder.terminate()
        forwarder.wait(10)

    header = proxyv2.encode(("10.1.0.9", 4000), ("10.1.0.4", 443), {proxyv2.TLV_ENDPOINT: pe_s.encode()})
    request = (
        f"POST /dp/v1/heartbeat HTTP/1.1\r\nHost: x\r\nAuthorization: {member.headers['Authorization']}\r\n"
        "Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()
    # A forged PROXY header on the public listener is not a header there: nothing is served.
    public = ssl.create_default_context(cafile=site.server.ca)
    with socket.create_connection(("127.0.0.1", site.ports["public"]), timeout=10) as raw:
        with public.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(header + request)
            answer = tls.recv(4096)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    # The ingress: no client certificate, no connection; another endpoint's certificate cannot name pe-s.
    assert _refused(public, site.ports["ingress"], header)
    pe_t = site.client.get(world["pe_t"], params=NET).json()["id"]
    other = _mtls(site, _forwarder_files(site, pe_t, tmp_path / "pe-t"))
    assert _refused(other, site.ports["ingress"], header + b"\x16\x03\x01")
    own = _mtls(site, tmp_path / "pe-s")  # and pe-s's own certificate with a header naming pe-t is refused too
    pe_t_header = proxyv2.encode(("10.1.0.9", 4000), ("10.1.0.4", 443), {proxyv2.TLV_ENDPOINT: pe_t.encode()})
    assert _refused(own, site.ports["ingress"], pe_t_header + b"\x16\x03\x01")
    # A certificate for an endpoint that does not exist is never issued.
    missing = [*HALYARD, "endpoint", "certificate", "--endpoint", pe_s + "-nope", "--out", str(tmp_path / "x"),
               "--data-dir", str(site.server.data_dir)]  # fmt: skip
    assert subprocess.run(missing, capture_output=True, timeout=60).returncode != 0


@pytest.mark.parametrize(("case", "cut"), [("one-record", None), ("in-signature", 10), ("in-tlv", -5)])
def test_ingress_reads_the_header_alone_however_the_bytes_come(
    site: Site, world: dict[str, Any], tmp_path: Path, case: str, cut: int | None
) -> None:
    """The ingress takes exactly the PROXY header and hands the rest (the agent's own TLS) to the HTTP stack,
    whether the agent's first bytes share the header's TLS record or the header comes in pieces: an agent's TLS,
    inside a forwarder's mutual TLS, gets its heartbeat answered as arriving through pe-s."""
    pe_s = site.client.get(world["pe_s"], params=NET).json()["id"]
    outer = _mtls(site, _forwarder_files(site, pe_s, tmp_path / "pe-s"))
    member = connect(site.server, GROUP, f"cc-inline-{case}")
    assert _join(site, member, world["s"]).status_code == 200
    header = proxyv2.encode(("10.1.0.9", 4000), ("10.1.0.4", 443), {proxyv2.TLV_ENDPOINT: pe_s.encode()})
    body = b'{"agentVersion": "1.0.0"}'
    request = (
        f"POST /dp/v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {member.headers['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    inner = ssl.create_default_context(cafile=site.server.ca).wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    try:
        with socket.create_connection(("127.0.0.1", site.ports["ingress"]), timeout=10) as raw:
            with outer.wrap_socket(raw, server_hostname="127.0.0.1") as tls:

                def pump() -> None:
                    data = tls.recv(65536)
                    assert data, "the ingress closed the connection"
                    incoming.write(data)

                with pytest.raises(ssl.SSLWantReadError):
                    inner.do_handshake()
                first = header + outgoing.read()  # the PROXY header and the agent's ClientHello
                if cut is None:
                    tls.sendall(first)  # one write, one TLS record
                else:
                    tls.sendall(first[:cut])
                    time.sleep(0.05)  # the ingress reads the piece before the rest comes
                    tls.sendall(first[cut:])
                while True:
                    try:
                        inner.do_handshake()
                        break
                    except ssl.SSLWantReadError:
                        pump()
                inner.write(request)
                tls.sendall(outgoing.read())  # the agent's Finished and its request
                answer = b""
                while b"\r\n\r\n" not in answer or not answer.endswith(b"}"):
                    try:
                        answer += inner.read(65536)
                    except ssl.SSLWantReadError:
                        pump()
        assert answer.startswith(b"HTTP/1.1 200"), answer[:800]
    finally:
        assert _join(site, member, None).status_code == 200


def test_deleting_an_endpoint_revokes_its_forwarders_certificates(
    site: Site, world: dict[str, Any], tmp_path: Path
) -> None:
    """The ingress accepts a forwarder's certificate while it is on record and not revoked: from the commit that
    deletes its endpoint on, its forwarder is refused at once (and the server's log says why), also when an endpoint
    of the same name is made again; a certificate of the endpoint CA that was never issued is refused too."""
    pe = site.path("Microsoft.Network/privateEndpoints", "pe-revoked")
    site.put(pe, NET, _endpoint_body(world["subnet_s"], world["s"]), expect=201)
    endpoint = site.client.get(pe, params=NET).json()["id"]
    files = _forwarder_files(site, endpoint, tmp_path / "pe")
    serial = format(x509.load_pem_x509_certificate((files / "endpoint.pem").read_bytes()).serial_number, "x")
    port = free_port()
    args = [*HALYARD, "endpoint", "run", "--endpoint", endpoint, "--listen", f"127.0.0.1:{port}", "--ingress",
            f"127.0.0.1:{site.ports['ingress']}", "--cert", str(files / "endpoint.pem"), "--key",
            str(files / "endpoint.key"), "--ca", str(files / "ca.pem")]  # fmt: skip
    forwarder = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    member = connect(site.server, GROUP, "cc-revoked")
    assert _join(site, member, world["s"]).status_code == 200
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                r = _beat_at(site, member, port)
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        assert r.status_code == 200, r.text  # through pe-revoked, approved on S
        # A connection open when the endpoint goes is cut too, not only refused request by request.
        agent_tls = ssl.create_default_context(cafile=site.server.ca)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
            with agent_tls.wrap_socket(raw, server_hostname="127.0.0.1") as open_one:
                open_one.sendall(_heartbeat_request(member))
                assert open_one.recv(4096).startswith(b"HTTP/1.1 200")
                site.settle(site.client.delete(pe, params=NET).headers["Azure-AsyncOperation"])
                open_one.settimeout(15)
                try:
                    assert open_one.recv(4096) == b""  # closed by the ingress without a request from us
                except (ssl.SSLError, ConnectionError):
                    pass  # aborted: as good a cut
        assert "endpoint ingress cut open connections" in site.server.whole_log()
        with pytest.raises(httpx.TransportError):  # the very next connection: the ingress closes it
            _beat_at(site, member, port)
        assert f"certificate {serial} of endpoint {endpoint} was revoked at" in site.server.whole_log()
        # Made again under the same name: the old certificate stays revoked.
        site.put(pe, NET, _endpoint_body(world["subnet_s"], world["s"]), expect=201)
        with pytest.raises(httpx.TransportError):
            _beat_at(site, member, port)
    finally:
        forwarder.terminate()
        forwarder.wait(10)
        assert _join(site, member, None).status_code == 200
    # A certificate the endpoint CA signed that was never issued (not on record) is refused, naming why.
    key, cert, _ = endpointpki.issue(site.server.data_dir, endpoint)
    (tmp_path / "k.pem").write_bytes(key)
    (tmp_path / "c.pem").write_bytes(cert)
    unrecorded = ssl.create_default_context(cafile=site.server.ca)
    unrecorded.load_cert_chain(str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    header = proxyv2.encode(("10.1.0.9", 4000), ("10.1.0.4", 443), {proxyv2.TLV_ENDPOINT: endpoint.encode()})
    assert _refused(unrecorded, site.ports["ingress"], header + b"\x16\x03\x01")
    serial = format(x509.load_pem_x509_certificate(cert).serial_number, "x")
    assert f"certificate {serial} of endpoint {endpoint} is not on record" in site.server.whole_log()


def _beat_at(site: Site, agent: Agent, port: int) -> httpx.Response:
    return httpx.post(f"https://127.0.0.1:{port}/dp/v1/heartbeat", json={"agentVersion": "1.0.0"},
                      headers=agent.headers, verify=site.server.ca, timeout=10)  # fmt: skip


def _heartbeat_request(agent: Agent) -> bytes:
    body = b'{"agentVersion": "1.0.0"}'
    return (
        f"POST /dp/v1/heartbeat HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: {agent.headers['Authorization']}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode() + body


def _refused(context: ssl.SSLContext, port: int, data: bytes) -> bool:
    """The ingress closed the connection without a byte (or failed its handshake) after ``data``."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(data)
                return tls.recv(10) == b""
        except (ssl.SSLError, ConnectionError):
            return True


def _tunnel(site: Site, agent: Agent, port: int) -> bytes:
    """The first bytes of the relay's answer to an agent's tunnel registration on ``port``."""
    context = ssl.create_default_context(cafile=site.server.ca)
    request = (
        f"GET /relay/v1/tunnel HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: halyard-tunnel/1\r\n"
        f"Authorization: {agent.headers['Authorization']}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = tls.recv(4096)
                if not chunk:
                    break
                data += chunk
            if data.startswith(b"HTTP/1.1 403"):
                data += tls.recv(4096)
            return data


def test_troubleshoot_names_each_failure_and_its_fix(site: Site, world: dict[str, Any], cli: Cli) -> None:
    member = connect(site.server, GROUP, "cc-troubled")
    assert _join(site, member, world["s"]).status_code == 200
    assert site.beat(member).status_code == 403  # its agents still on the public address: refused, and recorded
    result = cli.run("connectedk8s", "troubleshoot", "-g", GROUP, "-n", "cc-troubled", "-o", "json")
    assert result.code == 1 and result.stdout, result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["approved endpoints"]["ok"] and "Approved" in checks["approved endpoints"]["detail"]
    scope_id = site.client.get(world["s"], params=HC).json()["properties"]["privateLinkScopeId"]
    dp = checks[f"resolve {scope_id}.dp.privatelink.halyard.local"]  # nothing resolves it on this machine
    assert not dp["ok"] and "dns-config" in dp["fix"] and dp["detail"].startswith("from this machine, not the agents'")
    seen = checks["agents' view"]  # no kubeconfig: said plainly, not a failure of the cluster
    assert seen["ok"] and "not read" in seen["detail"] and "checked from this machine" in seen["detail"], seen
    refused = checks["private link refusals"]
    assert not refused["ok"] and "PrivateLinkScopePublicNetworkAccessDisabled (arrived public)" in refused["detail"]
    assert "dns-config" in refused["fix"]
    outside = connect(site.server, GROUP, "cc-untroubled")
    site.beat(outside)
    result = cli.run("connectedk8s", "troubleshoot", "-g", GROUP, "-n", "cc-untroubled", "-o", "json")
    assert result.stdout, result.stderr
    checks = {c["check"]: c for c in json.loads(result.stdout)}
    assert checks["private link"]["ok"] and checks["cluster status"]["detail"].startswith("Connected"), checks
    assert checks["private link refusals"] == {"check": "private link refusals", "ok": True,
                                               "detail": "none recorded", "fix": ""}  # fmt: skip
    assert result.code == 0, result.stdout


def test_firewall_rules_name_the_endpoint_addresses(site: Site, world: dict[str, Any], cli: Cli) -> None:
    rules = cli.json("private-link-scope", "firewall-rules", "-g", GROUP, "-n", "scope-s", "-o", "json")
    to = {r["to"]: r for r in rules}
    assert to["10.1.0.4"]["port"] == "443/tcp" and ".dp.privatelink.halyard.local" in to["10.1.0.4"]["why"]
    assert "nothing" in to  # scope-s is private only: no public path is needed


class _NoFacts:
    async def facts(self, timeout: float) -> None:
        return None


async def _healthy() -> tuple[str | None, list[Any]]:
    return "Succeeded", []


def _public_access(site: Site, scope: str, value: str) -> None:
    r = site.client.patch(scope, params=HC, json={"properties": {"publicNetworkAccess": value}})
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        site.settle(r.headers["Azure-AsyncOperation"])


def test_an_existing_cluster_follows_its_scope_without_re_onboarding(
    site: Site, world: dict[str, Any], tmp_path: Path
) -> None:
    """Joining and leaving a scope: the heartbeat (or, when the old way is closed, its refusal) carries the new map
    and every agent of the process dials where it says: heartbeat, certificate renewal, token, relay, extensions.
    A proxy playing DNS sends the scope's private names to endpoint pe-s's port and records what was asked."""
    agent = connect(site.server, GROUP, "cc-moving")
    private_host = "privatelink.halyard.local"
    proxy = ConnectProxy(lambda host, port: ("127.0.0.1", site.ports["pe-s"]) if host.endswith(private_host)
                         else (host, port))  # fmt: skip
    ca = Path(site.server.ca).read_text()
    scope_id = site.client.get(world["s"], params=HC).json()["properties"]["privateLinkScopeId"]

    async def scenario(proxy: ConnectProxy) -> None:
        async with http_client(ca, proxy=proxy.url) as http:
            onboarding = EndpointMap.model_validate(
                {
                    **(await http.get(f"{site.server.url}/his/v1/endpoints")).json(),
                    "tenant": site.server.admin["tenant"],
                }
            )
            live = LiveEndpoints(onboarding)
            config = ClusterConfig(agent.path, onboarding, ca, agent.onboarding_key)
            identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics(), endpoints=live)  # type: ignore[arg-type]
            identity.issued = await identity.request_certificate(None)
            identity.ready.set()
            sync = ResourceSync(http, live, identity, _NoFacts(), AgentMetrics(), health=_healthy)
            relay = ClusterConnect(lambda: live.current().relay_url(), identity, ssl.create_default_context(cadata=ca),
                                   None, AgentMetrics(), via=proxy.url)  # type: ignore[arg-type]  # fmt: skip
            extensions = ExtensionManager(http, lambda: live.current().dp, identity, None, None, tmp_path)  # type: ignore[arg-type]
            # arc-proxy (an enterprise proxy is set: the test's) asks the management API of the map followed now.
            arc = ArcProxy(NetworkSettings(proxy=proxy.url), identity, ca,
                           network_url=lambda: f"{live.current().management}{GATEWAY_NETWORK_PATH}")  # fmt: skip
            await arc.start()
            # GitOps' agents, as runner.py builds them: config-agent's long poll, flux-logs-agent's events.
            gitops = ConfigAgent(http, lambda: live.current().dp, identity, None)  # type: ignore[arg-type]
            flux_logs = FluxLogsAgent(http, lambda: live.current().dp, identity, None)  # type: ignore[arg-type]

            def where(hosts: list[str]) -> list[str]:
                return sorted({host.split(".")[1] if host.endswith(private_host) else host for host in hosts})

            async def gitops_agents_dial() -> list[list[str]]:
                """Where each of config-agent and flux-logs-agent dials, on its own."""
                dialled = []
                for dial in (gitops._fetch, lambda: flux_logs._send([])):
                    proxy.forget()
                    await dial()
                    dialled.append(where(proxy.asked))
                return dialled

            async def every_agent_dials() -> list[str]:
                proxy.forget()
                await sync.reconcile()
                identity.issued = await identity.request_certificate(identity.issued)  # renewal, proven by the cert
                identity.forget_token()
                await identity.token()
                tunnel = await relay._dial("/v1/tunnel", TUNNEL_UPGRADE)
                tunnel.transport.close()
                assert "extensions" in await extensions._poll()
                before = len(proxy.asked)
                assert (await arc.refresh()).gateway is None  # answered (this cluster has no gateway or proxy) ...
                arc.apply(NetworkSettings(proxy=proxy.url))  # ... and the test's proxy, which plays DNS, kept
                asked_by_arc = {host.split(".")[1] if host.endswith(private_host) else host
                                for host in proxy.asked[before:]}  # fmt: skip
                assert asked_by_arc == ({"management"} if live.current().management != onboarding.management
                                        else {"127.0.0.1"}), proxy.asked[before:]  # fmt: skip
                return where(proxy.asked)

            # Joining a scope that still allows public access: the next beat's reply carries the private map.
            await sync.reconcile()
            assert sync.last_reply is not None and sync.last_reply.endpoints is None  # in no scope: nothing new
            _public_access(site, world["s"], "Enabled")
            assert _join(site, agent, world["s"]).status_code == 200
            await sync.reconcile()
            assert sync.last_reply.endpoints is not None
            assert sync.last_reply.endpoints.dp == f"https://{scope_id}.dp.{private_host}/dp"
            assert await every_agent_dials() == ["dp", "his", "management", "relay"]
            assert await gitops_agents_dial() == [["dp"], ["dp"]]
            assert sync.last_reply.endpoints is None  # the agents follow it: beats are small again
            _public_access(site, world["s"], "Disabled")

            # his behind enforcement: a renewal of a member of a private-only scope arriving publicly is refused with
            # the rule (and where to go), once the proof is verified; an unproven caller learns nothing.
            stray = IdentityOperator(None, http, config, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
            with pytest.raises(ControlPlaneError) as refused:  # an identity that follows no map stays refused
                await stray.request_certificate(identity.issued)
            assert refused.value.status == 403 and refused.value.code == "PrivateLinkScopePublicNetworkAccessDisabled"
            assert (refused.value.info(ENDPOINTS_INFO) or {}).get("his") == live.current().his
            # One following a map follows the refusal's (a cluster onboarded straight into a private-only scope).
            public = LiveEndpoints(onboarding)
            follower = IdentityOperator(None, http, config, SystemClock(), AgentMetrics(), endpoints=public)  # type: ignore[arg-type]
            assert (await follower.request_certificate(identity.issued)).certificate
            assert public.current().his == live.current().his
            forged = ClusterConfig(agent.path, onboarding, ca, ec.generate_private_key(ec.SECP256R1()))
            stranger = IdentityOperator(None, http, forged, SystemClock(), AgentMetrics())  # type: ignore[arg-type]
            with pytest.raises(ControlPlaneError) as unproven:
                await stranger.request_certificate(None)
            assert unproven.value.status == 401, unproven.value

            # Leaving: the next beat, through the endpoint, is refused with the public map; followed at once.
            assert _join(site, agent, None).status_code == 200
            proxy.forget()
            await sync.reconcile()
            assert proxy.asked[0].endswith(private_host) and proxy.asked[-1] == "127.0.0.1", proxy.asked
            assert live.current() == onboarding
            assert await every_agent_dials() == ["127.0.0.1"]
            assert await gitops_agents_dial() == [["127.0.0.1"], ["127.0.0.1"]]

            # Joining a private-only scope: the public beat's refusal names the private map; followed at once.
            assert _join(site, agent, world["s"]).status_code == 200
            await sync.reconcile()
            assert live.current().his == f"https://{scope_id}.his.{private_host}/his"
            assert await every_agent_dials() == ["dp", "his", "management", "relay"]
            assert _join(site, agent, None).status_code == 200
            await arc.close()

    with proxy.running():
        asyncio.run(scenario(proxy))


def test_restarted_local_agents_dial_the_private_endpoint_first(
    site: Site, world: dict[str, Any], tmp_path: Path
) -> None:
    """Local mode keeps the map its agents follow in their state directory: agents restarted while their cluster is
    in a private-only scope dial its private names from their first beat (no public attempt, no refusal)."""
    agent = connect(site.server, GROUP, "cc-restarted")
    assert _join(site, agent, world["s"]).status_code == 200
    private_host = "privatelink.halyard.local"
    proxy = ConnectProxy(lambda host, port: ("127.0.0.1", site.ports["pe-s"]) if host.endswith(private_host)
                         else (host, port))  # fmt: skip
    ca = Path(site.server.ca).read_text()
    kept = tmp_path / "state" / KEPT_FILE
    kept.parent.mkdir()

    async def run_agents(onboarding: EndpointMap, issued: Any) -> tuple[IdentityOperator, LiveEndpoints]:
        """The agents of one process (a fresh client, map and identity operator, as after a restart): a
        certificate (renewed once there is one), a token and a beat."""
        async with http_client(ca, proxy=proxy.url) as http:
            live = LiveEndpoints(onboarding, kept)
            config = ClusterConfig(agent.path, onboarding, ca, agent.onboarding_key)
            identity = IdentityOperator(None, http, config, SystemClock(), AgentMetrics(), endpoints=live)  # type: ignore[arg-type]
            identity.issued = await identity.request_certificate(issued)
            identity.ready.set()
            await ResourceSync(http, live, identity, _NoFacts(), AgentMetrics(), health=_healthy).reconcile()
            return identity, live

    async def scenario() -> None:
        async with http_client(ca) as http:
            answer = (await http.get(f"{site.server.url}/his/v1/endpoints")).json()
        onboarding = EndpointMap.model_validate({**answer, "tenant": site.server.admin["tenant"]})
        # First start: onboarding's (public) map; the public certificate request is refused with the private map,
        # which is followed (and kept).
        proxy.forget()
        identity, live = await run_agents(onboarding, None)
        assert proxy.asked[0] == "127.0.0.1" and private_host in live.current().dp, proxy.asked
        assert kept.exists()
        # Restart: the first connection of every agent goes to the scope's private names.
        proxy.forget()
        _, restarted = await run_agents(onboarding, identity.issued)
        assert restarted.current() == live.current()
        assert {host.split(".")[1] for host in proxy.asked} == {"his", "management", "dp"}, proxy.asked
        assert all(host.endswith(private_host) for host in proxy.asked), proxy.asked

    with proxy.running():
        asyncio.run(scenario())
    assert _join(site, agent, None).status_code == 200


def test_deleting_an_endpoint_takes_its_connection_and_a_used_scope_is_not_deleted(
    site: Site, world: dict[str, Any]
) -> None:
    gone = site.path("Microsoft.Network/privateEndpoints", "pe-gone")  # an endpoint deleted after its approval
    site.put(gone, NET, _endpoint_body(world["subnet_s"], world["s"]), expect=201)
    connection = site.client.get(gone, params=NET).json()["properties"]["privateLinkServiceConnections"][0]
    embedded = site.client.get(world["s"], params=HC).json()["properties"]["privateEndpointConnections"]
    ours = [c["id"] for c in embedded if c["properties"]["privateEndpoint"]["id"].lower() == gone.lower()]
    assert len(ours) == 1 and connection["properties"]["privateLinkServiceConnectionState"]["status"] == "Approved"
    site.settle(site.client.delete(gone, params=NET).headers["Azure-AsyncOperation"])
    assert site.client.get(ours[0], params=HC).status_code == 404
    embedded = site.client.get(world["s"], params=HC).json()["properties"]["privateEndpointConnections"]
    assert ours[0] not in [c["id"] for c in embedded]

    scope = _scope(site, "scope-used")
    member = connect(site.server, GROUP, "cc-member-of-used")
    assert _join(site, member, scope).status_code == 200
    r = site.client.delete(scope, params=HC)
    assert r.status_code == 409 and _code(r) == "PrivateLinkScopeInUse", r.text
    assert "cc-member-of-used" in r.json()["error"]["message"]
    assert site.client.get(scope, params=HC).status_code == 200  # nothing changed
    assert _join(site, member, None).status_code == 200
    r = site.client.delete(scope, params=HC)
    assert r.status_code in (200, 202), r.text
    if r.status_code == 202:
        site.settle(r.headers["Azure-AsyncOperation"])
    assert site.client.get(scope, params=HC).status_code == 404


def test_update_moves_a_cluster_into_and_out_of_a_scope(site: Site, world: dict[str, Any], cli: Cli) -> None:
    agent = connect(site.server, GROUP, "cc-updated")
    update = ("connectedk8s", "update", "-g", GROUP, "-n", "cc-updated")
    refused = cli.run(*update, "--private-link-scope-resource-id", world["s"])
    assert refused.code != 0 and "--enable-private-link true" in refused.stderr, refused.stderr
    shown = cli.json(*update, "--enable-private-link", "true", "--private-link-scope-resource-id", world["s"])
    props = site.client.get(agent.path, params=CC_API).json()["properties"]
    assert props["privateLinkState"] == "Enabled" and props["privateLinkScopeResourceId"].lower() == world["s"].lower()
    assert shown, shown
    r = site.beat(agent)  # scope-s is private only: the public path is closed from now on
    assert r.status_code == 403 and _code(r) == "PrivateLinkScopePublicNetworkAccessDisabled", r.text
    cli.json(*update, "--enable-private-link", "false")
    props = site.client.get(agent.path, params=CC_API).json()["properties"]
    assert props.get("privateLinkState") != "Enabled" and not props.get("privateLinkScopeResourceId"), props
    assert site.beat(agent).status_code == 200
