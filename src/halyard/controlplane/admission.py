"""New connections per client address: a token bucket consulted when a connection is accepted, before its TLS
handshake; pure (the clock is passed in).

The costly part of a hostile client is not its request, which is refused cheaply, but its connection: a TLS
handshake (an ECDHE and a signature) and an HTTP parse on the event loop every honest request shares. A client that
opens a connection per request, or whose connections time out and come back together, spends that again and again.
So each address (IPv6: its /64) may open ``burst`` connections at once and ``rate`` a second after that; the next one
is closed before a byte of it is read. A connection whose first request is refused as malformed, oversized or too
slow (:meth:`AcceptLimiter.penalise`) also takes ``penalty`` more, so an address that keeps sending what is refused
is held to about ``rate / (1 + penalty)`` new connections a second, while one whose connections carry answered
requests keeps the whole rate. A bucket owes at most one penalty (it goes no lower than ``-penalty``: at zero, the
penalty would take nothing from an address that spends each token as it comes), so an address waits at most
``(1 + penalty) / rate`` seconds after its last refusal, however many there were.

The defaults are sized for a site whose clusters all reach the control plane from one address (a NAT, an enterprise
proxy, a gateway's egress): 1,000 clusters opening a heartbeat, a long poll and a login connection each after a
restart fit in the burst, and their steady reconnections (one per heartbeat when the keep-alive timeout is shorter
than the interval: ~33 a second at 1,000 clusters and 30 s) are a sixth of the rate. Addresses listed as exempt (a
reverse proxy in front of replicas, a site's NAT known to be trusted) are never limited.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Enough addresses for any real deployment's clients; each ~200 bytes, so the table stays under a few MiB.
DEFAULT_MAX_ADDRESSES = 10_000

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class _Bucket:
    tokens: float  # new connections this address may still open now
    at: float  # when ``tokens`` was computed (the clock's seconds)


class AcceptLimiter:
    """New connections per address key (:func:`halyard.controlplane.identity.throttle.address_key`); ``rate`` 0
    turns the limit off."""

    def __init__(
        self,
        rate: float,
        burst: float,
        penalty: float,
        clock: Callable[[], float],
        *,
        exempt: Iterable[Network] = (),
        max_addresses: int = DEFAULT_MAX_ADDRESSES,
    ) -> None:
        self.rate = rate
        self.burst = max(1.0, burst)
        self.penalty = penalty
        self._clock = clock
        self._exempt = tuple(exempt)
        self._max = max_addresses
        self._buckets: OrderedDict[str, _Bucket] = OrderedDict()
        self.refused = 0  # connections closed unread, for the metrics and the benchmark
        self.penalised = 0

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def admit(self, address: str) -> bool:
        """Take one new connection from ``address``'s bucket; False (nothing taken) when it is empty."""
        if not self.enabled or self.is_exempt(address):
            return True
        bucket = self._current(address)
        if bucket.tokens < 1:
            self.refused += 1
            return False
        bucket.tokens -= 1
        return True

    def penalise(self, address: str) -> None:
        """A connection from ``address`` was wasted (its first request refused): take ``penalty`` more, down to
        ``-penalty`` at most."""
        if not self.enabled or not self.penalty or self.is_exempt(address):
            return
        bucket = self._current(address)
        bucket.tokens = max(-self.penalty, bucket.tokens - self.penalty)
        self.penalised += 1

    def available(self, address: str) -> float:
        """What ``address`` may open now (for tests and diagnostics; takes nothing)."""
        if not self.enabled or self.is_exempt(address):
            return float("inf")
        return self._current(address).tokens

    def is_exempt(self, address: str) -> bool:
        if not self._exempt:
            return False
        try:
            ip = ipaddress.ip_network(address, strict=False)  # a key is an address or an IPv6 /64
        except ValueError:
            return False
        return any(ip.version == net.version and ip.subnet_of(net) for net in self._exempt)  # type: ignore[arg-type]

    def _current(self, address: str) -> _Bucket:
        now = self._clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self._max:
                self._forget_full(now)
            bucket = _Bucket(self.burst, now)
            self._buckets[address] = bucket
        else:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.at) * self.rate)
            bucket.at = now
            self._buckets.move_to_end(address)
        return bucket

    def _forget_full(self, now: float) -> None:
        """Drop the buckets that have refilled (forgetting them changes nothing); if the table is still over its
        size, the least recently used, down to nine tenths of it (so the scan runs once per many new addresses)."""
        full = [a for a, b in self._buckets.items() if b.tokens + (now - b.at) * self.rate >= self.burst]
        for address in full:
            del self._buckets[address]
        while len(self._buckets) > self._max * 9 // 10:
            self._buckets.popitem(last=False)


def exempt_networks(text: str) -> list[Network]:
    """The networks of a comma-separated list of addresses and CIDRs (``10.1.2.3, 192.168.0.0/16, fd00::/8``)."""
    return [ipaddress.ip_network(part.strip(), strict=False) for part in text.split(",") if part.strip()]
