"""What ``connectedk8s troubleshoot`` checks on the cluster's side, from what the agents recorded where they run
(``api/diagnostics.py``) and the agents' Deployments: each failure with its fix in one line. Pure: the cluster is
read by ``kube/agentsview.py``."""

from __future__ import annotations

import datetime as dt

from halyard.api.diagnostics import Diagnostics, NameView
from halyard.cli.privatelinkchecks import Check
from halyard.kube.agentsview import AgentsInCluster

STALE_MINUTES = 15  # the agents record every 5 minutes: older than this, they have stopped
KUBECONFIG_FIX = "Give the cluster's kubeconfig with --kube-config (and --kube-context)."
PODS = "-n halyard-system -l app.kubernetes.io/part-of=halyard-agent"


def ago(then: dt.datetime, now: dt.datetime) -> str:
    seconds = max(0, int((now - then).total_seconds()))
    if seconds < 120:
        return f"{seconds} s ago"
    if seconds < 7200:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


def cluster_side(
    inside: AgentsInCluster, resource_id: str, now: dt.datetime, *, named: bool = True
) -> tuple[list[Check], Diagnostics | None]:
    """The cluster's onboarding, the agents' pods (or their local process), their state and heartbeat; and the
    record to check the names with (None when it is missing, unreadable, stale or of another resource: the names
    are then checked from this machine). Another cluster than this resource's fails only when the kubeconfig was
    ``named`` (the user's own kubeconfig may well point elsewhere)."""
    if inside.resource_id is None:
        return [Check("agents' view", not named, "the kubeconfig's cluster is not onboarded (no "
                      "halyard-system/halyard-clusterconfig); names are checked from this machine instead",
                      KUBECONFIG_FIX)], None  # fmt: skip
    if inside.resource_id.lower() != resource_id.lower():
        return [Check("agents' view", not named, f"the kubeconfig's cluster is connected as {inside.resource_id}, "
                      "not as this resource; names are checked from this machine instead", KUBECONFIG_FIX)], None  # fmt: skip
    record = inside.record
    checks = [_pods(inside, record)]
    if inside.record_error is not None:
        checks.append(Check("agents' view", False, inside.record_error, "resource-sync writes it again within 5 "
                            "minutes; if it stays unreadable, delete the ConfigMap halyard-system/halyard-diagnostics."))  # fmt: skip
        return checks, None
    if record is None:
        checks.append(Check("agents' view", True, "not recorded (halyard-system/halyard-diagnostics is missing: agents "
                            "older than this CLI, or resource-sync has not started): names checked from this machine "
                            "instead", ""))  # fmt: skip
        return checks, None
    where = f"{record.mode} agents on {record.host}"
    if now - record.observedAt > dt.timedelta(minutes=STALE_MINUTES):
        checks.append(Check("agents' view", False, f"recorded {ago(record.observedAt, now)} by the {where}: they "
                            "record every 5 minutes, so they have stopped", _not_running(record)))  # fmt: skip
        return checks, None
    checks.append(Check("agents' view", True, f"recorded {ago(record.observedAt, now)} by the {where}"))
    state = record.agents
    shown = "; ".join(f"{e.component}: {e.message}" for e in state.errors[:3])
    failed = state.state == "Failed"
    failing = next((e.component for e in state.errors if e.severity == "Error"), "resource-sync")
    checks.append(Check("agent state", not failed, f"{state.state or 'not reported yet'}" + (f"; {shown}" if shown
                        else ""), _logs(record, failing) if failed else ""))  # fmt: skip
    if state.beatError is not None:
        since = f" since {ago(state.beatErrorAt, now)}" if state.beatErrorAt else ""
        last = f"; the last one taken {ago(state.lastBeat, now)}" if state.lastBeat else "; none taken yet"
        checks.append(Check("heartbeat", False, f"failing{since}: {state.beatError}{last}", "The checks of the "
                            "names below say where the agents' connections stop; a refusal is listed with its rule."))  # fmt: skip
    else:
        checks.append(Check("heartbeat", state.lastBeat is not None, f"taken {ago(state.lastBeat, now)}"
                            if state.lastBeat else "none taken yet", "" if state.lastBeat else _logs(record, "resource-sync")))  # fmt: skip
    return checks, record


