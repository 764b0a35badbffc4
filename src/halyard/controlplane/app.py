"""Assembles the control plane's ASGI application from its services and routers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from fastapi import FastAPI

from halyard import __version__
from halyard.controlplane import health
from halyard.controlplane.activity import log as activity_log
from halyard.controlplane.activity import routes as activity_routes
from halyard.controlplane.agentfacing.arrival import Arrival, ArrivalCollector, ArrivalKind, ArrivalMiddleware
from halyard.controlplane.agentfacing.enforcement import EnforcementCollector
from halyard.controlplane.agentfacing.listening import endpoint_listeners
from halyard.controlplane.arm.paths import CanonicalPathMiddleware
from halyard.controlplane.arm.resourcetypes import ResourceTypes
from halyard.controlplane.arm.routes import (
    authorization,
    groups,
    operations,
    people,
    principals,
    providers,
    resources,
    root,
)
from halyard.controlplane.arm.routes.provideroperations import provider_operations_router
from halyard.controlplane.arm.routes.resourcetype import resource_type_router
from halyard.controlplane.bootstrap import bootstrap
from halyard.controlplane.catalog import declare_types
from halyard.controlplane.configuration import armroutes as extension_routes
from halyard.controlplane.configuration import fluxroutes
from halyard.controlplane.configuration import moveroutes as configuration_move_routes
from halyard.controlplane.configuration import typeroutes as extension_type_routes
from halyard.controlplane.configuration.delivery import configuration_delivery
from halyard.controlplane.configuration.deliverymetrics import DeliveryCollector
from halyard.controlplane.dataplane import routes as dataplane_routes
from halyard.controlplane.errors import install_error_handlers
from halyard.controlplane.gateway import routes as gateway_routes
from halyard.controlplane.gateway.serving import build_gateway, serving
from halyard.controlplane.his import routes as his_routes
from halyard.controlplane.identity import routes as identity_routes
from halyard.controlplane.identity.federation import Federation
from halyard.controlplane.identity.providers import load as load_providers
from halyard.controlplane.kubernetes import routes as kubernetes_routes
from halyard.controlplane.plane import ControlPlane, TypeServices
from halyard.controlplane.portal import routes as portal_routes
from halyard.controlplane.portal.headers import PortalHeadersMiddleware
from halyard.controlplane.privatelink import routes as privatelink_routes
from halyard.controlplane.relay.metrics import RelayCollector
from halyard.controlplane.relay.service import Relay
from halyard.controlplane.requestbody import BodyLimits, Refusals, RequestBodyMiddleware
from halyard.controlplane.routegate import gated
from halyard.controlplane.routeorder import hoisted
from halyard.core.clock import Clock, SystemClock
from halyard.core.sealing import Sealer
from halyard.core.settings import Settings
from halyard.store import Database

log = logging.getLogger("halyard.server")
KEY_CHECK_INTERVAL = 60.0


def create_app(
    settings: Settings,
    *,
    clock: Clock | None = None,
    db: Database | None = None,
    types: Callable[[TypeServices], ResourceTypes] = declare_types,
) -> FastAPI:
    """The whole control plane as one ASGI app. Starting it migrates the store and bootstraps a first start."""
    clock = clock or SystemClock()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = db or Database(settings.database)
    cp = ControlPlane.build(settings, db, clock, Sealer.from_data_dir(settings.data_dir), types)
    cp.operations.handle("resourceGroups/delete", lambda op: groups.delete_group_operation(cp, op))
    relay = Relay(cp)
    gateway = build_gateway(cp)
    configuration = configuration_delivery(cp)
    for host, port, endpoint in endpoint_listeners(settings):
        cp.listeners.register(host, port, Arrival(ArrivalKind.PRIVATE_ENDPOINT, endpoint))

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with db.startup_lock():  # replicas starting together take turns
            await db.migrate()
            await cp.access.seed_builtin_roles()
            await cp.keys.ensure()
            await cp.his.authority.ensure()
            await bootstrap(cp)
            if db.is_sqlite:  # one server per SQLite file: leases left by a crash are this server's own
                await cp.operations.release_leases()
        await relay.start()
        tasks = [
            asyncio.create_task(cp.operations.run_forever(), name="operations"),
            asyncio.create_task(_keep_keys(cp), name="signing-keys"),
            asyncio.create_task(cp.access.watch(), name="access-changes"),
            asyncio.create_task(configuration.watch(), name="configuration-changes"),
            asyncio.create_task(cp.enforcement.watch(), name="private-link-changes"),
            asyncio.create_task(
                activity_log.keep_retention(db, clock, settings.activity_log_retention_days), name="activity-retention"
            ),
        ]
        log.info(
            "control plane ready",
            extra={"url": settings.base_url, "database": db.engine.url.render_as_string()},
        )
        try:
            async with serving(gateway, settings):
                yield
        finally:
            await relay.stop()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await portal.api.close()
            await db.close()

    app = FastAPI(
        title="Halyard management API",
        version=__version__,
        description="ARM-compatible management API, login service and agent services of Halyard.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.plane = cp
    # Sign-in with external OpenID Connect providers (none unless the operator configured them).
    app.state.federation = Federation(db, clock, load_providers(settings.federation_file), base_url=settings.base_url)
    app.state.relay = relay  # the listener hands it connections to /relay/ (server.py)
    app.state.configuration = configuration  # /dp/v1/configurations long polls wait on it
    app.state.metrics = health.Metrics()
    app.state.metrics.registry.register(RelayCollector(relay))
    app.state.gateway = gateway
    app.state.metrics.registry.register(gateway.metrics.registry)
    app.state.metrics.registry.register(EnforcementCollector(cp.listeners.refusals))
    app.state.metrics.registry.register(ArrivalCollector(cp.listeners.arrivals))
    app.state.metrics.registry.register(DeliveryCollector(configuration))
    install_error_handlers(app, throttled_answer_delay=settings.throttled_answer_delay_seconds)
    for router in (
        health.router,
        identity_routes.router,
        root.router,
        groups.router,
        providers.router,
        resources.router,
        operations.router,
        kubernetes_routes.router,
        principals.router,
        people.router,
        authorization.router,
        his_routes.router,
        dataplane_routes.router,
        gateway_routes.router,
        extension_type_routes.router,
        extension_routes.router,
        configuration_move_routes.router,
        fluxroutes.router,
        privatelink_routes.router,
        activity_routes.router,
    ):
        app.include_router(router)
    app.include_router(provider_operations_router(cp.types))
    portal = portal_routes.install(app, cp)  # /portal: pages calling this same app with the user's token
    types_from = len(app.router.routes)
    for rtype in cp.types.all():
        app.include_router(resource_type_router(rtype))
    resource_routers = app.router.routes[types_from:]
    limits = BodyLimits(
        management_bytes=settings.request_body_limit_bytes,
        agent_bytes=settings.agent_body_limit_bytes,
        timeout_seconds=settings.body_timeout_seconds,
    )
    app.state.refusals = Refusals()  # the server's connection guard listens (controlplane/server.py)
    app.add_middleware(RequestBodyMiddleware, limits=limits, refusals=app.state.refusals)
    app.add_middleware(PortalHeadersMiddleware)  # the portal's CSP on every /portal answer, errors included
    app.add_middleware(health.MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(CanonicalPathMiddleware, route_paths=list(app.openapi()["paths"]))
    app.add_middleware(ArrivalMiddleware, listeners=cp.listeners)
    # After /openapi.json is built (its order stays as declared): the busiest routes are tried first wherever that
    # changes no request's route (controlplane/routeorder.py): health checks, the agents' logins, certificates and
    # heartbeats, then every resource type's.
    busiest = (health.router, identity_routes.router, his_routes.router, dataplane_routes.router)
    agents = [e for e in app.router.routes if getattr(e, "original_router", None) in busiest]
    # connectedClusters' own actions (``…/connectedClusters/statusCounts``) may match what its ``{resourceName}``
    # routes match, so they stay ahead of them: moved too, before the types.
    clusters_actions = [e for e in app.router.routes if getattr(e, "original_router", None) is kubernetes_routes.router]
    app.state.declared_routes = list(app.router.routes)
    # Then each entry is tried only for paths one of its routes' patterns matches (controlplane/routegate.py). Built
    # from the routes there are now: every router is complete here (routes added to one later would need a new gate).
    schema = app.openapi()
    app.router.routes[:] = [
        gated(entry) for entry in hoisted(app.router.routes, [*agents, *clusters_actions, *resource_routers])
    ]
    # FastAPI rebuilds the document when its router's entries change, from entries it knows the types of: the
    # document stays the one of the routes as declared.
    app.openapi = lambda: schema  # type: ignore[method-assign]
    return app


async def _keep_keys(cp: ControlPlane) -> None:
    while True:
        await asyncio.sleep(KEY_CHECK_INTERVAL)
        try:
            await cp.keys.ensure()
        except Exception as exc:
            log.error("signing key check failed", extra={"error": type(exc).__name__})
