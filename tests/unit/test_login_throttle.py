"""The failed-login throttle's pure core, with a clock the test moves; and scrypt kept off the event loop."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest

from halyard.controlplane.identity import principals as principals_module
from halyard.controlplane.identity.principals import SCRYPT_CONCURRENCY, NewCredential, Principals
from halyard.controlplane.identity.throttle import LoginThrottle, address_key
from halyard.core.clock import ManualClock
from halyard.core.errors import OAuthError
from halyard.core.settings import Settings
from halyard.store import Database
from halyard.store.models import Tenant

pytestmark = pytest.mark.unit


def _throttle(clock: ManualClock, burst: int = 3, refill: float = 6.0, cap: int = 100) -> LoginThrottle:
    return LoginThrottle(clock, burst=burst, refill_seconds=refill, max_addresses=cap)


def _fail(throttle: LoginThrottle, address: str) -> int:
    wait = throttle.begin(address)
    if not wait:
        throttle.end(address, failed=True)
    return wait


def test_burst_of_failures_then_one_per_refill() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    assert [_fail(throttle, "10.0.0.1") for _ in range(3)] == [0, 0, 0]
    assert throttle.begin("10.0.0.1") == 6  # refused, with the whole seconds until one more failure is earned
    clock.advance(4.5)
    assert throttle.begin("10.0.0.1") == 2  # 1.5 s left, rounded up: Retry-After is whole seconds
    clock.advance(1.5)
    assert _fail(throttle, "10.0.0.1") == 0
    assert throttle.begin("10.0.0.1") == 6
    clock.advance(60)  # refills up to the burst, never beyond
    assert [_fail(throttle, "10.0.0.1") for _ in range(4)] == [0, 0, 0, 6]


def test_refused_attempts_cost_nothing_more() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    for _ in range(3):
        _fail(throttle, "10.0.0.1")
    for _ in range(100):  # a flood while locked out does not push the wait further
        assert throttle.begin("10.0.0.1") == 6
    clock.advance(6)
    assert throttle.begin("10.0.0.1") == 0


def test_only_failures_count() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    for _ in range(50):  # the whole test suite logs in from 127.0.0.1: successes never lock it out
        assert throttle.begin("127.0.0.1") == 0
        throttle.end("127.0.0.1", failed=False)
    assert [_fail(throttle, "127.0.0.1") for _ in range(4)] == [0, 0, 0, 6]


def test_a_success_does_not_wipe_earlier_failures() -> None:
    # Otherwise whoever holds one valid credential could log in between guesses at another and guess without end.
    clock = ManualClock()
    throttle = _throttle(clock)
    _fail(throttle, "10.0.0.1")
    _fail(throttle, "10.0.0.1")
    assert throttle.begin("10.0.0.1") == 0
    throttle.end("10.0.0.1", failed=False)
    assert [_fail(throttle, "10.0.0.1") for _ in range(2)] == [0, 6]


def test_attempts_in_flight_are_counted_before_they_finish() -> None:
    # A burst of concurrent bad logins: each reserves a failure when it starts, so no more than the burst ever reach
    # the scrypt work at once.
    throttle = _throttle(ManualClock())
    assert [throttle.begin("10.0.0.1") for _ in range(4)] == [0, 0, 0, 6]
    throttle.end("10.0.0.1", failed=False)  # one turned out not to be a credential failure: its turn comes back
    assert throttle.begin("10.0.0.1") == 0


def test_cheap_attempts_are_not_limited_in_flight_but_their_failures_count() -> None:
    # Assertions (agents): fifty at once from one NAT address all go through; only failures use up the burst.
    throttle = _throttle(ManualClock())
    assert [throttle.begin("10.0.0.1", reserve=False) for _ in range(50)] == [0] * 50
    for _ in range(50):
        throttle.end("10.0.0.1", failed=False, reserve=False)
    assert throttle.begin("10.0.0.1") == 0  # nothing was spent
    throttle.end("10.0.0.1", failed=False)
    for _ in range(3):
        assert throttle.begin("10.0.0.1", reserve=False) == 0
        throttle.end("10.0.0.1", failed=True, reserve=False)
    assert throttle.begin("10.0.0.1", reserve=False) == 6  # three bad assertions: refused like bad secrets
    assert throttle.begin("10.0.0.1") == 6


def test_addresses_are_independent() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    for _ in range(3):
        _fail(throttle, "10.0.0.1")
    assert throttle.begin("10.0.0.1") > 0
    assert throttle.begin("10.0.0.2") == 0
    throttle.end("10.0.0.2", failed=False)  # another address's success does not help the first
    assert throttle.begin("10.0.0.1") > 0


def test_memory_is_bounded_by_forgetting_the_quietest_address() -> None:
    clock = ManualClock()
    throttle = _throttle(clock, cap=3)
    for address in ("a", "b", "c"):
        for _ in range(3):
            _fail(throttle, address)
    assert throttle.begin("a") > 0  # a is now the most recently seen
    _fail(throttle, "d")  # a fourth address: b, the least recently seen, is forgotten
    assert len(throttle) == 3
    assert throttle.begin("b") == 0  # forgotten means a fresh start, never a refusal
    assert throttle.begin("a") > 0
    throttle.end("zz", failed=False)  # settling an address forgotten meanwhile is harmless
    assert len(throttle) == 3


def test_zero_burst_turns_it_off() -> None:
    throttle = _throttle(ManualClock(), burst=0)
    assert not throttle.enabled
    assert all(_fail(throttle, "10.0.0.1") == 0 for _ in range(1000))
    assert len(throttle) == 0


def test_a_clock_stepped_back_neither_earns_nor_takes() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    for _ in range(3):
        _fail(throttle, "10.0.0.1")
    clock.advance(-3600)
    assert throttle.begin("10.0.0.1") == 6
    clock.advance(6)
    assert throttle.begin("10.0.0.1") == 0


def test_bad_parameters_are_refused() -> None:
    for burst, refill, cap in ((-1, 6.0, 10), (10, 0.0, 10), (10, 6.0, 0)):
        with pytest.raises(ValueError):
            LoginThrottle(ManualClock(), burst=burst, refill_seconds=refill, max_addresses=cap)


@pytest.mark.parametrize(
    ("host", "key"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # the same /64: one host may hold all of it
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("testclient", "testclient"),
        (None, ""),
    ],
)
def test_address_key(host: str | None, key: str) -> None:
    assert address_key(host) == key


def test_settings_default_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert (Settings().login_failure_burst, Settings().login_failure_refill_seconds) == (10, 6.0)
    monkeypatch.setenv("HALYARD_LOGIN_FAILURE_BURST", "0")
    monkeypatch.setenv("HALYARD_LOGIN_FAILURE_REFILL_SECONDS", "0.5")
    assert (Settings().login_failure_burst, Settings().login_failure_refill_seconds) == (0, 0.5)
    monkeypatch.setenv("HALYARD_LOGIN_FAILURE_BURST", "-1")
    with pytest.raises(ValueError):
        Settings()


async def _principal_with_secret(tmp_path: Path) -> tuple[Database, Principals, NewCredential]:
    """A store with one tenant and a service principal with a client secret."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'db.sqlite'}")
    await db.migrate()
    async with db.transaction() as session:
        session.add(Tenant(id="tenant-1", display_name="t", default_domain="t.local"))
    principals = Principals(db, ManualClock())
    return db, principals, await principals.create_service_principal("tenant-1", "sp")


