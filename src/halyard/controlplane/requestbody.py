"""Admits a request body before any route sees it: no larger than its route allows, read in time, storable text.

Every route gets this for free, so a resource type added tomorrow cannot store what today's were fixed for:

- **size**: a ``Content-Length`` over the route's limit is refused with 413 before a byte is read; a chunked body is
  refused as soon as it passes the limit. The login and agent routes (token endpoint, ``/his``, ``/dp``) take small
  bodies and get a small limit; the management API gets ARM's.
- **time**: the whole body must arrive within ``body_timeout`` seconds of the headers, or the answer is 408 (a
  client trickling a body would otherwise hold its connection, and the memory of what it sent, for as long as it
  likes).
- **text**: a JSON string holding a lone UTF-16 surrogate (``"\\ud800"``) or a NUL parses in Python but cannot be
  encoded as UTF-8 (so every later read of the stored value fails) nor stored by PostgreSQL. Such a body is refused
  with 400 ``InvalidRequestContent``; it is never stored.

Each refusal is told to :class:`Refusals`' listeners (the server's connection guard: a connection whose first
request is refused costs its address more of its new-connection allowance, :mod:`halyard.controlplane.admission`).
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from halyard.core.errors import HalyardError, InvalidRequest

# The escapes that can decode to an unencodable string. Checked by a byte search first, so an honest body (which has
# none) is never parsed twice.
_SUSPECT = re.compile(rb"\\u(?:[dD][89a-fA-F][0-9a-fA-F]{2}|0000)")


class RequestTooLarge(HalyardError):
    status = 413
    code = "RequestEntityTooLarge"


class RequestTimeout(HalyardError):
    status = 408
    code = "RequestTimeout"


@dataclass(frozen=True)
class BodyLimits:
    """The largest body per kind of route, in bytes, and how long a body may take to arrive."""

    management_bytes: int = 4 * 1024 * 1024
    agent_bytes: int = 128 * 1024
    timeout_seconds: float = 30.0

    def limit(self, path: str) -> int:
        """The limit of the route ``path`` reaches: small for the token endpoint and the agent services."""
        lowered = path.lower()
        if lowered.startswith(("/his/", "/dp/")) or lowered.endswith("/oauth2/v2.0/token"):
            return self.agent_bytes
        return self.management_bytes


@dataclass
class Refusals:
    """Who is told of each body refused as oversized, too slow or unstorable: called with the client's (host, port)."""

    listeners: list[Callable[[tuple[str, int]], None]] = field(default_factory=list)

    def tell(self, client: Any) -> None:
        if client:
            for listener in self.listeners:
                listener((str(client[0]), int(client[1])))


def unencodable(body: bytes) -> str | None:
    """Why a JSON ``body`` holds a string that cannot be stored (a lone surrogate, a NUL), or None.

    A body that is not JSON is left to the route's own parser (which answers 400 for it).
    """
    if not _SUSPECT.search(body):
        return None
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    stack: list[Any] = [document]
    while stack:  # iterative: a deeply nested body must not exhaust the interpreter's stack
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return "A string in the request content holds a NUL character (\\u0000), which cannot be stored."
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return (
                    "A string in the request content holds a lone UTF-16 surrogate escape (such as \\ud800), which "
                    "is not valid Unicode text."
                )
    return None


class RequestBodyMiddleware:
    """A plain ASGI wrapper: reads the body (within its limits), checks it, and hands it on in one message."""

    def __init__(self, app: ASGIApp, limits: BodyLimits | None = None, refusals: Refusals | None = None) -> None:
        self.app = app
        self.limits = limits or BodyLimits()
        self.refusals = refusals or Refusals()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.limit(scope["path"])
        headers = dict(scope["headers"])
        try:
            declared = headers.get(b"content-length")
            if declared is not None and declared.isdigit() and int(declared) > limit:
                raise _too_large(limit)
            # A deadline on this task, not ``wait_for``, which runs the read in a task of its own for every request.
            async with asyncio.timeout(self.limits.timeout_seconds):
                body = await _read(receive, limit)
            content_type = headers.get(b"content-type", b"").lower()
            if body and (not content_type or b"json" in content_type):
                problem = unencodable(body)
                if problem:
                    raise InvalidRequest(problem)
        except TimeoutError:
            self.refusals.tell(scope.get("client"))
            await _answer(
                send, RequestTimeout(f"The request body did not arrive within {self.limits.timeout_seconds:g} s.")
            )
            return
        except HalyardError as exc:
            if not isinstance(exc, _Disconnected):  # a client that left asked for nothing
                self.refusals.tell(scope.get("client"))
            await _answer(send, exc)
            return
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: only http.disconnect

        await self.app(scope, replay, send)


async def _read(receive: Receive, limit: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


class _Disconnected(HalyardError):
    """The client went away mid-body: nothing to answer (the answer is written to a closed connection)."""

    status = 400
    code = "ClientDisconnected"

    def __init__(self) -> None:
        super().__init__("The client disconnected before sending the whole body.")


def _too_large(limit: int) -> RequestTooLarge:
    return RequestTooLarge(f"The request body is larger than this route accepts ({limit} bytes).")


async def _answer(send: Send, exc: HalyardError) -> None:
    # The rest of an unread body is not drained: the connection is closed after the answer.
    payload = json.dumps(exc.body()).encode()
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})
