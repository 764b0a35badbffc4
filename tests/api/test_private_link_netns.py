"""Private link end to end in network namespaces the test creates (issue 13): nothing but loopback and veth pairs
between namespaces, all removed afterwards.

    root namespace  ── control plane: public listener on 127.0.0.1, endpoint ingress on 10.88.0.1 (veth)
    "vnet"          ── 10.88.0.2 toward the control plane; 10.1.0.4 (the endpoint: halyard endpoint run) and
                       10.1.0.53 (halyard dns) toward on-prem, as a VPN would route them
    "onprem"        ── 10.1.0.9, the cluster's agents and a real dnsmasq forwarding privatelink.halyard.local to
                       halyard dns; no route to the control plane's addresses

The agents' requests from on-prem resolve the endpoint's name through dnsmasq, reach it, and are served as arriving
through it; the public address is unreachable from there.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api.agentcreds import connect
from tests.api.helpers import CC_API, RG_API, group_path
from tests.support.processes import HALYARD, ServerProcess, free_port

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(
        os.geteuid() != 0 or not shutil.which("ip") or not shutil.which("dnsmasq"),
        reason="needs root, iproute2 and dnsmasq (scripts/install-system-deps.sh)",
    ),
]
HC = {"api-version": "2026-07-15"}
NET = {"api-version": "2026-01-01"}
DNS = {"api-version": "2018-09-01"}
GROUP = "rg-netns"
INGRESS = "10.88.0.1"

# Run inside "onprem": resolve through dnsmasq (127.0.0.1), then speak HTTPS to the address with the name for TLS.
AGENT = textwrap.dedent(
    """
    import json, socket, ssl, sys
    import dns.message, dns.query
    name, path, token, ca = sys.argv[1:5]
    reply = dns.query.udp(dns.message.make_query(name, "A"), "127.0.0.1", timeout=5)
    addresses = [str(r) for rrset in reply.answer for r in rrset]
    out = {"addresses": addresses, "status": None}
    if addresses:
        context = ssl.create_default_context(cafile=ca)
        with socket.create_connection((addresses[0], 443), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                body = b'{"agentVersion":"1.0.0"}'
                head = (f"POST {path} HTTP/1.1\\r\\nHost: {name}\\r\\nAuthorization: Bearer {token}\\r\\n"
                        f"Content-Type: application/json\\r\\nContent-Length: {len(body)}\\r\\nConnection: close\\r\\n\\r\\n")
                tls.sendall(head.encode() + body)
                data = b""
                while chunk := tls.recv(65536):
                    data += chunk
        out["status"] = int(data.split(b" ", 2)[1])
        out["body"] = data.split(b"\\r\\n\\r\\n", 1)[1].decode(errors="replace")
    print(json.dumps(out))
    """
)


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class Namespaces:
    def __init__(self) -> None:
        tag = uuid.uuid4().hex[:6]
        self.vnet, self.onprem = f"hl-vnet-{tag}", f"hl-onprem-{tag}"
        self.links = (f"hlc{tag}", f"hlo{tag}")

    def create(self) -> None:
        to_cp = self.links[0]
        for ns in (self.vnet, self.onprem):
            _ip("netns", "add", ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        # The control plane's side: a veth whose root end holds the ingress address.
        _ip("link", "add", to_cp, "type", "veth", "peer", "name", "v0", "netns", self.vnet)
        _ip("addr", "add", f"{INGRESS}/24", "dev", to_cp)
        _ip("link", "set", to_cp, "up")
        _ip("-n", self.vnet, "addr", "add", "10.88.0.2/24", "dev", "v0")
        _ip("-n", self.vnet, "link", "set", "v0", "up")
        # vnet ↔ on-prem (the VPN): the endpoint and DNS addresses are vnet's; on-prem has no other route.
        _ip("-n", self.vnet, "link", "add", "o0", "type", "veth", "peer", "name", "p0", "netns", self.onprem)
        for address in ("10.1.0.1/24", "10.1.0.4/32", "10.1.0.53/32"):
            _ip("-n", self.vnet, "addr", "add", address, "dev", "o0")
        _ip("-n", self.vnet, "link", "set", "o0", "up")
        _ip("-n", self.onprem, "addr", "add", "10.1.0.9/24", "dev", "p0")
        _ip("-n", self.onprem, "link", "set", "p0", "up")

    def delete(self) -> None:
        subprocess.run(["ip", "link", "del", self.links[0]], capture_output=True)
        for ns in (self.vnet, self.onprem):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)

    def run(self, ns: str, args: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        return subprocess.Popen(["ip", "netns", "exec", ns, *args], **kwargs)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Namespaces, ServerProcess]]:
    namespaces = Namespaces()
    namespaces.create()
    server = None
    try:
        data = tmp_path_factory.mktemp("netns") / "data"
        server = ServerProcess(data, free_port(), env={"HALYARD_ENDPOINT_INGRESS": f"{INGRESS}:8444"}).start()
        yield namespaces, server
    finally:
        if server is not None:
            server.stop()
        namespaces.delete()


def _settle(c: Any, r: Any) -> None:
    assert r.status_code in (200, 201), r.text
    url = r.headers.get("Azure-AsyncOperation")
    for _ in range(400):
        if url is None or c.get(url).json()["status"] != "InProgress":
            return
        time.sleep(0.05)


def test_agents_on_prem_reach_the_control_plane_only_through_the_endpoint(
    site: tuple[Namespaces, ServerProcess], tmp_path: Path
) -> None:
    ns, server = site
    group = group_path(server, GROUP)
    scope = f"{group}/providers/Microsoft.HybridCompute/privateLinkScopes/site"
    vnet = f"{group}/providers/Microsoft.Network/virtualNetworks/site"
    pe = f"{group}/providers/Microsoft.Network/privateEndpoints/pe-site"
    zone = f"{group}/providers/Microsoft.Network/privateDnsZones/privatelink.halyard.local"
    with server.client() as c:
        _settle(c, c.put(group, params=RG_API, json={"location": "eastus"}))
        _settle(
            c, c.put(scope, params=HC, json={"location": "eastus", "properties": {"publicNetworkAccess": "Disabled"}})
        )
        body: dict[str, Any] = {"location": "eastus", "properties": {"addressSpace": {"addressPrefixes": ["10.1.0.0/16"]},
                "subnets": [{"name": "endpoints", "properties": {"addressPrefix": "10.1.0.0/24"}}]}}  # fmt: skip
        _settle(c, c.put(vnet, params=NET, json=body))
        connection = {"name": "c", "properties": {"privateLinkServiceId": scope, "groupIds": ["hybridcompute"]}}
        body = {"location": "eastus", "properties": {"subnet": {"id": f"{vnet}/subnets/endpoints"},
                                                     "privateLinkServiceConnections": [connection]}}  # fmt: skip
        _settle(c, c.put(pe, params=NET, json=body))
        _settle(c, c.put(zone, params=DNS, json={"location": "global"}))
        link = {"location": "global", "properties": {"virtualNetwork": {"id": vnet}, "registrationEnabled": False}}
        _settle(c, c.put(f"{zone}/virtualNetworkLinks/site", params=DNS, json=link))
        configs = {"privateDnsZoneConfigs": [{"name": "z", "properties": {"privateDnsZoneId": zone}}]}
        _settle(c, c.put(f"{pe}/privateDnsZoneGroups/default", params=NET, json={"properties": configs}))
        endpoint = c.get(pe, params=NET).json()
        scope_id = c.get(scope, params=HC).json()["properties"]["privateLinkScopeId"]
    assert endpoint["properties"]["customDnsConfigs"][0]["ipAddresses"] == ["10.1.0.4"]
    agent = connect(server, GROUP, "edge-1")  # onboarded publicly, then joins the private-only scope
    with server.client() as c:
        cluster = c.get(agent.path, params=CC_API).json()
        cluster["properties"] |= {"privateLinkState": "Enabled", "privateLinkScopeResourceId": scope}
        _settle(
            c, c.put(agent.path, params=CC_API, json={k: cluster[k] for k in ("location", "identity", "properties")})
        )

    files = tmp_path / "pe"
    cert = [*HALYARD, "endpoint", "certificate", "--endpoint", endpoint["id"], "--out", str(files), "--data-dir",
            str(server.data_dir)]  # fmt: skip
    subprocess.run(cert, check=True, capture_output=True, timeout=60)
    python = sys.executable
    processes = [
        ns.run(
            ns.vnet,
            [
                *HALYARD,
                "endpoint",
                "run",
                "--endpoint",
                endpoint["id"],
                "--listen",
                "10.1.0.4:443",
                "--ingress",
                f"{INGRESS}:8444",
                "--cert",
                str(files / "endpoint.pem"),
                "--key",
                str(files / "endpoint.key"),
                "--ca",
                str(files / "ca.pem"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        ns.run(
            ns.vnet,
            [
                *HALYARD,
                "dns",
                "--host",
                "10.1.0.53",
                "--port",
                "53",
                "--data-dir",
                str(server.data_dir),
                "--virtual-network",
                vnet,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
        ns.run(
            ns.onprem,
            [
                "dnsmasq",
                "--no-daemon",
                "--no-resolv",
                "--no-hosts",
                "--bind-interfaces",
                "--listen-address=127.0.0.1",
                "--port=53",
                "--user=root",
                f"--pid-file={tmp_path / 'dnsmasq.pid'}",
                "--server=/privatelink.halyard.local/10.1.0.53",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ),
    ]
    script = tmp_path / "agent.py"
    script.write_text(AGENT)

    def beat() -> dict[str, Any]:
        name = f"{scope_id}.dp.privatelink.halyard.local"
        args = [python, str(script), name, "/dp/v1/heartbeat", agent.token, server.ca]
        done = ns.run(ns.onprem, args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = done.communicate(timeout=30)
        assert done.returncode == 0, err.decode()[-2000:]
        return dict(json.loads(out))

    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                result = beat()
                if result["status"] is not None:
                    break
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.3)
        assert result["addresses"] == ["10.1.0.4"]  # dnsmasq → halyard dns → the endpoint's address
        assert result["status"] == 200, result  # served as arriving through pe-site, approved on the scope

        # From on-prem the control plane's own addresses are unreachable: only the endpoint leads there.
        probe = f"import socket\nfor a in (('{INGRESS}', 8444), ('127.0.0.1', {server.port})):\n" \
                "    try:\n        socket.create_connection(a, timeout=2); print('reached', a)\n" \
                "    except OSError: pass\n"  # fmt: skip
        reached = ns.run(ns.onprem, [python, "-c", probe], stdout=subprocess.PIPE).communicate(timeout=30)[0]
        assert reached == b"", reached

        # The endpoint's connection rejected: the same path is refused, naming the rule.
        with server.client() as c:
            conn = c.get(f"{scope}/privateEndpointConnections", params=HC).json()["value"][0]
            reject = {"properties": {"privateLinkServiceConnectionState": {"status": "Rejected"}}}
            _settle(c, c.put(conn["id"], params=HC, json=reject))
        result = beat()
        assert result["status"] == 403 and "PrivateEndpointConnectionNotApproved" in result["body"], result
    finally:
        for proc in processes:
            proc.terminate()
        for proc in processes:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
