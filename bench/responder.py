"""The fleet benchmark's baseline: the same transport as the control plane (uvicorn, uvloop, httptools, TLS with
the same certificate) answering every heartbeat with a fixed reply, without authentication, validation or a store.
The control plane's latency over this one is what Halyard adds to the bare HTTPS round trip.

    python -m uvicorn bench.responder:app --loop uvloop --http httptools --ssl-certfile C --ssl-keyfile K --port P
"""

from __future__ import annotations

from typing import Any

REPLY = b'{"connectivityStatus":"Connected","heartbeatSeconds":30.0,"agentAutoUpgrade":"Enabled"}'


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:  # read the whole body, as the control plane does
        message = await receive()
        more = message.get("more_body", False)
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(REPLY)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": REPLY})
