"""Where the CLI's long-running async work runs (agents, the local proxy): an event loop of its own, uvloop when
installed. uvloop's TLS transports cost about 38 KB per idle connection against 291 KB on Python 3.11's loop, and
the Protocol-based byte pipes run fastest on it (``shared/reference/baselines.md``)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run_on_own_loop(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run ``main()`` to completion on a new event loop (uvloop when installed) and close it."""
    factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    with contextlib.suppress(ImportError):
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main())
