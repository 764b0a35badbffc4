"""The identity service's HTTP face, under ``/his``. Callers prove themselves with the signed proof in the body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request

from halyard.api.agents import (
    HIS_CERTIFICATE_PATH,
    HIS_ENDPOINTS_PATH,
    CertificateRequest,
    CertificateResponse,
    ServiceEndpoints,
)
from halyard.controlplane.agentfacing.arrival import arrival_of
from halyard.controlplane.agentfacing.callers import enforcement_of
from halyard.controlplane.plane import ControlPlane, plane

router = APIRouter(prefix="/his", tags=["his"])
Plane = Annotated[ControlPlane, Depends(plane)]


@router.post(HIS_CERTIFICATE_PATH, operation_id="His_IssueCertificate")
async def issue_certificate(request: Request, body: CertificateRequest, cp: Plane) -> CertificateResponse:
    """A cluster certificate for the CSR's key, to a caller proving possession of the onboarding or current key,
    arriving the way the cluster's private link scope allows."""
    return await cp.his.issue(body, arrival_of(request), enforcement_of(request))


@router.get(HIS_ENDPOINTS_PATH, operation_id="His_Endpoints")
async def endpoints(request: Request, cp: Plane) -> ServiceEndpoints:
    """Where agents reach each service; onboarding copies it into the cluster (unauthenticated, like discovery)."""
    return cp.endpoints.for_cluster(None, arrival_of(request))
