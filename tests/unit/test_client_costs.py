"""What a hostile client may cost the event loop (issue 11): new connections per address (the token bucket the accept
gate consults before a TLS handshake, and the penalty of a connection whose first request was refused; the clock is
a plain variable moved by the test), and a 429's answer held before it is sent."""

from __future__ import annotations

import ipaddress

import pytest

from halyard.controlplane.admission import AcceptLimiter, exempt_networks
from halyard.controlplane.connections import ConnectionGuard
from halyard.controlplane.identity.throttle import address_key

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_an_address_opens_its_burst_then_one_per_refill_and_others_are_untouched() -> None:
    clock = Clock()
    limiter = AcceptLimiter(rate=2, burst=3, penalty=0, clock=clock)
    assert [limiter.admit("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.admit("10.0.0.2")  # another address has its own bucket
    clock.now += 0.5  # one new connection's worth at 2 a second
    assert [limiter.admit("10.0.0.1") for _ in range(2)] == [True, False]
    clock.now += 3600  # refilled to the burst, no further
    assert [limiter.admit("10.0.0.1") for _ in range(4)] == [True, True, True, False]
    assert limiter.refused == 3


def test_a_refused_first_request_costs_the_penalty_and_owes_at_most_one() -> None:
    clock = Clock()
    limiter = AcceptLimiter(rate=1, burst=10, penalty=4, clock=clock)
    assert limiter.admit("10.0.0.1")
    limiter.penalise("10.0.0.1")
    assert limiter.available("10.0.0.1") == 5  # 10 - 1 - 4
    for _ in range(100):
        limiter.penalise("10.0.0.1")
    assert limiter.available("10.0.0.1") == -4
    clock.now += 4
    assert not limiter.admit("10.0.0.1")
    clock.now += 1  # however many refusals, 1 + penalty refills bring the next connection
    assert limiter.admit("10.0.0.1")


def test_an_address_whose_every_connection_is_wasted_gets_rate_over_one_plus_penalty() -> None:
    clock = Clock()
    limiter = AcceptLimiter(rate=10, burst=5, penalty=4, clock=clock)
    admitted = 0
    for _ in range(10_000):  # 100 s of a client retrying every 10 ms, each connection refused at its first request
        clock.now += 0.01
        if limiter.admit("10.0.0.1"):
            admitted += 1
            limiter.penalise("10.0.0.1")
    assert 190 <= admitted <= 202  # 10 / (1 + 4) a second, and the first burst


def test_rate_zero_turns_the_limit_and_the_penalty_off() -> None:
    limiter = AcceptLimiter(rate=0, burst=1, penalty=100, clock=Clock())
    limiter.penalise("10.0.0.1")
    assert all(limiter.admit("10.0.0.1") for _ in range(1000))


def test_exempt_networks_are_never_limited_ipv4_and_ipv6_keys_alike() -> None:
    limiter = AcceptLimiter(
        rate=0.001, burst=1, penalty=5, clock=Clock(), exempt=exempt_networks("192.0.2.7, 2001:db8::/48")
    )
    v6 = address_key("2001:db8:0:1::5")  # a /64 key, inside the exempt /48
    for address in ("192.0.2.7", v6):
        limiter.penalise(address)
        assert all(limiter.admit(address) for _ in range(50)), address
    assert limiter.admit("192.0.2.8") and not limiter.admit("192.0.2.8")
    outside = address_key("2001:db9::1")
    assert limiter.admit(outside) and not limiter.admit(outside)


def test_the_table_of_addresses_is_bounded() -> None:
    clock = Clock()
    limiter = AcceptLimiter(rate=1, burst=2, penalty=0, clock=clock, max_addresses=100)
    for n in range(1000):
        limiter.admit(str(ipaddress.IPv4Address(0x0A000000 + n)))
    assert len(limiter._buckets) <= 100


def test_exempt_addresses_skip_the_open_connection_limit_too() -> None:
    limiter = AcceptLimiter(rate=1, burst=1, penalty=0, clock=Clock(), exempt=exempt_networks("10.1.0.0/16"))
    guard = ConnectionGuard(per_address=1, limiter=limiter)
    assert guard.admit("10.1.2.3") and guard.admit("10.1.2.3")
    assert guard.admit("10.2.0.1") and not guard.admit("10.2.0.1")


def test_a_bad_exempt_entry_is_refused_at_start() -> None:
    from halyard.core.settings import Settings

    with pytest.raises(ValueError, match="not an address or a network"):
        Settings(connection_limits_exempt="10.0.0.0/8, proxy.internal").check()


def test_a_429_answer_is_held_up_to_its_retry_after_and_no_other_is() -> None:
    from fastapi import FastAPI
    from fastapi.testclient import TestClient

    from halyard.controlplane.errors import install_error_handlers
    from halyard.core.errors import NotFound, TooManyRequests

    held: list[float] = []

    async def sleep(seconds: float) -> None:
        held.append(seconds)

    app = FastAPI()
    install_error_handlers(app, throttled_answer_delay=5, sleep=sleep)

    @app.get("/soon")
    async def soon() -> None:
        raise TooManyRequests("later", headers={"Retry-After": "2"})

    @app.get("/later")
    async def later() -> None:
        raise TooManyRequests("much later", headers={"Retry-After": "600"})

    @app.get("/missing")
    async def missing() -> None:
        raise NotFound("no")

    with TestClient(app) as client:
        assert client.get("/soon").status_code == 429
        assert client.get("/later").status_code == 429
        assert client.get("/missing").status_code == 404
    assert held == [2, 5]
