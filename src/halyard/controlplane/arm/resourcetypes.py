"""The contract a resource type implements to plug into the one ARM resource pipeline.

A type declares where it lives (``Placement``: a tenant, subscription or group resource, a child of another type,
or an extension of another type's resources); its routes, ids, lists, RBAC action names, provider listing and
delete cascade follow from that declaration. What differs between types is its ``Behaviour``, which sees only a
narrow context per call, never the service container: the services a behaviour needs are given to it when built.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from halyard.controlplane.arm.apiversions import newest_stable_first
from halyard.controlplane.arm.paths import ResourceId, group_scope, subscription_scope
from halyard.core.settings import Settings
from halyard.store.models import Resource

if TYPE_CHECKING:
    from halyard.controlplane.arm.access import AuthorizedCaller


class Placement(enum.Enum):
    """Where a type's resources live, which decides their ids and routes."""

    TENANT = "tenant"  # /providers/NS/T/{name}
    SUBSCRIPTION = "subscription"  # /subscriptions/{s}/providers/NS/T/{name}
    GROUP = "group"  # /subscriptions/{s}/resourceGroups/{g}/providers/NS/T/{name}
    CHILD = "child"  # {parent id}/T/{name}, the parent of the same namespace
    EXTENSION = "extension"  # {parent id}/providers/NS/T/{name}, the parent of any namespace


@dataclass
class Desired:
    """What a validated PUT or PATCH asks the resource to become."""

    location: str | None
    tags: dict[str, str]
    properties: dict[str, Any]
    identity: dict[str, Any] | None = None
    kind: str | None = None
    sealed: dict[str, Any] | None = None  # secret values, stored encrypted, never rendered


@dataclass(frozen=True)
class WriteContext:
    """What a behaviour sees of a write: its transaction, the time, the settings, the api-version and the caller.

    ``session`` is the write's own transaction (the resource's lock held), so rules that read other resources
    ("at most 5 per subscription", "the scope must exist") see a consistent store and commit or fail with the write.
    """

    session: AsyncSession
    now: dt.datetime
    settings: Settings
    api_version: str
    resource_id: ResourceId
    caller: AuthorizedCaller | None  # None when the operation worker runs the write
    force: bool = False  # a DELETE with ``forceDelete=true`` (types that declare ``force_delete``), or a cascade

    async def count(self, rtype: ResourceType, *, subscription_id: str | None = None) -> int:
        """How many resources of a type there are, in one subscription or in all."""
        query = select(func.count()).select_from(Resource).where(Resource.type_key == rtype.key)
        if subscription_id is not None:
            query = query.where(Resource.subscription_id == subscription_id.lower())
        return int(await self.session.scalar(query) or 0)


@dataclass(frozen=True)
class RenderContext:
    """What rendering a resource may depend on besides its rows: the time (computed states), settings, version."""

    now: dt.datetime
    settings: Settings
    api_version: str


class Behaviour(Protocol):
    """What differs between resource types; everything else is the pipeline's.

    Writes are async and run inside the write's transaction. Rendering is pure (no I/O: the pipeline hands it the
    resource's row and what agents and the server reported), so listing a page costs no query per resource.
    """

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        """Validate a PUT body (read-only fields ignored) against the stored resource, if any."""
        ...

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        """Validate a PATCH body and merge it onto the stored resource."""
        ...

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        """The ``properties`` a GET answers for this api-version (no secret values), the reported state merged."""
        ...

    def provisioning_state(self, resource: Resource, reported: Mapping[str, Any]) -> str:
        """The ``provisioningState`` a GET answers: the pipeline's, or what the resource's reporter says of it (an
        extension the cluster failed to upgrade is Failed though its last write succeeded)."""
        ...

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        """The asynchronous part of a create or update, in the operation's transaction; idempotent. Raise
        ``Pending`` to be called again later (waiting for a cluster to report) with the operation still running."""
        ...

    async def check_delete(self, resource: Resource, ctx: WriteContext) -> None:
        """Refuse a DELETE before anything changes (a scope that clusters still use); in the request's transaction.
        Not called when a parent's or group's deletion takes the resource with it."""
        ...

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        """Undo what the resource holds outside its own rows (identities, links, rows of other resources), in the
        transaction that deletes the resource, so both happen or neither; idempotent. Raise ``Pending`` to wait for
        a cluster (unless ``ctx.force``); the resource stays Deleting meanwhile."""
        ...


