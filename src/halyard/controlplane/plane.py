"""The control plane's services, built once per process and handed to every request."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from fastapi import Request

from halyard.controlplane.agentfacing.arrival import Listeners
from halyard.controlplane.agentfacing.clusters import ClusterOfIdentity
from halyard.controlplane.agentfacing.endpoints import EndpointMaps
from halyard.controlplane.agentfacing.enforcement import Enforcement
from halyard.controlplane.arm.access import Access
from halyard.controlplane.arm.operations import Operations
from halyard.controlplane.arm.pipeline import Pipeline
from halyard.controlplane.arm.resourcetypes import ResourceTypes
from halyard.controlplane.dataplane.heartbeats import Heartbeats
from halyard.controlplane.directory import Directory
from halyard.controlplane.his.authority import CertificateAuthority
from halyard.controlplane.his.identities import ClusterIdentities
from halyard.controlplane.identity.keys import KeyRing
from halyard.controlplane.identity.principals import Principals
from halyard.controlplane.identity.throttle import LoginThrottle
from halyard.controlplane.identity.tokens import TokenService
from halyard.core.clock import Clock
from halyard.core.sealing import Sealer
from halyard.core.settings import Settings
from halyard.store import Database


@dataclass(frozen=True)
class TypeServices:
    """What resource types may be built with: each type's behaviour takes the few it needs, when it is built."""

    settings: Settings
    clock: Clock
    sealer: Sealer
    his: ClusterIdentities


@dataclass
class ControlPlane:
    settings: Settings
    db: Database
    clock: Clock
    sealer: Sealer
    keys: KeyRing
    tokens: TokenService
    principals: Principals
    login_throttle: LoginThrottle
    access: Access
    directory: Directory
    operations: Operations
    types: ResourceTypes
    his: ClusterIdentities
    heartbeats: Heartbeats
    listeners: Listeners
    endpoints: EndpointMaps
    clusters_of_identities: ClusterOfIdentity
    enforcement: Enforcement  # private link: which cluster is served through which arrival (every agent request)
    pipeline: Pipeline = field(init=False)

    def __post_init__(self) -> None:
        self.pipeline = Pipeline(
            db=self.db,
            clock=self.clock,
            settings=self.settings,
            sealer=self.sealer,
            directory=self.directory,
            operations=self.operations,
            types=self.types,
        )

    @classmethod
    def build(
        cls,
        settings: Settings,
        db: Database,
        clock: Clock,
        sealer: Sealer,
        declare_types: Callable[[TypeServices], ResourceTypes],
    ) -> ControlPlane:
        """The services of one process; ``declare_types`` builds the resource types with the services they use."""
        lifetime = dt.timedelta(seconds=settings.token_lifetime_seconds)
        keys = KeyRing(
            db,
            sealer,
            clock,
            rotation=dt.timedelta(days=settings.signing_key_rotation_days),
            token_lifetime=lifetime,
        )
        his = ClusterIdentities(db, clock, settings, CertificateAuthority(db, sealer, clock))
        listeners = Listeners()
        endpoints = EndpointMaps(settings)
        return cls(
            settings=settings,
            db=db,
            clock=clock,
            sealer=sealer,
            keys=keys,
            tokens=TokenService(keys, clock, issuer_base=settings.base_url, lifetime=lifetime),
            principals=Principals(db, clock),
            login_throttle=LoginThrottle(
                clock, burst=settings.login_failure_burst, refill_seconds=settings.login_failure_refill_seconds
            ),
            access=Access(db, clock),
            directory=Directory(db, clock),
            operations=Operations(db, clock, retry_after=settings.operation_retry_after_seconds),
            types=declare_types(TypeServices(settings=settings, clock=clock, sealer=sealer, his=his)),
            his=his,
            heartbeats=Heartbeats(db, clock, settings, his),
            listeners=listeners,
            endpoints=endpoints,
            clusters_of_identities=ClusterOfIdentity(db),
            enforcement=Enforcement(db, listeners.refusals, endpoints, clock),
        )


def control_plane(request: Request) -> ControlPlane:
    """The process's control plane, for code holding a request (a dependency declares ``Depends(plane)``)."""
    cp: ControlPlane = request.app.state.plane
    return cp


async def plane(request: Request) -> ControlPlane:
    """FastAPI dependency: the process's control plane. Async although it awaits nothing: FastAPI runs a plain
    function dependency in its thread pool, a hop to another thread and back for every request that uses it (every
    management and agent route), about 0.1 ms of CPU each (docs/benchmarks.md, "Where a GET's CPU goes")."""
    return control_plane(request)