def _pods(inside: AgentsInCluster, record: Diagnostics | None) -> Check:
    if not inside.deployments:
        host = f" on {record.host}" if record is not None and record.mode == "local" else ""
        return Check("agent pods", True, f"none in halyard-system: the agents run as a local process{host} "
                     "(connect --agent-mode local), so their view is that machine's")  # fmt: skip
    down = [d for d in inside.deployments if d.ready < d.wanted]
    ready = len(inside.deployments) - len(down)
    detail = f"{ready} of {len(inside.deployments)} agent Deployments ready"
    if down:
        detail += ": " + ", ".join(f"{d.name} {d.ready}/{d.wanted}" for d in down)
    if inside.stuck:
        detail += "; " + "; ".join(str(s) for s in inside.stuck[:3])
    if any(s.cannot_pull for s in inside.stuck):
        fix = "Mirror the agent image where the cluster can pull it and connect again with --agent-registry."
    elif down or inside.stuck:
        name = down[0].name if down else inside.stuck[0].pod
        fix = f"`kubectl describe pods {PODS}` and `kubectl logs -n halyard-system deploy/{name}`."
    else:
        fix = ""
    return Check("agent pods", not down and not inside.stuck, detail, fix)


def _logs(record: Diagnostics, component: str) -> str:
    if record.mode == "in-cluster":
        return f"See its log: `kubectl logs -n halyard-system deploy/{component}`."
    return f"See the local agents' log on {record.host} (agent.log in their state directory, `halyard agent run`)."


def _not_running(record: Diagnostics) -> str:
    if record.mode == "in-cluster":
        return f"`kubectl get pods {PODS}`; resource-sync's pod writes the record."
    return f"Start the local agents on {record.host} again (`halyard agent start`), and see their agent.log."


def recorded_name_checks(
    record: Diagnostics, private_names: list[str], expected: set[str], now: dt.datetime
) -> list[Check]:
    """Each name the agents dial as they saw it: resolved (with private link, to an approved endpoint's address and
    under the scope's private names), TCP, TLS and the certificate's expiry."""
    source = f"from the agents ({record.mode} on {record.host}, {ago(record.observedAt, now)})"
    checks = []
    dialled = {view.host.lower() for view in record.names}
    missing = [name for name in private_names if name.lower() not in dialled]
    if private_names:
        shown = f"the agents dial {', '.join(sorted(dialled))}, not the scope's {', '.join(missing)}" if missing \
            else "the agents dial the scope's private names"  # fmt: skip
        checks.append(Check("agents' endpoint map", not missing, shown, "They move to the scope's "
                            "private names with their next accepted heartbeat, or the refusal that names them; if they "
                            "stay, see the heartbeat and refusal checks." if missing else ""))  # fmt: skip
    for view in record.names:
        checks += _name(view, source, bool(private_names), expected, now)
    return checks


def _name(view: NameView, source: str, private: bool, expected: set[str], now: dt.datetime) -> list[Check]:
    name = view.host
    if view.via:
        checks = [Check(f"resolve {name}", True, f"{source}: left to the proxy {view.via}")]
    elif view.resolveError is not None:
        fix = ("Forward the private zone to `halyard dns` from the cluster's DNS, or add the records of `halyard "
               "network private-endpoint dns-config`." if private else "Make the name resolvable by the cluster's DNS.")  # fmt: skip
        return [Check(f"resolve {name}", False, f"{source}: {view.resolveError}", fix)]
    else:
        right = not private or (bool(expected) and set(view.addresses) <= expected)
        wrong = "" if right else f" (expected {', '.join(sorted(expected)) or 'an approved endpoint'})"
        checks = [Check(f"resolve {name}", right, f"{source}: {', '.join(view.addresses)}{wrong}", "" if right else
                        "The cluster's DNS answers elsewhere than the scope's endpoint: fix its records (`halyard "
                        "network private-endpoint dns-config`) or forward the zone to `halyard dns`.")]  # fmt: skip
    target = view.addresses[0] if view.addresses else name
    if view.tcp is False:
        if view.via:
            fix = "The agents' proxy cannot reach the name: check its allow-list and route (arc-proxy's log)."
        elif private:
            fix = ("Nothing answers at the endpoint from the cluster: run `halyard endpoint run` there and open the "
                   "route (`halyard private-link-scope firewall-rules`).")  # fmt: skip
        else:
            fix = "Open the cluster's egress to the control plane on this port (firewall, proxy settings)."
        checks.append(Check(f"TCP {name}:{view.port}", False, f"{source}: {target}: {view.tcpError}", fix))
    elif view.tls is False:
        checks.append(Check(f"TLS {name}", False, f"{source}: {view.tlsError}", "The answer's certificate does not "
                            "cover this name or is not trusted by the agents (CA_BUNDLE of halyard-clusterconfig): "
                            "check the control plane's certificate."))  # fmt: skip
    elif view.tls and view.certificateNotAfter is not None:
        days = (view.certificateNotAfter - now).days
        checks.append(Check(f"TLS {name}", days > 0, f"{source}: certificate valid, expires in {days} days",
                            "" if days > 0 else "Renew the control plane's certificate."))  # fmt: skip
    return checks