class PlainBehaviour:
    """A behaviour for types with nothing of their own beyond validation: the body's properties as they are.

    A PATCH merges tags and top-level properties; rendering shows the stored properties with the reported ones on
    top; provisioning and deprovisioning have nothing to do. Types override what they need.
    """

    async def desired(self, body: BaseModel, existing: Resource | None, ctx: WriteContext) -> Desired:
        data = body.model_dump(exclude_none=True)
        return Desired(
            location=data.get("location"), tags=data.get("tags") or {}, properties=data.get("properties") or {}
        )

    async def patched(self, body: BaseModel, existing: Resource, ctx: WriteContext) -> Desired:
        data = body.model_dump(exclude_none=True)
        properties = {**existing.properties, **(data.get("properties") or {})}
        tags = data["tags"] if "tags" in data else existing.tags
        return Desired(location=existing.location, tags=tags, properties=properties, identity=existing.identity)

    def render_properties(self, resource: Resource, reported: Mapping[str, Any], ctx: RenderContext) -> dict[str, Any]:
        return {**resource.properties, **reported}

    def provisioning_state(self, resource: Resource, reported: Mapping[str, Any]) -> str:
        return resource.provisioning_state

    async def provision(self, resource: Resource, ctx: WriteContext) -> None:
        return None

    async def check_delete(self, resource: Resource, ctx: WriteContext) -> None:
        return None

    async def deprovision(self, resource: Resource, ctx: WriteContext) -> None:
        return None


@dataclass(frozen=True)
class Action:
    """A POST action on a type's resources (``listClusterUserCredential``), for RBAC and the operations listing."""

    name: str
    title: str
    description: str


@dataclass(eq=False)
class ResourceType:
    namespace: str
    type_name: str  # the last segment: "connectedClusters", "privateEndpointConnections"
    api_versions: Sequence[str]
    put_model: type[BaseModel]
    patch_model: type[BaseModel]
    response_model: type[BaseModel]
    behaviour: Behaviour
    name_pattern: re.Pattern[str]
    name_rule: str
    display: str
    placement: Placement = Placement.GROUP
    parent: ResourceType | None = None  # for CHILD and EXTENSION
    locations: Sequence[str] | None = None  # None: every location the server offers
    sync_patch_versions: frozenset[str] = frozenset()
    requires_location: bool = True
    actions: Sequence[Action] = ()
    rbac_type: str | None = None  # the action prefix when it is not the full type (Arc's settings/default)
    force_delete: bool = False  # its DELETE takes ``forceDelete=true`` (Arc's extensions): deprovision not waited on
    # Its lists take ``$filter``: the expression (as given) → a condition on ``Resource`` rows, or InvalidRequest.
    list_filter: Callable[[str, RenderContext], ColumnElement[bool]] | None = None
    # Its lists take ``$orderby`` by these fields: each field's sort value (never NULL) as an expression on ``Resource``.
    list_order: Mapping[str, Callable[[RenderContext], ColumnElement[Any]]] | None = None
    name_param: str = ""  # the route's parameter for the name; derived from the type when empty

    def __post_init__(self) -> None:
        nested = self.placement in (Placement.CHILD, Placement.EXTENSION)
        if nested != (self.parent is not None):
            raise ValueError(f"{self.type_name}: a parent is needed by, and only by, child and extension types")
        if self.placement is Placement.CHILD and self.parent and self.parent.namespace != self.namespace:
            raise ValueError(f"{self.type_name}: a child type is in its parent's namespace (else: EXTENSION)")
        if not self.name_param:
            singular = self.type_name[:-1] if self.type_name.endswith("s") else self.type_name
            self.name_param = f"{singular}Name" if nested else "resourceName"
        if self.parent is not None and self.name_param in self.parent.path_params:
            raise ValueError(f"{self.type_name}: route parameter {self.name_param!r} is also its parent's")

    @property
    def types(self) -> tuple[str, ...]:
        """The type chain below the namespace (a child's starts with its parent's)."""
        if self.placement is Placement.CHILD:
            assert self.parent is not None
            return (*self.parent.types, self.type_name)
        return (self.type_name,)

    @property
    def type_path(self) -> str:
        """As the provider lists it: ``privateLinkScopes/privateEndpointConnections``."""
        return "/".join(self.types)

    @property
    def full_type(self) -> str:
        return f"{self.namespace}/{self.type_path}"

    @property
    def key(self) -> str:
        return self.full_type.lower()

    def action(self, verb: str) -> str:
        """The RBAC action for a verb (``read``, ``write``, ``delete``, ``listClusterUserCredential/action``)."""
        return f"{self.rbac_type or self.full_type}/{verb}"

    # ---- routes and ids ----------------------------------------------------------------------------------------

    @property
    def collection_path(self) -> str:
        """Where the resources of one container are listed (OpenAPI spelling)."""
        if self.placement is Placement.TENANT:
            return f"/providers/{self.namespace}/{self.type_name}"
        if self.placement is Placement.SUBSCRIPTION:
            return f"/subscriptions/{{subscriptionId}}/providers/{self.namespace}/{self.type_name}"
        if self.placement is Placement.GROUP:
            return (
                f"/subscriptions/{{subscriptionId}}/resourceGroups/{{resourceGroupName}}/providers/{self.namespace}"
                f"/{self.type_name}"
            )
        assert self.parent is not None
        if self.placement is Placement.CHILD:
            return f"{self.parent.item_path}/{self.type_name}"
        return f"{self.parent.item_path}/providers/{self.namespace}/{self.type_name}"

    @property
    def item_path(self) -> str:
        return f"{self.collection_path}/{{{self.name_param}}}"

    @property
    def path_params(self) -> tuple[str, ...]:
        """The item route's parameters, outermost first."""
        return tuple(re.findall(r"\{(\w+)\}", self.item_path))

    def resource_id(self, params: Mapping[str, str]) -> ResourceId:
        """The id of the resource an item route's parameters name."""
        name = params[self.name_param]
        if self.placement is Placement.TENANT:
            return ResourceId("", self.namespace, (self.type_name,), (name,))
        if self.placement is Placement.SUBSCRIPTION:
            return ResourceId(subscription_scope(params["subscriptionId"]), self.namespace, (self.type_name,), (name,))
        if self.placement is Placement.GROUP:
            scope = group_scope(params["subscriptionId"], params["resourceGroupName"])
            return ResourceId(scope, self.namespace, (self.type_name,), (name,))
        assert self.parent is not None
        parent = self.parent.resource_id(params)
        if self.placement is Placement.CHILD:
            return parent.child(self.type_name, name)
        return parent.extension(self.namespace, self.type_name, name)

    def container_id(self, params: Mapping[str, str]) -> ResourceId | None:
        """The parent resource a collection route names (None for top-level types)."""
        return self.parent.resource_id(params) if self.parent is not None else None


