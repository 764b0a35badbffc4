"""The shapes and declaration the HybridCompute types share (arm/proxytypes.py), as gateways use them."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from fastapi import FastAPI

from halyard.controlplane.arm.proxytypes import ResourceOut
from halyard.controlplane.catalog import declare_types
from halyard.controlplane.gateway.models import GatewayPatch, GatewayPut, SettingsPut
from halyard.controlplane.gateway.resources import API_VERSIONS
from halyard.core.settings import Settings

pytestmark = pytest.mark.unit


def test_request_models_ignore_read_only_and_unknown_fields_and_keep_their_own_names() -> None:
    shown = {"location": "eastus", "id": "/x", "properties": {"gatewayId": "g", "allowedFeatures": ["*"]}}
    body = GatewayPut.model_validate(shown)
    assert body.properties is not None and body.properties.allowedFeatures == ["*"]
    assert GatewayPatch.model_validate({"tags": {"a": "b"}, "etag": "x"}).properties is None
    assert SettingsPut.model_validate({}).properties is None
    with pytest.raises(ValueError):
        GatewayPut.model_validate({"properties": {}})  # a tracked resource's PUT names its location
    app = FastAPI()

    @app.put("/g")
    def put(body: GatewayPut) -> None: ...

    assert "GatewayPut" in app.openapi()["components"]["schemas"]  # not "TrackedPut[GatewayProperties]"


def test_hybrid_types_answer_patch_synchronously_in_every_version_with_the_shared_response() -> None:
    services = SimpleNamespace(settings=Settings(), clock=None, sealer=None, his=None)
    types = declare_types(services)  # type: ignore[arg-type]
    for name in ("Microsoft.HybridCompute/gateways", "Microsoft.HybridCompute/settings"):
        declared = types.get(name)
        assert declared is not None
        assert declared.response_model is ResourceOut
        assert declared.sync_patch_versions == frozenset(API_VERSIONS)
