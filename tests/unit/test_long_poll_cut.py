"""A held poll cut by something between the agent and the control plane (a proxy's idle timeout) is asked again at
once, and after two cuts in a row for less than they lasted; never fed to the agent's backoff (agent/longpoll.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import httpx
import pytest

from halyard.agent.controlplane import ControlPlaneError
from halyard.agent.longpoll import HOLD_SECONDS, Hold, poll_desired


class _Tokens:
    async def wait_ready(self, timeout: float) -> None:
        return None

    async def token(self) -> str:
        return "t"

    def forget_token(self) -> None:
        raise AssertionError("no 401 here")


class _Clock:
    """Each poll 'lasts' the next of ``durations`` seconds: read once when it starts and once when it fails."""

    def __init__(self, durations: list[float]) -> None:
        self.readings = [x for d in durations for x in (0.0, d)]

    def __call__(self) -> float:
        return self.readings.pop(0)


def test_one_cut_changes_nothing_two_shorten_and_a_quick_failure_is_not_a_cut() -> None:
    hold = Hold(300.0)
    assert hold.cut(61.0) and hold.seconds == 300.0  # one: a replica that died holding it, perhaps
    hold.answered()
    assert hold.cut(61.0) and hold.seconds == 300.0  # an answer between: the count starts again
    assert hold.cut(60.0) and hold.seconds == pytest.approx(48.0)  # two in a row: 0.8 of the shorter
    assert not hold.cut(2.0) and hold.seconds == pytest.approx(48.0)  # refused at once: an ordinary error
    assert hold.cut(40.0) and hold.cut(45.0) and hold.seconds == pytest.approx(32.0)
    assert hold.cut(1000.0) is False  # past the hold and the client's own timeout: not the path's doing


@pytest.fixture
async def closing_server() -> AsyncIterator[tuple[str, list[bytes]]]:
    """Reads a request's head and closes without an answer, as a proxy cutting an idle answer does."""
    seen: list[bytes] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(await reader.readuntil(b"\r\n\r\n"))
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    yield f"http://127.0.0.1:{port}/dp/v1/configurations", seen
    server.close()
    await server.wait_closed()


async def _poll(url: str, hold: Hold, since: str | None = "v1") -> object:
    async with httpx.AsyncClient() as http:
        return await poll_desired(http, url, _Tokens(), since, hold)


async def test_cut_polls_are_asked_again_at_once_then_for_less(closing_server: tuple[str, list[bytes]]) -> None:
    url, seen = closing_server
    hold = Hold(HOLD_SECONDS, clock=_Clock([60.0, 60.0, 48.0]))
    assert await _poll(url, hold) is None and hold.seconds == HOLD_SECONDS
    assert await _poll(url, hold) is None and hold.seconds == pytest.approx(48.0)
    assert len(seen) == 2  # each cut poll sent once: not resent on a fresh connection as a stale one would be
    assert b"wait=300" in seen[0] and b"wait=48" in await _and_next(url, hold, seen)


async def _and_next(url: str, hold: Hold, seen: list[bytes]) -> bytes:
    assert await _poll(url, hold) is None
    return seen[-1]


@pytest.mark.parametrize(
    ("since", "lasted"), [("v1", 0.5), (None, 60.0)], ids=["closed-at-once", "first-read-is-not-held"]
)
async def test_other_failures_go_to_the_callers_backoff(
    closing_server: tuple[str, list[bytes]], since: str | None, lasted: float
) -> None:
    url, _ = closing_server
    clock: Callable[[], float] = _Clock([lasted, lasted])
    with pytest.raises(ControlPlaneError) as failed:
        await _poll(url, Hold(HOLD_SECONDS, clock=clock), since)
    assert failed.value.status == 0
