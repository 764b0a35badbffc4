"""Changes made by other replicas, heard through PostgreSQL ``LISTEN``/``NOTIFY``.

Triggers (migration 0003) notify a channel when a watched table changes; NOTIFY is delivered when the writing
transaction commits, to every listening replica. A replica that is not listening (not yet connected, or its
connection lost) must not trust what it cached: ``listening`` says so, and the listener reconnects by itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

log = logging.getLogger("halyard.store.notify")
RECONNECT_SECONDS = 1.0


class Listener:
    def __init__(
        self,
        database_url: str,
        channel: str,
        on_notify: Callable[[], None],
        on_payload: Callable[[str], None] | None = None,
    ) -> None:
        """``on_notify`` is called when anything may have changed (a reconnection too); ``on_payload``, when
        given, instead of it for each notification, with the notification's payload (what changed)."""
        self._dsn = make_url(database_url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._channel = channel
        self._on_notify = on_notify
        self._on_payload = on_payload
        self._lost = asyncio.Event()
        self.listening = False

    async def run_forever(self) -> None:
        """Listen, and listen again after a lost connection; every (re)connection counts as a change."""
        while True:
            connection: Any = None
            try:
                connection = await asyncpg.connect(self._dsn)
                self._lost.clear()
                connection.add_termination_listener(lambda _c: self._lose())
                await connection.add_listener(self._channel, self._notified)
                self.listening = True
                self._on_notify()  # whatever changed while not listening
                await self._lost.wait()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("change listener not connected", extra={"error": type(exc).__name__})
            finally:
                self._lose()
                if connection is not None and not connection.is_closed():
                    await connection.close()
            await asyncio.sleep(RECONNECT_SECONDS)

    def _notified(self, _connection: Any, _pid: int, _channel: str, payload: str) -> None:
        if self._on_payload is not None:
            self._on_payload(payload)
        else:
            self._on_notify()

    def _lose(self) -> None:
        if self.listening:
            self.listening = False
            self._on_notify()
        self._lost.set()
