"""The login throttle counted per principal and address (issue 10, item 8), and never below zero (issue 11)."""

from __future__ import annotations

import pytest

from halyard.controlplane.identity.throttle import ADDRESS_FACTOR, LoginThrottle
from halyard.core.clock import ManualClock

pytestmark = pytest.mark.unit
ADDRESS = "10.0.0.1"


def _throttle(clock: ManualClock) -> LoginThrottle:
    return LoginThrottle(clock, burst=3, refill_seconds=6.0)


def _fail(throttle: LoginThrottle, principal: str) -> int:
    wait = throttle.begin(ADDRESS, principal=principal)
    if not wait:
        throttle.end(ADDRESS, failed=True, principal=principal)
    return wait


def test_failures_of_one_principal_do_not_lock_out_another_from_the_same_address() -> None:
    throttle = _throttle(ManualClock())
    assert [_fail(throttle, "alice") for _ in range(4)] == [0, 0, 0, 6]
    assert throttle.begin(ADDRESS, principal="bob") == 0


def test_an_address_naming_many_principals_is_still_bounded() -> None:
    throttle = _throttle(ManualClock())
    failures = [_fail(throttle, f"guess-{i}") for i in range(3 * ADDRESS_FACTOR + 1)]
    assert failures[:-1] == [0] * (3 * ADDRESS_FACTOR)
    assert failures[-1] > 0
    assert throttle.begin(ADDRESS, principal="someone-new") > 0


def test_failures_counted_after_the_work_never_take_a_bucket_below_zero() -> None:
    clock = ManualClock()
    throttle = _throttle(clock)
    # Forty bad assertions checked at once: each was let in (cheap attempts reserve nothing), each fails after.
    assert [throttle.begin(ADDRESS, reserve=False, principal="agent") for _ in range(40)] == [0] * 40
    for _ in range(40):
        throttle.end(ADDRESS, failed=True, reserve=False, principal="agent")
    assert throttle.begin(ADDRESS, principal="agent") == 6  # one refill, not 37 of them (3.7 minutes)
    clock.advance(6)
    assert throttle.begin(ADDRESS, principal="agent") == 0
