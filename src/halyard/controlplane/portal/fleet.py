"""The clusters page's rows from the management API's cluster bodies: flattening, status filter, counts and sort.
Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("Connected", "Connecting", "Offline", "Expired")
SORTABLE = (
    "name",
    "group",
    "status",
    "kubernetesVersion",
    "distribution",
    "nodes",
    "cores",
    "agentVersion",
    "lastSeen",
)


@dataclass(frozen=True)
class ClusterRow:
    id: str
    name: str
    group: str
    subscription: str
    status: str
    kubernetes_version: str
    distribution: str
    nodes: int | None
    cores: int | None
    agent_version: str
    last_seen: str
    private_link: str
    gateway: str
    provisioning_state: str
    tags: dict[str, str] = field(default_factory=dict)

    def key(self, column: str) -> Any:
        value = {
            "name": self.name.lower(),
            "group": self.group.lower(),
            "status": self.status,
            "kubernetesVersion": self.kubernetes_version,
            "distribution": self.distribution,
            "nodes": self.nodes if self.nodes is not None else -1,
            "cores": self.cores if self.cores is not None else -1,
            "agentVersion": self.agent_version,
            "lastSeen": self.last_seen,
        }[column]
        return value


def _segment(resource_id: str, name: str) -> str:
    parts = resource_id.split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == name:
            return parts[i + 1]
    return ""


def row(body: dict[str, Any]) -> ClusterRow:
    """One table row from a connectedClusters body as the API rendered it."""
    props = body.get("properties") or {}
    gateway = props.get("gateway")
    if isinstance(gateway, dict):
        gateway = gateway.get("id") or gateway.get("resourceId") or ""
    scope = props.get("privateLinkScopeResourceId") or ""
    tags = body.get("tags") or {}
    return ClusterRow(
        id=str(body.get("id", "")),
        name=str(body.get("name", "")),
        group=_segment(str(body.get("id", "")), "resourcegroups"),
        subscription=_segment(str(body.get("id", "")), "subscriptions"),
        status=str(props.get("connectivityStatus") or ""),
        kubernetes_version=str(props.get("kubernetesVersion") or ""),
        distribution=str(props.get("distribution") or ""),
        nodes=props.get("totalNodeCount") if isinstance(props.get("totalNodeCount"), int) else None,
        cores=props.get("totalCoreCount") if isinstance(props.get("totalCoreCount"), int) else None,
        agent_version=str(props.get("agentVersion") or ""),
        last_seen=str(props.get("lastConnectivityTime") or ""),
        private_link=str(scope).rsplit("/", 1)[-1] if scope else "",
        gateway=str(gateway).rsplit("/", 1)[-1] if gateway else "",
        provisioning_state=str(props.get("provisioningState") or ""),
        tags={str(k): str(v) for k, v in tags.items()} if isinstance(tags, dict) else {},
    )


@dataclass(frozen=True)
class Criteria:
    """What the user asked the table for. ``group`` is answered by the API's group-scoped list and ``status`` by its
    ``$filter``; ``name`` (a substring) is applied here, as the API has no such filter."""

    group: str = ""
    name: str = ""
    status: str = ""

    @property
    def local(self) -> bool:
        return bool(self.name)

    @property
    def api_filter(self) -> dict[str, str]:
        """The list API's ``$filter`` for the status asked, if any."""
        return {"$filter": f"properties/connectivityStatus eq '{self.status}'"} if self.status else {}

    def matches(self, r: ClusterRow) -> bool:
        if self.status and r.status != self.status:
            return False
        return not (self.name and self.name.lower() not in r.name.lower())


def counted(answer: Any) -> dict[str, int]:
    """The statusCounts action's ``byConnectivityStatus``, every known status listed (zero too), then any other."""
    given = answer if isinstance(answer, dict) else {}
    numbers = {str(k): v for k, v in given.items() if isinstance(v, int)}
    return {**{s: numbers.get(s, 0) for s in STATUSES}, **{s: n for s, n in numbers.items() if s not in STATUSES}}


def sort_rows(rows: list[ClusterRow], column: str, descending: bool) -> list[ClusterRow]:
    if column not in SORTABLE:
        return rows
    return sorted(rows, key=lambda r: (r.key(column), r.name.lower()), reverse=descending)
