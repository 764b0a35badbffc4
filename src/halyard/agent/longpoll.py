"""The long poll of a cluster's desired state from ``dp`` (decision 009), one way for every agent that has one
(extension-manager's extensions, config-agent's Flux configurations)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from halyard.agent.controlplane import ControlPlaneError, send

if TYPE_CHECKING:
    from halyard.agent.resourcesync import TokenSource

TOKEN_WAIT_SECONDS = 30.0
# Asked of the server, which holds a poll at most its own ``long_poll_seconds`` (5 min by default, as a Kubernetes
# watch): an idle fleet then renews a poll per cluster every few minutes. Every proxy between must let an answer
# take this long (docs/operations.md).
HOLD_SECONDS = 300.0
BEYOND_HOLD_SECONDS = 30.0  # the client's own timeout past the hold: the server answers at the hold's end
# A poll held this long and then closed without an answer was cut by something between (a proxy's or load
# balancer's idle timeout): the next polls ask for less than it lasted. A shorter failure is an ordinary error.
CUT_AFTER_SECONDS = 10.0
CUT_MARGIN = 0.8
SHORTEST_HOLD_SECONDS = 5.0

log = logging.getLogger(__name__)


class Hold:
    """How long to ask the server to hold a poll: ``longest`` until held polls are cut twice in a row, then a little
    less than the shorter of the two lasted, for the life of the process. Polls behind a proxy that closes answers
    idle for 60 s thus renew every ~48 s instead of failing into the agent's backoff, which would delay a delivery by
    the backoff's length. One cut alone (a replica that died holding the poll) changes nothing."""

    def __init__(self, longest: float = HOLD_SECONDS, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = longest
        self.clock = clock
        self._cut_before: float | None = None  # how long the previous poll lasted, when it was cut too

    def answered(self) -> None:
        self._cut_before = None

    def cut(self, lasted: float) -> bool:
        """Whether a poll that failed unanswered after ``lasted`` seconds was cut by the path (asked again at once)."""
        if lasted < CUT_AFTER_SECONDS or lasted > self.seconds + BEYOND_HOLD_SECONDS:
            self._cut_before = None
            return False
        if self._cut_before is None:
            self._cut_before = lasted
            return True
        shorter = max(SHORTEST_HOLD_SECONDS, min(lasted, self._cut_before) * CUT_MARGIN)
        self._cut_before = None
        if shorter < self.seconds:
            log.warning(
                "held polls were closed unanswered after %.0f s (an idle timeout between this agent and the control "
                "plane); polls are held %.0f s from now on (allow %.0f s for fewer renewals: docs/operations.md)",
                lasted, shorter, HOLD_SECONDS + 60,
            )  # fmt: skip
            self.seconds = shorter
        return True


async def poll_desired(
    http: httpx.AsyncClient, url: str, tokens: TokenSource, since: str | None, hold: Hold
) -> dict[str, Any] | None:
    """The desired state at ``url``, asked as the cluster: at once when nothing was seen yet (no ``since``), else
    held by the server up to ``hold.seconds`` until it moves past ``since``; None when the hold ended with it still
    at ``since`` (``If-None-Match``: the server answers 304 and reads nothing), or when something between cut the
    held poll (``Hold.cut``: asked again at once, for less). A refused token (401) is forgotten, so that the retry
    (the caller's backoff) is made with a new one."""
    await tokens.wait_ready(TOKEN_WAIT_SECONDS)
    token = await tokens.token()
    params: dict[str, Any] = {"wait": hold.seconds if since else 0}
    headers = {"Authorization": f"Bearer {token}"}
    if since:
        params["since"] = since
        headers["If-None-Match"] = f'"{since}"'
    started = hold.clock()
    try:
        desired = await send(
            http, "GET", url, params=params, headers=headers, timeout=hold.seconds + BEYOND_HOLD_SECONDS,
            resend_on_close=not since,  # a held poll closed unanswered is a cut to learn from, not a stale connection
        )  # fmt: skip
        hold.answered()
        return desired
    except ControlPlaneError as exc:
        if exc.status == 304:
            hold.answered()
            return None
        if exc.status == 401:
            tokens.forget_token()
        if exc.status == 0 and since and hold.cut(hold.clock() - started):
            return None
        raise
