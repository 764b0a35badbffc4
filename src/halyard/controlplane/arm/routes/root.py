"""Tenants, subscriptions, locations and cloud metadata discovery."""

from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.agentfacing.endpoints import dp_url, his_url
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.resourcetypes import display_location
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.directory import subscription_body, tenant_body

RESOURCES_API_VERSIONS = (
    "2025-04-01",
    "2024-11-01",
    "2024-07-01",
    "2024-03-01",
    "2023-07-01",
    "2022-12-01",
    "2022-09-01",
    "2022-01-01",
    "2021-04-01",
    "2021-01-01",
    "2020-10-01",
    "2020-06-01",
    "2020-01-01",
    "2019-11-01",
    "2019-10-01",
    "2019-08-01",
    "2019-07-01",
    "2019-06-01",
    "2019-05-10",
    "2019-05-01",
    "2018-05-01",
    "2018-02-01",
    "2016-09-01",
    "2016-06-01",
    "2016-02-01",
    "2015-11-01",
)
METADATA_API_VERSIONS = ("2022-09-01", "2020-06-01", "2019-05-01", "2018-01-01", "1.0")

router = APIRouter(tags=["Microsoft.Resources"], responses=ERRORS)
ApiVersion = Annotated[str | None, api_version_query(RESOURCES_API_VERSIONS)]


def resources_version(request: Request) -> str:
    return require_api_version(request, RESOURCES_API_VERSIONS, "Microsoft.Resources")


@router.get("/tenants", operation_id="Tenants_List")
async def list_tenants(request: Request, caller: Caller, cp: Plane, api_version: ApiVersion = None) -> JSONResponse:
    resources_version(request)
    tenants = [t for t in await cp.directory.tenants() if t.id == caller.caller.tenant_id]
    return JSONResponse({"value": [tenant_body(t) for t in tenants]})


@router.get("/subscriptions", operation_id="Subscriptions_List")
async def list_subscriptions(
    request: Request, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    resources_version(request)
    subs = [
        s
        for s in await cp.directory.subscriptions()
        if s.tenant_id == caller.caller.tenant_id
        and caller.allowed_at_or_below("Microsoft.Resources/subscriptions/read", f"/subscriptions/{s.id}")
    ]
    return JSONResponse({"value": [subscription_body(s) for s in subs]})


@router.get("/subscriptions/{subscriptionId}", operation_id="Subscriptions_Get")
async def get_subscription(
    request: Request, subscriptionId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    resources_version(request)
    sub = await cp.directory.subscription(subscriptionId)
    caller.require_at_or_below("Microsoft.Resources/subscriptions/read", f"/subscriptions/{sub.id}")
    return JSONResponse(subscription_body(sub))


@router.get("/subscriptions/{subscriptionId}/locations", operation_id="Subscriptions_ListLocations")
async def list_locations(
    request: Request, subscriptionId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    resources_version(request)
    sub = await cp.directory.subscription(subscriptionId)
    caller.require_at_or_below("Microsoft.Resources/subscriptions/read", f"/subscriptions/{sub.id}")
    value = [
        {
            "id": f"/subscriptions/{sub.id}/locations/{name}",
            "name": name,
            "displayName": display_location(name),
            "regionalDisplayName": display_location(name),
            "type": "Region",
            "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
        }
        for name in cp.settings.locations
    ]
    return JSONResponse({"value": value})


@router.get("/metadata/endpoints", operation_id="Metadata_Endpoints")
async def metadata_endpoints(
    request: Request,
    cp: Plane,
    api_version: Annotated[str | None, api_version_query(METADATA_API_VERSIONS)] = None,
) -> JSONResponse:
    """Cloud discovery for ``az cloud register --endpoint-resource-manager``; unauthenticated, as in Azure."""
    require_api_version(request, METADATA_API_VERSIONS, "metadata")
    base = cp.settings.base_url
    domain = cp.settings.domain or "halyard.local"
    return JSONResponse(
        {
            "name": "Halyard",
            "resourceManager": base + "/",
            "portal": base + "/portal",
            "authentication": {
                "loginEndpoint": base,
                "audiences": [cp.settings.audience, cp.settings.audience.rstrip("/")],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": base + "/",
            "graphAudience": cp.settings.audience,
            "graph": base + "/",
            # Where az connectedk8s looks for the agent services (arm-api.md §3.2 step 4).
            "dataplaneEndpoints": {
                "arcConfigEndpoint": dp_url(cp.settings),
                "arcHybridIdentityServiceEndpoint": his_url(cp.settings),
            },
            "suffixes": {
                "keyVaultDns": f".vault.{domain}",
                "storage": domain,
                "acrLoginServer": f".acr.{domain}",
            },
            "batch": base + "/",
            "sqlManagement": base + "/",
            "vmImageAliasDoc": base + "/",
            "activeDirectoryDataLake": base + "/",
            "gallery": base + "/",
            "microsoftGraphResourceId": cp.settings.audience,
            "appInsightsResourceId": cp.settings.audience,
            "appInsightsTelemetryChannelResourceId": cp.settings.audience,
            "attestationResourceId": cp.settings.audience,
            "synapseAnalyticsResourceId": cp.settings.audience,
            "logAnalyticsResourceId": cp.settings.audience,
            "ossrDbmsResourceId": cp.settings.audience,
        }
    )