@dataclass
class Provider:
    namespace: str
    types: list[ResourceType] = field(default_factory=list)
    extra_types: list[tuple[str, Sequence[str]]] = field(default_factory=list)  # (type, api versions)

    @property
    def api_versions(self) -> list[str]:
        versions = {v for t in self.types for v in t.api_versions} | {v for _, vs in self.extra_types for v in vs}
        return newest_stable_first(sorted(versions))

    def operations(self, display_name: str) -> list[dict[str, Any]]:
        """The provider's operations listing (``GET /providers/NS/operations``), from its types' declarations."""
        value = []
        for t in self.types:
            verbs = [
                ("read", f"Read {t.display}", f"Read a {t.display}."),
                ("write", f"Create or update {t.display}", f"Create or update a {t.display}."),
                ("delete", f"Delete {t.display}", f"Delete a {t.display}."),
            ]
            verbs += [(f"{a.name}/action", a.title, a.description) for a in t.actions]
            for verb, title, description in verbs:
                value.append(
                    {
                        "name": t.action(verb),
                        "display": {
                            "provider": display_name,
                            "resource": t.type_path,
                            "operation": title,
                            "description": description,
                        },
                    }
                )
        for type_name, _ in self.extra_types:
            value.append(
                {
                    "name": f"{self.namespace}/{type_name}/read",
                    "display": {
                        "provider": display_name,
                        "resource": type_name,
                        "operation": f"Read {type_name}",
                        "description": f"Read {type_name} of {self.namespace}.",
                    },
                }
            )
        return value


class ResourceTypes:
    """The registry: which providers and resource types this server serves."""

    def __init__(self) -> None:
        self.providers: dict[str, Provider] = {}
        self._types: dict[str, ResourceType] = {}

    def add(self, rtype: ResourceType) -> None:
        if rtype.key in self._types:
            raise ValueError(f"resource type {rtype.full_type} is declared twice")
        if rtype.parent is not None and rtype.parent.key not in self._types:
            raise ValueError(f"{rtype.full_type}: declare its parent {rtype.parent.full_type} first")
        provider = self.providers.setdefault(rtype.namespace.lower(), Provider(rtype.namespace))
        provider.types.append(rtype)
        self._types[rtype.key] = rtype

    def add_extra(self, namespace: str, type_name: str, api_versions: Sequence[str]) -> None:
        provider = self.providers.setdefault(namespace.lower(), Provider(namespace))
        provider.extra_types.append((type_name, api_versions))

    def get(self, full_type: str) -> ResourceType | None:
        return self._types.get(full_type.lower())

    def provider(self, namespace: str) -> Provider | None:
        return self.providers.get(namespace.lower())

    def all(self) -> list[ResourceType]:
        return list(self._types.values())

    def provider_body(
        self, provider: Provider, subscription_id: str, state: str, locations: list[str]
    ) -> dict[str, Any]:
        types = [
            {
                "resourceType": t.type_path,
                "locations": [display_location(x) for x in (t.locations or locations)] if t.requires_location else [],
                "apiVersions": newest_stable_first(t.api_versions),
                "defaultApiVersion": newest_stable_first(t.api_versions)[0],
                "capabilities": "SystemAssignedResourceIdentity",
            }
            for t in provider.types
        ]
        types += [
            {"resourceType": name, "locations": [], "apiVersions": newest_stable_first(versions)}
            for name, versions in provider.extra_types
        ]
        return {
            "id": f"/subscriptions/{subscription_id}/providers/{provider.namespace}",
            "namespace": provider.namespace,
            "registrationState": state,
            "registrationPolicy": "RegistrationRequired",
            "resourceTypes": types,
        }


_DISPLAY = {
    "eastus": "East US",
    "westus": "West US",
    "westeurope": "West Europe",
    "northeurope": "North Europe",
    "local": "Local",
}


def normalize_location(location: str) -> str:
    """'East US' and 'eastus' are the same location; ARM stores the short form."""
    return location.replace(" ", "").lower()


def display_location(location: str) -> str:
    return _DISPLAY.get(location, location)
