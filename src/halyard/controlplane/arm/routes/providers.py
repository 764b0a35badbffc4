"""Resource providers: registration state, resource types, locations and api-versions (newest stable first)."""

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from halyard.controlplane.activity.events import record_answered
from halyard.controlplane.arm.access import AuthorizedCaller
from halyard.controlplane.arm.paths import subscription_scope
from halyard.controlplane.arm.resourcetypes import Provider
from halyard.controlplane.arm.routes.common import ERRORS, Caller, Plane
from halyard.controlplane.arm.routes.root import ApiVersion, resources_version
from halyard.controlplane.plane import ControlPlane
from halyard.core.errors import NotFound

router = APIRouter(tags=["Microsoft.Resources"], responses=ERRORS)
PROVIDER = "/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}"


def _provider(cp: ControlPlane, namespace: str) -> Provider:
    provider = cp.types.provider(namespace)
    if provider is None:
        raise NotFound(
            f"The resource provider '{namespace}' is not served by this server.",
            code="NoRegisteredProviderFound",
        )
    return provider


async def _body(cp: ControlPlane, provider: Provider, subscription_id: str) -> dict[str, object]:
    state = await cp.directory.registration_state(subscription_id, provider.namespace)
    return cp.types.provider_body(provider, subscription_id, state, cp.settings.locations)


@router.get("/subscriptions/{subscriptionId}/providers", operation_id="Providers_List")
async def list_providers(
    request: Request, subscriptionId: str, caller: Caller, cp: Plane, api_version: ApiVersion = None
) -> JSONResponse:
    resources_version(request)
    sub = await cp.directory.subscription(subscriptionId)
    caller.require_at_or_below("Microsoft.Resources/subscriptions/read", subscription_scope(sub.id))
    return JSONResponse({"value": [await _body(cp, p, sub.id) for p in cp.types.providers.values()]})


@router.get(PROVIDER, operation_id="Providers_Get")
async def get_provider(
    request: Request,
    subscriptionId: str,
    resourceProviderNamespace: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    resources_version(request)
    sub = await cp.directory.subscription(subscriptionId)
    caller.require_at_or_below("Microsoft.Resources/subscriptions/read", subscription_scope(sub.id))
    return JSONResponse(await _body(cp, _provider(cp, resourceProviderNamespace), sub.id))


async def _set_registration(
    cp: ControlPlane, caller: AuthorizedCaller, subscription_id: str, namespace: str, verb: str
) -> JSONResponse:
    sub = await cp.directory.subscription(subscription_id)
    provider = _provider(cp, namespace)
    caller.require(f"{provider.namespace}/{verb}/action", subscription_scope(sub.id))
    await cp.directory.set_registration(
        sub.id, provider.namespace, "Registered" if verb == "register" else "Unregistered"
    )
    await record_answered(
        cp.db, at=cp.clock.now(), caller=caller.caller, resource_id=f"{subscription_scope(sub.id)}/providers/"
        f"{provider.namespace}", operation_name=f"{provider.namespace}/{verb}/action", http_method="POST",
    )  # fmt: skip
    return JSONResponse(await _body(cp, provider, sub.id))


@router.post(PROVIDER + "/register", operation_id="Providers_Register")
async def register_provider(
    request: Request,
    subscriptionId: str,
    resourceProviderNamespace: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    resources_version(request)
    return await _set_registration(cp, caller, subscriptionId, resourceProviderNamespace, "register")


@router.post(PROVIDER + "/unregister", operation_id="Providers_Unregister")
async def unregister_provider(
    request: Request,
    subscriptionId: str,
    resourceProviderNamespace: str,
    caller: Caller,
    cp: Plane,
    api_version: ApiVersion = None,
) -> JSONResponse:
    resources_version(request)
    return await _set_registration(cp, caller, subscriptionId, resourceProviderNamespace, "unregister")
