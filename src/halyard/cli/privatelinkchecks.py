"""What ``connectedk8s troubleshoot`` checks from the control plane's side and from this machine, each with the fix
in one line (the private link guide's troubleshooting by hand with nslookup, automated): the cluster's status and
certificate, the scope's public access and endpoint connections, every private name resolved from here (the
endpoint's address expected) with TCP and TLS to it, and the requests the control plane refused lately, with their
rule. What the agents saw from where they run is checked by ``agentchecks.py``."""

from __future__ import annotations

import datetime as dt
import socket
import ssl
from dataclasses import asdict, dataclass
from typing import Any

MEMBERS = ("his", "dp", "relay", "management")
PORT = 443


@dataclass
class Check:
    check: str
    ok: bool
    detail: str
    fix: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def cluster_checks(cluster: dict[str, Any]) -> list[Check]:
    props = cluster.get("properties") or {}
    status = str(props.get("connectivityStatus", "Unknown"))
    checks = [
        Check("cluster status", status == "Connected", f"{status}, last seen {props.get('lastConnectivityTime')}",
              "" if status == "Connected" else "See the checks below; the agents' errors are in arcAgentProfile."),
    ]  # fmt: skip
    expiry = props.get("managedIdentityCertificateExpirationTime")
    if expiry:
        left = dt.datetime.fromisoformat(str(expiry).replace("Z", "+00:00")) - dt.datetime.now(dt.UTC)
        checks.append(Check("cluster certificate", left.total_seconds() > 0, f"expires {expiry}",
                            "" if left.total_seconds() > 0 else "Onboard the cluster again (its identity expired)."))  # fmt: skip
    return checks


def scope_checks(scope: dict[str, Any], connections: list[dict[str, Any]]) -> list[Check]:
    props = scope.get("properties") or {}
    public = props.get("publicNetworkAccess") == "Enabled"
    checks = [Check("scope public access", True, f"publicNetworkAccess {props.get('publicNetworkAccess')}: agents "
                    f"are served {'publicly and ' if public else 'only '}through approved endpoints")]  # fmt: skip
    approved = [c for c in connections if _status(c) == "Approved"]
    checks.append(
        Check(
            "approved endpoints",
            bool(approved) or public,
            f"{len(approved)} of {len(connections)} connections approved: "
            + ", ".join(f"{c['name']} {_status(c)}" for c in connections),
            ""
            if approved or public
            else "Approve a connection: `az network private-endpoint-connection approve "
            "--id CONNECTION_ID`, or create a private endpoint to the scope.",
        )
    )
    return checks


def _status(connection: dict[str, Any]) -> str:
    return str(((connection.get("properties") or {}).get("privateLinkServiceConnectionState") or {}).get("status"))


def name_checks(names: list[str], expected: set[str], ca: str | None, where: str = "this machine") -> list[Check]:
    """Each of the scope's private names resolved from this machine (the approved endpoints' addresses expected),
    TCP and TLS to it; ``where`` says which machine that is in every detail."""
    checks = []
    source = f"from {where}"
    for name in names:
        try:
            found = sorted({str(info[4][0]) for info in socket.getaddrinfo(name, PORT, type=socket.SOCK_STREAM)})
        except OSError as exc:
            checks.append(Check(f"resolve {name}", False, f"{source}: {exc}", "Forward the private zone to `halyard "
                                "dns`, or paste `halyard network private-endpoint dns-config` into the DNS server or "
                                "hosts."))  # fmt: skip
            continue
        right = bool(expected) and set(found) <= expected
        checks.append(Check(f"resolve {name}", right, f"{source}: " + ", ".join(found) + (f" (expected "
                            f"{', '.join(sorted(expected))})" if not right else ""), "" if right else "The name "
                            "resolves elsewhere than the endpoint: fix the DNS records (`halyard network "
                            "private-endpoint dns-config`)."))  # fmt: skip
        if found:
            checks.append(_tls(name, found[0], ca, source))
    return checks


def _tls(name: str, address: str, ca: str | None, source: str) -> Check:
    context = ssl.create_default_context(cafile=ca)
    try:
        with socket.create_connection((address, PORT), timeout=5) as raw:
            with context.wrap_socket(raw, server_hostname=name) as tls:
                cert = tls.getpeercert() or {}
    except ssl.SSLError as exc:
        return Check(f"TLS {name}", False, f"{source}: {exc}", "The endpoint answers with a certificate that does "
                     "not cover this name or is not trusted: check the control plane's certificate and CA.")  # fmt: skip
    except OSError as exc:
        return Check(f"TCP {name}:{PORT}", False, f"{source}: {exc}", "Nothing answers at the endpoint: start "
                     "`halyard endpoint run` there, and check the route from here to it.")  # fmt: skip
    expires = dt.datetime.strptime(str(cert.get("notAfter")), "%b %d %H:%M:%S %Y %Z").replace(tzinfo=dt.UTC)
    days = (expires - dt.datetime.now(dt.UTC)).days
    return Check(f"TLS {name}", days > 0, f"{source}: certificate valid, expires in {days} days",
                 "" if days > 0 else "Renew the control plane's certificate.")  # fmt: skip


RECENT_MINUTES = 15  # a refusal older than this is shown but no longer fails the check
_REFUSAL_FIXES = {
    "PrivateLinkScopePublicNetworkAccessDisabled": "Point the agents at the scope's endpoint (DNS: `halyard network "
    "private-endpoint dns-config`), or enable public access on the scope.",
    "PrivateEndpointOfAnotherScope": "Resolve the cluster's names to an endpoint of its own scope, or move the "
    "cluster to that endpoint's scope (`halyard connectedk8s update --enable-private-link true "
    "--private-link-scope-resource-id …`).",
    "PrivateEndpointConnectionNotApproved": "Approve the endpoint's connection: `az network "
    "private-endpoint-connection approve --id …`.",
    "PrivateEndpointClusterNotInScope": "Add the cluster to the endpoint's scope (`halyard connectedk8s update "
    "--enable-private-link true …`), or let it use the public address.",
    "PrivateEndpointNotFound": "The endpoint was deleted: point the agents at another endpoint of the scope.",
    "PrivateLinkScopeNotFound": "Add the cluster to an existing scope, or disable private link on it.",
}


def refusal_checks(refusals: list[dict[str, Any]], now: dt.datetime) -> list[Check]:
    """The control plane's recent refusals of the cluster's agents (newest first), failing while recent."""
    if not refusals:
        return [Check("private link refusals", True, "none recorded")]
    newest = refusals[0]
    try:
        when = dt.datetime.fromisoformat(str(newest.get("time")).replace("Z", "+00:00"))
    except ValueError:
        when = now
    recent = now - when < dt.timedelta(minutes=RECENT_MINUTES)
    shown = "; ".join(f"{r.get('time')} {r.get('rule')} (arrived {r.get('arrival')})" for r in refusals[:3])
    more = f" (+{len(refusals) - 3} older)" if len(refusals) > 3 else ""
    fix = _REFUSAL_FIXES.get(str(newest.get("rule")), "") if recent else ""
    return [Check("private link refusals", not recent, shown + more, fix)]
