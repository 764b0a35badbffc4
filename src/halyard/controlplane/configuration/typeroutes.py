"""Extension types on the management API: operators publish a Helm chart as a version of a type; anyone who may
read lists the catalog. Agents fetch a published chart from ``dp`` with their token (``chart`` route below)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from halyard.controlplane.agentfacing.callers import AgentCaller
from halyard.controlplane.arm.apiversions import api_version_query, require_api_version
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.configuration import published
from halyard.controlplane.configuration.published import MAX_CHART_BYTES
from halyard.controlplane.configuration.routes import alive

API_VERSIONS = ("2026-01-01",)
NS = "Halyard.Extensions"
BASE = f"/providers/{NS}/extensionTypes"
router = APIRouter(tags=[NS], responses=ERRORS)
dp_router = APIRouter()
ApiVersion = Annotated[str | None, api_version_query(API_VERSIONS)]
TypeName = Annotated[str, Path(max_length=128)]
Version = Annotated[str, Path(max_length=80)]


class PublishBody(BaseModel):
    model_config = ConfigDict(extra="ignore")
    releaseTrains: list[Annotated[str, Field(max_length=32)]] = Field(default=["stable"], min_length=1, max_length=8)
    chart: str = Field(max_length=(MAX_CHART_BYTES * 4) // 3 + 8, description="base64 of the Helm chart package")


def _version(request: Request) -> None:
    require_api_version(request, API_VERSIONS, f"{NS}/extensionTypes")


@router.put(BASE + "/{extensionType}/versions/{version}", operation_id="ExtensionTypes_Publish")
async def publish_version(
    request: Request,
    extensionType: TypeName,
    version: Version,
    body: Annotated[PublishBody, Body()],
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    """Publish a Helm chart as a version of an extension type, on its release trains (republishing replaces it)."""
    _version(request)
    caller.require(f"{NS}/extensionTypes/write", "/")
    chart = published.decode_chart(body.chart)
    async with cp.db.transaction() as session:
        props = await published.publish(
            session, cp.sealer, extensionType, version, body.releaseTrains, chart, cp.clock.now(), caller.caller.app_id
        )
    return JSONResponse({"id": published.version_id(extensionType, version), "properties": props})


@router.get(BASE, operation_id="ExtensionTypes_List")
async def list_types(request: Request, caller: Caller, cp: Plane, api_version: ApiVersion = None) -> JSONResponse:
    """The catalog: every extension type with its versions per release train."""
    _version(request)
    caller.require(f"{NS}/extensionTypes/read", "/")
    async with cp.db.session() as session:
        catalog = await published.catalog_of(session)
    value: list[dict[str, Any]] = [
        {
            "name": t.name,
            "properties": {
                "releaseTrains": {train: sorted(v) for train, v in t.trains.items()},
                "versions": t.versions,
                "published": t.published,
            },
        }
        for t in sorted(catalog.types.values(), key=lambda t: t.name)
    ]
    return JSONResponse({"value": value})


@dp_router.get("/v1/extensionTypes/{extensionType}/versions/{version}/chart", operation_id="Dp_GetExtensionChart")
async def chart(request: Request, extensionType: TypeName, version: Version, agent: AgentCaller) -> Response:
    """A chart package (published, or a built-in type's), for a connected cluster's agents."""
    cp = request.app.state.plane
    await alive(cp, agent)
    async with cp.db.session() as session:
        package = await published.chart_of(
            session, cp.sealer, extensionType, version, registry=cp.settings.flux_image_registry
        )
    return Response(package, media_type="application/gzip")