async def test_secret_checks_run_off_the_event_loop_a_few_at_a_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db, principals, created = await _principal_with_secret(tmp_path)

    # Every secret check is held until the test lets it go. Run on the event loop, the first one would block the
    # loop, and with it this test, until its hold gives up: that is what `held_up_the_loop` records.
    release = threading.Event()
    running, most, held_up_the_loop, lock = 0, 0, False, threading.Lock()
    real_verify = principals_module.verify_secret

    def held_verify(secret: str, stored: str) -> bool:
        nonlocal running, most, held_up_the_loop
        with lock:
            running += 1
            most = max(most, running)
        try:
            if not held_up_the_loop and not release.wait(timeout=10):
                held_up_the_loop = True  # and the other checks go straight on: one hold shows it
            return real_verify(secret, stored)
        finally:
            with lock:
                running -= 1

    monkeypatch.setattr(principals_module, "verify_secret", held_verify)

    async def bad_login() -> None:
        with pytest.raises(OAuthError) as refused:
            await principals.authenticate_secret("tenant-1", created.principal.app_id, "wrong")
        assert refused.value.error == "invalid_client"

    flood = asyncio.gather(*(bad_login() for _ in range(8)))
    try:
        # The loop keeps turning while the checks are held: this coroutine sees them start, a few at a time.
        for _ in range(1000):
            if running == SCRYPT_CONCURRENCY:
                break
            await asyncio.sleep(0.005)
        for _ in range(10):  # and the rest of the flood waits for a turn instead of taking a thread each
            await asyncio.sleep(0)
        assert (running, held_up_the_loop) == (SCRYPT_CONCURRENCY, False)
    finally:
        release.set()
        await asyncio.wait_for(flood, 60)
    assert (most, held_up_the_loop) == (SCRYPT_CONCURRENCY, False)
    assert (await principals.authenticate_secret("tenant-1", created.principal.app_id, created.secret)) is not None
    await db.close()


async def test_a_flood_beyond_the_secret_check_queue_is_shed_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many addresses, each within its own limit: the queue for scrypt turns is what bounds them.
    monkeypatch.setattr(principals_module, "MAX_SECRET_CHECKS", 3)
    db, principals, created = await _principal_with_secret(tmp_path)

    async def bad_login() -> OAuthError:
        with pytest.raises(OAuthError) as refused:
            await principals.authenticate_secret("tenant-1", created.principal.app_id, "wrong")
        return refused.value

    errors = await asyncio.gather(*(bad_login() for _ in range(8)))
    assert (
        sorted((e.error, e.status) for e in errors)
        == [("invalid_client", 401)] * 3 + [("temporarily_unavailable", 503)] * 5
    )
    assert all(1 <= int(e.headers["Retry-After"]) <= 5 for e in errors if e.status == 503)
    # The queue empties as the checks finish: the next login is checked, and a right secret passes.
    assert (await principals.authenticate_secret("tenant-1", created.principal.app_id, created.secret)) is not None
    await db.close()
