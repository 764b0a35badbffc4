"""The clusters page's rows from the management API's cluster bodies: flattening, status filter, counts and sort.
Pure: no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STATUSES = ("Connected", "Connecting", "Offline", "Expired")
# The table's columns the list API sorts by ($orderby, over the whole filtered list), and its field for each.
SORTABLE = {
    "name": "name",
    "status": "properties/connectivityStatus",
    "kubernetesVersion": "properties/kubernetesVersion",
    "agentVersion": "properties/agentVersion",
    "lastSeen": "properties/lastConnectivityTime",
}
BACK_DEPTH = 50  # previous pages remembered in the page's address
FIRST = "~"  # the first page in that stack (no $skipToken; never a token's character)


def orderby(column: str, descending: bool) -> dict[str, str]:
    """The list API's ``$orderby`` for a table column, if it sorts by it."""
    field = SORTABLE.get(column)
    if field is None:
        return {}
    return {"$orderby": f"{field} desc" if descending else field}


def pushed(back: str, skip: str) -> str:
    """The stack of previous pages' tokens once the page at ``skip`` is left for the next one."""
    stack = [t for t in back.split(",") if t][-(BACK_DEPTH - 1) :]
    return ",".join([*stack, skip or FIRST])


def popped(back: str) -> tuple[str, str] | None:
    """The previous page's token and the stack under it; None on the first page."""
    stack = [t for t in back.split(",") if t]
    if not stack:
        return None
    top = stack.pop()
    return ("" if top == FIRST else top), ",".join(stack)


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
