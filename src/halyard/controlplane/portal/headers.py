"""A plain ASGI wrapper that gives every answer under ``/portal`` the security headers, including the ones no portal
handler wrote (a 404 for an unknown page, a 405, an error), so no portal URL is ever served without the policy."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from halyard.controlplane.portal.security import HEADERS

_PREFIX = "/portal"
_ENCODED = [(k.lower().encode(), v.encode()) for k, v in HEADERS.items()]


class PortalHeadersMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if not (path == _PREFIX or path.startswith(_PREFIX + "/")):
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                present = {k.lower() for k, _ in message.get("headers", [])}
                missing = [(k, v) for k, v in _ENCODED if k not in present]
                message = {**message, "headers": [*message.get("headers", []), *missing]}
            await send(message)

        await self.app(scope, receive, send_with_headers)
